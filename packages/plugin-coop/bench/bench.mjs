// npm run bench -w @dfd/plugin-coop   (the root `npm run bench` builds first; alone: npx tsc -b packages/plugin-coop packages/encoder-clip)
//
// CoOp step time — the text forward + backward for the 2 class prompts (16 context tokens, class token at
// the end, CE on 100·cos against 16 fixed image features) — with the text pass stopped at the longest EOT
// versus the full 77 tokens (the baseline, in the same run), for ViT-B/16- and ViT-L/14-shaped text towers
// with random weights, on the current tfjs backend.
import { ensureBackend, Rng, tf } from '@dfd/core';
import { CoOpConfigSchema, CoOpPromptLearner } from '@dfd/plugin-coop';
import { randomTextEncoder, timeMs } from './towers.mjs';

const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const backend = await ensureBackend();
console.log(`CoOp step (2 prompts, n_ctx 16, fwd+bwd), tfjs ${backend.name}, median of ${REPEATS}`);
console.log('text tower   full 77 (ms)   to EOT (ms)   tokens   speed-up');
for (const shape of ['ViT-B/16', 'ViT-L/14']) {
  const encoder = await randomTextEncoder(shape);
  const image = tf.tidy(() => {
    const x = tf.randomNormal([16, encoder.info.embedDim], 0, 1, 'float32', 3);
    return tf.div(x, tf.norm(x, 'euclidean', -1, true));
  });
  const labels = tf.tensor1d(Array.from({ length: 16 }, (_, i) => i % 2), 'int32');
  const result = {};
  let tokens = 0;
  for (const truncateAtEot of [false, true]) {
    const coop = new CoOpPromptLearner(CoOpConfigSchema.parse({ nCtx: 16, truncateAtEot }), encoder, new Rng(1));
    tokens = coop.template.length;
    const step = async () => {
      const { value, grads } = tf.variableGrads(() => {
        const text = coop.textFeatures({ encoder, training: true });
        const t = tf.div(text, tf.norm(text, 'euclidean', -1, true));
        return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 2), tf.mul(tf.matMul(image, t, false, true), 100));
      }, [coop.ctx]);
      await value.data();
      tf.dispose([value, ...Object.values(grads)]);
    };
    result[truncateAtEot] = await timeMs(step, REPEATS);
    coop.dispose();
  }
  console.log(`${shape.padEnd(12)} ${result.false.toFixed(0).padStart(12)} ${result.true.toFixed(0).padStart(13)} ${`77→${tokens}`.padStart(8)} ${(result.false / result.true).toFixed(2).padStart(9)}×`);
  tf.dispose([image, labels]);
  encoder.dispose();
}
