// One training step of CoOp + lare-egre + attention fuser on cached ViT-B/16-sized inputs, timed on the tfjs
// backend named by DFD_BACKEND (bench.mjs runs one process per backend). Prints one JSON line.
//
//   DFD_BACKEND=wasm node bench/step.mjs <batch> <repeats>
//
// Cached inputs: CLS embeddings [B, 512], patch tokens [B, 14, 14, 768] (no ln_post), LaRE maps [B, 4, 32, 32].
// Trained: CoOp's 16 context vectors (through a frozen ViT-B/16-shaped text tower with random weights), every
// lare-egre and attention-fuser parameter, and the text projection (512 → fused width); Adam.
import { createOptimizer, ensureBackend, Rng, tf } from '@dfd/core';
import { AttentionConfigSchema, AttentionFuser } from '@dfd/plugin-fusion';
import { LareEgreConfigSchema, LareEgreEnhancer } from '@dfd/plugin-lare';
import { CoOpConfigSchema, CoOpPromptLearner } from '@dfd/plugin-coop';
import { randomTextEncoder, timeMs } from '../../plugin-coop/bench/towers.mjs';

const batch = Number(process.argv[2] ?? 16);
const repeats = Number(process.argv[3] ?? 3);
const backend = await ensureBackend();
const encoder = await randomTextEncoder('ViT-B/16');
const VIT_B16 = { embedDim: 512, visionWidth: 768, gridSize: 14, imageSize: 224 };
const geometry = { info: { ...encoder.info, ...VIT_B16 } };
const rng = new Rng(1);
const coop = new CoOpPromptLearner(CoOpConfigSchema.parse({ nCtx: 16 }), encoder, rng.fork('coop'));
const egre = new LareEgreEnhancer(LareEgreConfigSchema.parse({}), geometry, rng.fork('egre'));
const fuser = new AttentionFuser(AttentionConfigSchema.parse({}), rng.fork('fuser'));
const fused = fuser.build({ image: 512, enhanced: [{ name: 'lare-egre', dim: egre.outputDim }], visionWidth: 768, gridSize: 14, imageSize: 224 });
const textProjection = tf.variable(tf.randomUniform([512, fused], -1 / Math.sqrt(512), 1 / Math.sqrt(512), 'float32', 3));

const data = new Rng(2);
const embeds = tf.tensor2d(data.normalArray(batch * 512), [batch, 512]);
const patchTokens = tf.tensor4d(data.normalArray(batch * 14 * 14 * 768), [batch, 14, 14, 768]);
const lare = tf.tensor4d(data.uniformArray(batch * 4 * 32 * 32, 0, 0.2), [batch, 4, 32, 32]);
const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 2), 'int32');
const vars = {
  ctx: coop.ctx,
  ...Object.fromEntries(Object.entries(egre.trainableVariables()).map(([k, v]) => [`egre.${k}`, v])),
  ...Object.fromEntries(Object.entries(fuser.trainableVariables()).map(([k, v]) => [`fuser.${k}`, v])),
  text_projection: textProjection,
};
const optimizer = createOptimizer({ type: 'adam', lr: 1e-4, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
const normed = (x) => tf.div(x, tf.add(tf.norm(x, 'euclidean', -1, true), 1e-12));

function loss() {
  const image = { embeds, patchTokens };
  const context = { extras: { lare }, imageSize: 224, training: true };
  const enhanced = [{ name: 'lare-egre', features: egre.enhance({ image, ...context }) }];
  const imageFeatures = normed(fuser.fuse({ image: embeds, enhanced, imageFeatures: image, ...context }));
  const text = normed(tf.matMul(coop.textFeatures({ encoder, training: true }), textProjection));
  const logits = tf.mul(tf.matMul(imageFeatures, tf.transpose(text)), 100);
  return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 2), logits);
}

const step = async () => {
  const names = Object.keys(vars);
  const { value, grads } = tf.variableGrads(loss, names.map((n) => vars[n]));
  optimizer.apply(vars, Object.fromEntries(names.map((n) => [n, grads[vars[n].name]])), 1e-4);
  await value.data();
  tf.dispose([value, ...Object.values(grads)]);
};
await step();
const tensors = tf.memory().numTensors;
const ms = await timeMs(step, repeats);
console.log(JSON.stringify({
  engine: `tfjs-${backend.name}`,
  batch,
  ms,
  textLength: coop.template.length,
  params: Object.values(vars).reduce((n, v) => n + v.size, 0),
  tensorsGrowth: tf.memory().numTensors - tensors,
}));
