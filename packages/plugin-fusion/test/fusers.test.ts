/** concat and sum against their definitions, registry configs and presets, and the errors fusers give. */
import { beforeAll, expect, test } from 'vitest';
import { ensureBackend, PluginRegistry, Rng, tf, type FusionDims, type FusionInput } from '@dfd/core';
import { ConcatConfigSchema, ConcatFuser, fusionPlugin, RoiFuser, RoiFuserConfigSchema, SumConfigSchema, SumFuser } from '@dfd/plugin-fusion';
import { maxAbsDiff } from './support.js';

beforeAll(async () => {
  await ensureBackend();
});

const dims: FusionDims = { image: 6, enhanced: [{ name: 'a', dim: 3 }, { name: 'b', dim: 5 }], visionWidth: 8, gridSize: 2, imageSize: 16 };
function inputs(seed: number): FusionInput {
  const rng = new Rng(seed);
  const t = (n: number) => tf.tensor2d(rng.normalArray(2 * n), [2, n]);
  const image = t(6);
  return {
    image,
    enhanced: [{ name: 'a', features: t(3) }, { name: 'b', features: t(5) }],
    imageFeatures: { embeds: image, patchTokens: tf.tensor4d(rng.normalArray(2 * 2 * 2 * 8), [2, 2, 2, 8]) },
    extras: {},
    imageSize: 16,
    training: false,
  };
}

test('registry: fusers are registered with defaulted configs; fusion-clip projects the image to the vision width', () => {
  const registry = new PluginRegistry([fusionPlugin]);
  expect(registry.namesOf('fuser')).toEqual(['attention', 'concat', 'roi', 'sum']);
  expect(registry.resolveConfig('fuser', 'concat', {})).toEqual({ imageProjection: 'none' });
  expect(registry.resolveConfig('fuser', 'concat', {}, 'fusion-clip')).toEqual({ imageProjection: 'visionWidth' });
  expect(registry.resolveConfig('fuser', 'attention', {})).toEqual({ heads: 8, headDim: 64, dropout: 0.1 });
  expect(() => registry.resolveConfig('fuser', 'sum', { width: -1 })).toThrow(/invalid/);
});

test('concat: plain, and with the image projected to the vision width (fusion-clip)', () => {
  const x = inputs(1);
  const plain = new ConcatFuser(ConcatConfigSchema.parse({}), new Rng(1));
  expect(plain.build(dims)).toBe(6 + 3 + 5);
  expect(plain.trainableVariables()).toEqual({});
  const expected = tf.concat([x.image, x.enhanced[0]!.features, x.enhanced[1]!.features], 1);
  expect(maxAbsDiff(plain.fuse(x), expected)).toBe(0);
  const projected = new ConcatFuser(ConcatConfigSchema.parse({ imageProjection: 'visionWidth' }), new Rng(1));
  expect(projected.build(dims)).toBe(8 + 3 + 5);
  const { 'image_proj.weight': w, 'image_proj.bias': b } = projected.trainableVariables();
  expect(w!.shape).toEqual([6, 8]);
  const want = tf.concat([tf.add(tf.matMul(x.image, w!), b!), x.enhanced[0]!.features, x.enhanced[1]!.features], 1);
  expect(maxAbsDiff(projected.fuse(x), want)).toBeLessThan(1e-6);
});

test('sum: every input through its own Linear to one width, summed', () => {
  const x = inputs(2);
  const sum = new SumFuser(SumConfigSchema.parse({ width: 4 }), new Rng(3));
  expect(sum.build(dims)).toBe(4);
  const v = sum.trainableVariables();
  expect(Object.keys(v).sort()).toEqual(['proj.0_a.bias', 'proj.0_a.weight', 'proj.1_b.bias', 'proj.1_b.weight', 'proj.image.bias', 'proj.image.weight']);
  const lin = (t: tf.Tensor, name: string) => tf.add(tf.matMul(t, v[`${name}.weight`]!), v[`${name}.bias`]!);
  const want = tf.addN([lin(x.image, 'proj.image'), lin(x.enhanced[0]!.features, 'proj.0_a'), lin(x.enhanced[1]!.features, 'proj.1_b')]);
  expect(maxAbsDiff(sum.fuse(x), want)).toBeLessThan(1e-6);
  expect(new SumFuser(SumConfigSchema.parse({}), new Rng(3)).build(dims)).toBe(6);
});

test('inputs other than those built for, or fuse before build, fail naming the parts and widths', () => {
  const x = inputs(3);
  const concat = new ConcatFuser(ConcatConfigSchema.parse({}), new Rng(1));
  expect(() => concat.fuse(x)).toThrow(/fuse\(\) called before build\(\)/);
  concat.build(dims);
  expect(() => concat.fuse({ ...x, enhanced: [x.enhanced[1]!, x.enhanced[0]!] })).toThrow(/built for \(image: 6, a: 3, b: 5\) but got \(image: 6, b: 5, a: 3\)/);
});

test('roi fuser: regions attended by the image embedding; absent regions get no weight; no boxes is an error', () => {
  const x = inputs(4);
  const roi = new RoiFuser(RoiFuserConfigSchema.parse({ outputSize: 2, regions: 2 }), new Rng(5));
  expect(roi.build(dims)).toBe(2 * 6 + 3 + 5);
  expect(() => roi.fuse(x)).toThrow(/no face boxes/);
  // Image 0: both regions; image 1: region 1 absent (zero box), so its region feature is region 0's alone.
  const boxes = tf.tensor3d([0, 0, 8, 8, 8, 8, 16, 16, 0, 0, 16, 8, 0, 0, 0, 0], [2, 2, 4]);
  const out = roi.fuse({ ...x, boxes });
  expect(out.shape).toEqual([2, 20]);
  const onlyFirst = roi.fuse({ ...x, boxes: tf.tensor3d([0, 0, 8, 8, 8, 8, 16, 16, 0, 0, 16, 8, 0, 0, 0, 0].map((v, i) => (i >= 12 ? 0 : v)), [2, 2, 4]) });
  expect(maxAbsDiff(out, onlyFirst)).toBe(0);
  const moved = roi.fuse({ ...x, boxes: tf.tensor3d([0, 0, 8, 8, 8, 8, 16, 16, 0, 0, 16, 8, 2, 2, 9, 9], [2, 2, 4]) });
  expect(maxAbsDiff(out.slice([1, 14], [1, 6]), moved.slice([1, 14], [1, 6]))).toBeGreaterThan(1e-4);
  expect(() => roi.fuse({ ...x, boxes: tf.zeros([2, 3, 4]) as tf.Tensor3D })).toThrow(/set regions to 3/);
});
