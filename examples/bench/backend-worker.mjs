// One measurement of the backend benchmark in its own process (the tfjs backend is per process):
//   DFD_BACKEND=<wasm|tensorflow> node backend-worker.mjs <coop-b16|coop-l14|cocoop-b8|vit-b16-b8> <repeats>
// Prints one JSON line: { task, backend, ms (median step or forward), tokens (text sequence length) }.
import { ensureBackend, Rng, tf } from '@dfd/core';
import { ClipEncoder, ClipTokenizer, expectedClipTensors, parseClipConfig } from '@dfd/encoder-clip';
import { CoOpConfigSchema, CoOpPromptLearner } from '@dfd/plugin-coop';
import { CoCoOpConfigSchema, CoCoOpPromptLearner } from '@dfd/plugin-cocoop';
import { randomTextEncoder, timeMs, TINY_CLIP } from '../../packages/plugin-coop/bench/towers.mjs';

const [task, repeatsArg] = process.argv.slice(2);
const REPEATS = Number(repeatsArg ?? 3);
const backend = await ensureBackend();

const unit = (shape, seed) =>
  tf.tidy(() => {
    const x = tf.randomNormal(shape, 0, 1, 'float32', seed);
    return tf.div(x, tf.norm(x, 'euclidean', -1, true));
  });

/** CoOp: 2 class prompts, 16 context tokens, text pass stopped at the longest EOT, CE on 100·cos vs 16 image features. */
async function coopStep(shape) {
  const encoder = await randomTextEncoder(shape);
  const image = unit([16, encoder.info.embedDim], 3);
  const labels = tf.tensor1d(Array.from({ length: 16 }, (_, i) => i % 2), 'int32');
  const coop = new CoOpPromptLearner(CoOpConfigSchema.parse({ nCtx: 16, truncateAtEot: true }), encoder, new Rng(1));
  const step = async () => {
    const { value, grads } = tf.variableGrads(() => {
      const text = coop.textFeatures({ encoder, training: true });
      const t = tf.div(text, tf.norm(text, 'euclidean', -1, true));
      return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 2), tf.mul(tf.matMul(image, t, false, true), 100));
    }, [coop.ctx]);
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
  };
  const ms = await timeMs(step, REPEATS);
  const tokens = coop.template.length;
  tf.dispose([image, labels]);
  coop.dispose();
  encoder.dispose();
  return { ms, tokens };
}

/** CoCoOp: meta-net + per-image prompts (n_ctx 4 from "a photo of a"), batched text pass, batch 8, B/16 text tower. */
async function cocoopStep(batch) {
  const encoder = await randomTextEncoder('ViT-B/16');
  const cocoop = new CoCoOpPromptLearner(CoCoOpConfigSchema.parse({ textPass: 'batched' }), encoder, new Rng(1));
  const image = unit([batch, encoder.info.embedDim], 5);
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
  const tokens = cocoop.template.length;
  tf.dispose([image, labels]);
  cocoop.dispose();
  encoder.dispose();
  return { ms, tokens };
}

/** ViT-B/16 image tower (224 px, random weights) forward with patch tokens, batch 8. */
async function vitForward(batch) {
  const tokenizer = await ClipTokenizer.fromFolder(TINY_CLIP);
  const config = parseClipConfig({
    model_type: 'clip',
    projection_dim: 512,
    logit_scale_init_value: Math.log(100),
    text_config: { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: tokenizer.vocabSize, max_position_embeddings: 77, eos_token_id: tokenizer.eotId, hidden_act: 'quick_gelu' },
    vision_config: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, image_size: 224, patch_size: 16, hidden_act: 'quick_gelu' },
  });
  const rng = new Rng(7);
  const tensors = new Map();
  for (const [name, shape] of Object.entries(expectedClipTensors(config))) {
    const size = shape.reduce((a, b) => a * b, 1);
    let data;
    if (name === 'logit_scale') data = Float32Array.of(Math.log(100));
    else if (/norm.*weight$/.test(name)) data = new Float32Array(size).fill(1);
    else if (name.endsWith('.bias')) data = new Float32Array(size);
    else data = rng.normalArray(size, 0, 0.02);
    tensors.set(name, { shape, data });
  }
  const clip = new ClipEncoder(config, tensors, tokenizer, 'random ViT-B/16');
  const pixels = tf.randomNormal([batch, 3, 224, 224], 0, 1, 'float32', 9);
  const forward = async () => {
    const out = clip.encodeImage(pixels, { patchTokens: true });
    await out.embeds.data();
    await out.patchTokens.data();
    tf.dispose([out.embeds, out.patchTokens]);
  };
  const ms = await timeMs(forward, REPEATS);
  pixels.dispose();
  clip.dispose();
  return { ms, tokens: 197 };
}

const tasks = {
  'coop-b16': () => coopStep('ViT-B/16'),
  'coop-l14': () => coopStep('ViT-L/14'),
  'cocoop-b8': () => cocoopStep(8),
  'vit-b16-b8': () => vitForward(8),
};
if (!tasks[task]) throw new Error(`unknown task ${task}: ${Object.keys(tasks).join(', ')}`);
const result = await tasks[task]();
process.stdout.write(`${JSON.stringify({ task, backend: backend.name, ...result })}\n`);
