import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ClipPromptDetector, createOptimizer, ensureBackend, PluginRegistry, resolveExperiment, Rng, tf, type Batch } from '@dfd/core';
import { loadClip, type ClipEncoder } from '@dfd/encoder-clip';
import { cocoopPlugin, cocoopRecipe, CoCoOpConfigSchema, CoCoOpPromptLearner, type CoCoOpConfigInput } from '@dfd/plugin-cocoop';

const TINY_CLIP = fileURLToPath(new URL('../../../examples/models/tiny-clip', import.meta.url));
let encoder: ClipEncoder;

beforeAll(async () => {
  await ensureBackend();
  encoder = await loadClip(TINY_CLIP);
});
afterAll(() => encoder?.dispose());

const values = (t: tf.Tensor) => t.dataSync() as Float32Array;
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

function learner(config: CoCoOpConfigInput = {}, seed = 1): CoCoOpPromptLearner {
  return new CoCoOpPromptLearner(CoCoOpConfigSchema.parse(config), encoder, new Rng(seed));
}

function unitRows(rng: Rng, n: number, d = 32): tf.Tensor2D {
  return tf.tidy(() => {
    const x = tf.tensor2d(rng.normalArray(n * d), [n, d]);
    return tf.div(x, tf.norm(x, 'euclidean', -1, true)) as tf.Tensor2D;
  });
}

describe('CoCoOp', () => {
  test('the meta-net is vis → vis/16 → ctx_dim with PyTorch Linear init; context from "a photo of a"', () => {
    const cocoop = learner();
    expect(cocoop.template.nCtx).toBe(4);
    expect(cocoop.template.prompts).toEqual(['a photo of a real.', 'a photo of a fake.']);
    const vars = cocoop.trainableVariables();
    expect(Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, v.shape]))).toEqual({
      ctx: [4, 48],
      'meta_net.linear1.weight': [32, 2],
      'meta_net.linear1.bias': [2],
      'meta_net.linear2.weight': [2, 48],
      'meta_net.linear2.bias': [48],
    });
    const bound1 = 1 / Math.sqrt(32);
    expect(Math.max(...Array.from(values(vars['meta_net.linear1.weight']!), Math.abs))).toBeLessThanOrEqual(bound1);
    expect(Math.max(...Array.from(values(vars['meta_net.linear2.weight']!), Math.abs))).toBeGreaterThan(bound1); // bound 1/√2
    cocoop.dispose();
  });

  test('each image gets ctx + meta_net(f) on every context token (checked against a hand-built prompt)', () => {
    const cocoop = learner({ ctxInit: '', nCtx: 3 }, 2);
    const image = unitRows(new Rng(3), 2);
    const got = cocoop.textFeatures({ encoder, imageFeatures: image, training: false });
    expect(got.shape).toEqual([2, 2, 32]);
    // π by hand, in plain JS: ReLU(f·W1 + b1)·W2 + b2.
    const v = cocoop.trainableVariables();
    const [w1, b1, w2, b2] = ['meta_net.linear1.weight', 'meta_net.linear1.bias', 'meta_net.linear2.weight', 'meta_net.linear2.bias'].map((k) => values(v[k]!));
    const f = values(image);
    const ctx = values(cocoop.ctx);
    for (let i = 0; i < 2; i++) {
      const hidden = [0, 1].map((h) => Math.max(0, b1![h]! + Array.from({ length: 32 }, (_, k) => f[i * 32 + k]! * w1![k * 2 + h]!).reduce((a, b) => a + b, 0)));
      const pi = Array.from({ length: 48 }, (_, d) => b2![d]! + hidden[0]! * w2![d]! + hidden[1]! * w2![48 + d]!);
      const shifted = Float32Array.from(ctx, (c, j) => c + pi[j % 48]!);
      const expected = tf.tidy(() => {
        const block = tf.tile(tf.tensor4d(shifted, [1, 1, 3, 48]), [1, 2, 1, 1]) as tf.Tensor4D;
        const { embeddings, eotIndices } = cocoop.template.assemble(block, 'end');
        return encoder.encodeText({ embeddings, eotIndices });
      });
      expect(maxAbsDiff(values(got.slice([i, 0, 0], [1, 2, 32])), values(expected))).toBeLessThan(1e-5);
      expected.dispose();
    }
    tf.dispose([got, image]);
    cocoop.dispose();
  });

  test('the batched text pass (B × n_cls sequences in one call) equals the per-image loop', () => {
    const cocoop = learner({}, 4);
    for (const batch of [1, 5]) {
      const image = unitRows(new Rng(batch), batch);
      const a = cocoop.batchedPass(encoder, image);
      const b = cocoop.loopPass(encoder, image);
      expect(a.shape).toEqual([batch, 2, 32]);
      expect(maxAbsDiff(values(a), values(b))).toBeLessThan(1e-5);
      tf.dispose([a, b, image]);
    }
    cocoop.dispose();
  });

  test('finite differences agree with autodiff for ctx and every meta-net tensor', () => {
    const cocoop = learner({ ctxInit: '', nCtx: 2, initStd: 0.5 }, 6);
    const rng = new Rng(7);
    const image = unitRows(rng, 4);
    const labels = tf.tensor1d([0, 1, 1, 0], 'int32');
    const loss = () => {
      const text = cocoop.textFeatures({ encoder, imageFeatures: image, training: true });
      const t = tf.div(text, tf.norm(text, 'euclidean', -1, true));
      const logits = tf.mul(tf.squeeze(tf.matMul(t as tf.Tensor3D, tf.expandDims(image, 2)), [2]), 100);
      return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 2), logits) as tf.Scalar;
    };
    const vars = cocoop.trainableVariables();
    const { grads } = tf.variableGrads(loss, Object.values(vars));
    for (const [name, variable] of Object.entries(vars)) {
      const grad = values(grads[variable.name]!);
      const base = Float32Array.from(values(variable));
      const scale = Math.max(...Array.from(grad, Math.abs));
      // The largest-gradient coordinate plus a few random ones (a dead ReLU unit has exact zeros).
      const coordinates = new Set([grad.indexOf(grad.reduce((m, g) => (Math.abs(g) > Math.abs(m) ? g : m), 0)), rng.int(base.length), rng.int(base.length)]);
      const eps = 1e-2;
      for (const i of coordinates) {
        const at = (delta: number) => {
          const data = Float32Array.from(base);
          data[i]! += delta;
          variable.assign(tf.tensor(data, variable.shape));
          return tf.tidy(() => loss().dataSync()[0]!);
        };
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        expect(Math.abs(numeric - grad[i]!) / Math.max(scale, 1e-6), `${name}[${i}]: numeric ${numeric} vs autodiff ${grad[i]}`).toBeLessThan(3e-2);
      }
      variable.assign(tf.tensor(base, variable.shape));
    }
    tf.dispose([image, labels, ...Object.values(grads)]);
    cocoop.dispose();
  });

  test('one step through the clip-prompt detector trains ctx and the whole meta-net, never the encoder; memory is flat', () => {
    const cocoop = learner({}, 8);
    const detector = new ClipPromptDetector({ imageInput: 'pixels' }, { encoder, promptLearner: cocoop, enhancers: [], rng: new Rng(1) });
    const trainable = detector.trainableVariables();
    expect(Object.keys(trainable).sort()).toEqual([
      'prompt_learner.ctx',
      'prompt_learner.meta_net.linear1.bias',
      'prompt_learner.meta_net.linear1.weight',
      'prompt_learner.meta_net.linear2.bias',
      'prompt_learner.meta_net.linear2.weight',
    ]);
    const snapshot = (vars: Record<string, tf.Variable>) => Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, Float32Array.from(values(v))]));
    const frozenBefore = snapshot(encoder.weights());
    const before = snapshot(trainable);
    const rng = new Rng(9);
    const pixels = tf.tensor4d(rng.normalArray(4 * 3 * 32 * 32), [4, 3, 32, 32]);
    const labels = tf.tensor1d([0, 1, 0, 1], 'int32');
    const batch: Batch = { samples: [], pixels, labels, dispose: () => tf.dispose([pixels, labels]) };
    // No weight decay: a variable only moves if the loss reaches it.
    const optimizer = createOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false });
    const step = () => {
      const { value, grads } = tf.variableGrads(() => detector.loss(detector.forward(batch, true), labels), Object.values(trainable));
      optimizer.apply(trainable, Object.fromEntries(Object.entries(trainable).map(([k, v]) => [k, grads[v.name]!])), 0.01);
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const tensors = tf.memory().numTensors;
    step();
    expect(tf.memory().numTensors).toBe(tensors);
    for (const [name, variable] of Object.entries(trainable)) expect(maxAbsDiff(values(variable), before[name]!), `${name} never trained`).toBeGreaterThan(0);
    for (const [name, variable] of Object.entries(encoder.weights())) expect(maxAbsDiff(values(variable), frozenBefore[name]!), `frozen ${name} changed`).toBe(0);
    optimizer.dispose();
    batch.dispose();
    cocoop.dispose();
  });

  test('presets and cocoopRecipe() resolve to the reference values', () => {
    const registry = new PluginRegistry([cocoopPlugin]);
    expect(registry.resolveConfig('promptLearner', 'cocoop', {}, 'cocoop')).toMatchObject({ nCtx: 4, ctxInit: 'a photo of a', metaNetReduction: 16 });
    expect(registry.resolveConfig('promptLearner', 'cocoop', {}, 'c16')).toMatchObject({ nCtx: 16, ctxInit: '' });
    const experiment = resolveExperiment({ name: 'cocoop', dataset: { use: 'df40' }, ...cocoopRecipe() });
    expect(experiment.trainer).toMatchObject({
      epochs: 10,
      batchSize: 1,
      optimizer: { type: 'sgd', lr: 0.002, momentum: 0.9, weightDecay: 5e-4 },
      schedule: { type: 'cosine', warmupEpochs: 1, warmupType: 'constant', warmupLr: 1e-5 },
    });
    expect(experiment.promptLearner).toEqual({ use: 'cocoop', preset: 'cocoop', config: {} });
  });

  test('without image features it says how to use it', () => {
    const cocoop = learner();
    expect(() => cocoop.textFeatures({ encoder, training: false })).toThrow(/needs the L2-normalised image features/);
    cocoop.dispose();
  });
});
