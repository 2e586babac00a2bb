import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createOptimizer, ensureBackend, PluginRegistry, resolveExperiment, Rng, tf, type Batch } from '@dfd/core';
import { loadClip, type ClipEncoder } from '@dfd/encoder-clip';
import { ufdImagesLoader, ufdPlugin, ufdRecipe, UfdConfigSchema, UfdDetector } from '@dfd/plugin-ufd';

const TINY_CLIP = fileURLToPath(new URL('../../../examples/models/tiny-clip', import.meta.url));
let encoder: ClipEncoder;
beforeAll(async () => {
  await ensureBackend();
  encoder = await loadClip(TINY_CLIP);
});
afterAll(() => encoder?.dispose());

const values = (t: tf.Tensor) => Array.from(t.dataSync());

function featureBatch(features: number[][], labels: number[]): Batch {
  const f = tf.tensor2d(features);
  const l = tf.tensor1d(labels, 'int32');
  return { samples: [], features: f, labels: l, dispose: () => tf.dispose([f, l]) };
}

describe('UFD linear probe', () => {
  test('Linear(D, 1): weight N(0, 0.02), bias U(±1/√D); D from the encoder', () => {
    const probe = new UfdDetector(UfdConfigSchema.parse({}), { encoder, rng: new Rng(1) });
    expect(probe.dim).toBe(32);
    expect(probe.weight.shape).toEqual([32, 1]);
    const big = new UfdDetector(UfdConfigSchema.parse({ dim: 4096 }), { rng: new Rng(2) });
    const w = values(big.weight);
    const std = Math.sqrt(w.reduce((a, b) => a + b * b, 0) / w.length);
    expect(std).toBeGreaterThan(0.019);
    expect(std).toBeLessThan(0.021);
    expect(Math.abs(values(big.bias)[0]!)).toBeLessThanOrEqual(1 / 64);
    expect(Object.keys(probe.trainableVariables())).toEqual(['fc.weight', 'fc.bias']);
    probe.dispose();
    big.dispose();
  });

  test('forward is x·w + b as [B, 1]; the loss is BCE-with-logits (PyTorch formula); P(fake) = sigmoid', () => {
    const probe = new UfdDetector(UfdConfigSchema.parse({ dim: 2 }), { rng: new Rng(3) });
    probe.weight.assign(tf.tensor2d([[2], [-1]]));
    probe.bias.assign(tf.tensor1d([0.5]));
    const batch = featureBatch([[1, 0], [0, 3], [40, 0]], [1, 0, 0]);
    const logits = probe.forward(batch, false);
    expect(logits.shape).toEqual([3, 1]);
    expect(values(logits)).toEqual([2.5, -2.5, 80.5]);
    const loss = probe.loss(logits, batch.labels).dataSync()[0]!;
    // mean of softplus(-2.5), softplus(-2.5), softplus(80.5): stable for large logits.
    const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
    expect(loss).toBeCloseTo((softplus(-2.5) * 2 + softplus(80.5)) / 3, 5);
    const p = values(probe.probabilities(logits));
    expect(p[0]).toBeCloseTo(1 / (1 + Math.exp(-2.5)), 6);
    expect(p[2]).toBeCloseTo(1, 6);
    batch.dispose();
    probe.dispose();
  });

  test('one AdamW step trains weight and bias and never the encoder (pixels mode); memory is flat', () => {
    const probe = new UfdDetector(UfdConfigSchema.parse({ imageInput: 'pixels' }), { encoder, rng: new Rng(4) });
    expect(probe.needs).toEqual({ pixels: true, features: false, extras: [], boxes: false });
    const frozen = Object.fromEntries(Object.entries(encoder.weights()).map(([k, v]) => [k, values(v)]));
    const vars = probe.trainableVariables();
    const before = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, values(v)]));
    const rng = new Rng(5);
    const pixels = tf.tensor4d(rng.normalArray(4 * 3 * 32 * 32), [4, 3, 32, 32]);
    const labels = tf.tensor1d([0, 1, 1, 0], 'int32');
    const batch: Batch = { samples: [], pixels, labels, dispose: () => tf.dispose([pixels, labels]) };
    const optimizer = createOptimizer({ type: 'adamw', lr: 1e-4, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 });
    const step = () => {
      const { value, grads } = tf.variableGrads(() => probe.loss(probe.forward(batch, true), labels), Object.values(vars));
      optimizer.apply(vars, Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, grads[v.name]!])), 1e-4);
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const tensors = tf.memory().numTensors;
    step();
    expect(tf.memory().numTensors).toBe(tensors);
    for (const [name, variable] of Object.entries(vars)) {
      const now = values(variable);
      expect(now.every((v, i) => v !== before[name]![i]), `${name}: every element moves under Adam`).toBe(true);
    }
    for (const [name, variable] of Object.entries(encoder.weights())) expect(values(variable), name).toEqual(frozen[name]);
    optimizer.dispose();
    batch.dispose();
    probe.dispose();
  });

  test('configuration errors name the fix', () => {
    expect(() => new UfdDetector(UfdConfigSchema.parse({ imageInput: 'pixels' }), { rng: new Rng(1) })).toThrow(/needs an encoder/);
    expect(() => new UfdDetector(UfdConfigSchema.parse({}), { rng: new Rng(1) })).toThrow(/set `dim`/);
    expect(() => new UfdDetector(UfdConfigSchema.parse({ dim: 768 }), { encoder, rng: new Rng(1) })).toThrow(/differs from the encoder's embedDim 32/);
    const probe = new UfdDetector(UfdConfigSchema.parse({}), { encoder, rng: new Rng(1) });
    const wrong = featureBatch([[1, 2, 3]], [0]);
    expect(() => probe.forward(wrong, false)).toThrow(/width 3, the probe expects 32: the cache was made with another encoder/);
    const none: Batch = { samples: [], labels: wrong.labels, dispose() {} };
    expect(() => probe.forward(none, false)).toThrow(/use the 'feature-cache' loader/);
    wrong.dispose();
    probe.dispose();
  });

  test("ufdRecipe(): AdamW 1e-4 / wd 0, batch 256, UFD's augmentation, center crop without resize at eval", () => {
    const experiment = resolveExperiment({ name: 'ufd', dataset: { use: 'folder', config: { root: '/data' } }, ...ufdRecipe() });
    expect(experiment.trainer).toMatchObject({
      batchSize: 256,
      optimizer: { type: 'adamw', lr: 1e-4, beta1: 0.9, beta2: 0.999, weightDecay: 0 },
      select: 'val',
      selectMetric: 'acc',
    });
    expect(experiment.detector).toEqual({ use: 'ufd', config: { imageInput: 'features' } });
    expect(experiment.loader).toEqual({ use: 'feature-cache', config: { inner: ufdImagesLoader(224), train: 'augmented' } });
    expect(ufdImagesLoader(224).config).toEqual({
      size: 224,
      train: { crop: 'random', resize: 256, flip: 0.5, blur: { p: 0.5, sigma: [0, 3] }, jpeg: { p: 0.5, quality: [30, 100] }, normalize: 'clip' },
      eval: { crop: 'center', resize: 0, normalize: 'clip' },
    });
    expect(new PluginRegistry([ufdPlugin]).resolveConfig('detector', 'ufd', {})).toEqual({ imageInput: 'features', initStd: 0.02 });
  });
});
