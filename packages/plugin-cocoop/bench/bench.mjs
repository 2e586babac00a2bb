// npm run bench -w @dfd/plugin-cocoop   (the root `npm run bench` builds first; alone: npx tsc -b packages/plugin-cocoop packages/encoder-clip)
//
// CoCoOp step time (meta-net + per-image prompts + text forward + backward, CE on 100·cos) at batch 1 and
// 8, with a ViT-B/16-shaped text tower with random weights (CoCoOp's reference backbone), n_ctx 4 from
// "a photo of a"; at batch 8 also the per-image loop (the reference implementation) as the baseline of the
// batched pass, in the same run.
import { ensureBackend, Rng, tf } from '@dfd/core';
import { CoCoOpConfigSchema, CoCoOpPromptLearner } from '@dfd/plugin-cocoop';
import { randomTextEncoder, timeMs } from '../../plugin-coop/bench/towers.mjs';

const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const backend = await ensureBackend();
const encoder = await randomTextEncoder('ViT-B/16');
console.log(`CoCoOp step (ViT-B/16-shaped text tower, random weights, fwd+bwd), tfjs ${backend.name}, median of ${REPEATS}`);
console.log('batch   text pass   step (ms)   ms/image');
const rows = {};
for (const [batch, textPass] of [[1, 'batched'], [8, 'batched'], [8, 'loop']]) {
  const cocoop = new CoCoOpPromptLearner(CoCoOpConfigSchema.parse({ textPass }), encoder, new Rng(1));
  const image = tf.tidy(() => {
    const x = tf.randomNormal([batch, encoder.info.embedDim], 0, 1, 'float32', 5);
    return tf.div(x, tf.norm(x, 'euclidean', -1, true));
  });
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 2), 'int32');
  const vars = Object.values(cocoop.trainableVariables());
  const step = async () => {
    const { value, grads } = tf.variableGrads(() => {
      const text = cocoop.textFeatures({ encoder, imageFeatures: image, training: true });
      const t = tf.div(text, tf.norm(text, 'euclidean', -1, true));
      const logits = tf.mul(tf.squeeze(tf.matMul(t, tf.expandDims(image, 2)), [2]), 100);
      return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 2), logits);
    }, vars);
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
  };
  const ms = await timeMs(step, REPEATS);
  rows[`${batch}/${textPass}`] = ms;
  console.log(`${String(batch).padStart(5)}   ${textPass.padEnd(9)} ${ms.toFixed(0).padStart(11)} ${(ms / batch).toFixed(0).padStart(10)}`);
  tf.dispose([image, labels]);
  cocoop.dispose();
}
console.log(
  `per-image step cost, batch 8 / batch 1: ${(rows['8/batched'] / 8 / rows['1/batched']).toFixed(2)}; ` +
    `loop / batched at batch 8: ${(rows['8/loop'] / rows['8/batched']).toFixed(2)}`,
);
encoder.dispose();
