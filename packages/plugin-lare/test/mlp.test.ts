/** lare-mlp against its definition, and the adaptive pooling it shares with lare-egre on a divisible size. */
import { beforeAll, expect, test } from 'vitest';
import { ensureBackend, PluginRegistry, Rng, tf, type EnhancerInput } from '@dfd/core';
import { adaptivePoolMatrix, larePlugin, LareMlpConfigSchema, LareMlpEnhancer } from '@dfd/plugin-lare';
import { maxAbsDiff } from './support.js';

beforeAll(async () => {
  await ensureBackend();
});

test('adaptive pooling bins are PyTorch’s: [floor(i·in/out), ceil((i+1)·in/out))', () => {
  // 5 → 3: bins [0,2), [1,4), [3,5)
  expect(Array.from(adaptivePoolMatrix(5, 3))).toEqual([0.5, 0.5, 0, 0, 0, 0, 1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 0.5, 0.5].map(Math.fround));
});

test('lare-mlp: 4×4 mean pooling, NCHW flatten, Linear → ReLU → Linear', () => {
  const mlp = new LareMlpEnhancer(LareMlpConfigSchema.parse({ poolSize: 8, hidden: [16], outputDim: 5 }), new Rng(1));
  expect(mlp.outputDim).toBe(5);
  const map = tf.tensor4d(new Rng(2).uniformArray(2 * 4 * 32 * 32, 0, 1), [2, 4, 32, 32]);
  const input: EnhancerInput = { image: { embeds: tf.zeros([2, 1]) as tf.Tensor2D }, extras: { lare: map }, imageSize: 224, training: false };
  const out = mlp.enhance(input);
  const v = mlp.trainableVariables();
  const pooled = tf.avgPool(tf.transpose(map, [0, 2, 3, 1]) as tf.Tensor4D, 4, 4, 'valid'); // NHWC [2, 8, 8, 4]
  const flat = tf.transpose(pooled, [0, 3, 1, 2]).reshape([2, 256]);
  const hidden = tf.relu(tf.add(tf.matMul(flat, v['mlp.0.weight']!), v['mlp.0.bias']!));
  const want = tf.add(tf.matMul(hidden, v['mlp.1.weight']!), v['mlp.1.bias']!);
  expect(maxAbsDiff(out, want)).toBeLessThan(1e-5);
  mlp.dispose();
});

test('registry: the three stage-2 enhancers with defaulted configs', () => {
  const registry = new PluginRegistry([larePlugin]);
  expect(registry.namesOf('enhancer')).toEqual(['lare-egre', 'lare-mlp', 'lare-roi']);
  expect(registry.resolveConfig('enhancer', 'lare-egre', {})).toEqual({ mapKey: 'lare', mapChannels: 4, heads: 8, headDim: 64, dropout: 0.1, channelHidden: 128, output: 'both' });
  expect(registry.resolveConfig('enhancer', 'lare-roi', {})).toMatchObject({ outputSize: 14, samplingRatio: -1, aggregate: 'mean', regions: 5 });
  expect(() => registry.resolveConfig('enhancer', 'lare-egre', { heads: 0 })).toThrow(/invalid/);
});
