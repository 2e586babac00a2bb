/**
 * lare-egre and lare-roi against PyTorch versions written from LaRE's MultiHeadMapAttention /
 * ScaledDotProductWithMapAttention / ChannelAlignLayer and torchvision's roi_align
 * (tools/fixtures/fusion/make_fixtures.py): outputs and gradients with respect to the inputs and every
 * parameter, ≤ 1e-5. Dropout is off in eval (the fixture's mode); its training behaviour is tested below.
 */
import { beforeAll, expect, test } from 'vitest';
import { ensureBackend, Rng, tf, type EnhancerInput, type NamedTensor } from '@dfd/core';
import { LareEgreConfigSchema, LareEgreEnhancer, LareRoiConfigSchema, LareRoiEnhancer } from '@dfd/plugin-lare';
import { encoderGeometry, fixtureTensor, gradsOf, loadFixture, loadParams, maxAbsDiff, type FixtureMeta } from './support.js';

let meta: FixtureMeta;
let ref: Record<string, NamedTensor>;
const T = (name: string) => fixtureTensor(ref, name);

beforeAll(async () => {
  await ensureBackend();
  ({ meta, ref } = await loadFixture());
});

function makeEgre(seed = 1, dropout = 0.1) {
  const config = LareEgreConfigSchema.parse({ heads: meta.heads, headDim: meta.headDim, channelHidden: meta.channelHidden, dropout });
  return new LareEgreEnhancer(config, encoderGeometry({ visionWidth: meta.width, gridSize: meta.grid }), new Rng(seed));
}

function egreInput(tokens: tf.Tensor, map: tf.Tensor, training: boolean): EnhancerInput {
  return { image: { embeds: tf.zeros([meta.B, 1]) as tf.Tensor2D, patchTokens: tokens as tf.Tensor4D }, extras: { lare: map }, imageSize: meta.imageSize, training };
}

test('lare-egre: output [s, c] and gradients (inputs and every parameter) equal PyTorch', () => {
  const egre = makeEgre();
  expect(egre.outputDim).toBe(2 * meta.width);
  loadParams(egre.trainableVariables(), ref, 'egre.param.');
  const tokens = tf.variable(T('egre.tokens'));
  const map = tf.variable(T('egre.map'));
  const out = egre.enhance(egreInput(tokens, map, false));
  expect(maxAbsDiff(out, T('egre.out'))).toBeLessThan(1e-5);
  const cot = T('egre.cot');
  const vars = { tokens, map, ...egre.trainableVariables() };
  const { grads } = gradsOf(() => tf.tidy(() => tf.sum(tf.mul(egre.enhance(egreInput(tokens, map, false)), cot)) as tf.Scalar), vars);
  expect(Object.keys(grads).length).toBe(2 + 15);
  for (const [name, g] of Object.entries(grads)) expect(maxAbsDiff(g, T(`egre.grad.${name}`)), name).toBeLessThan(1e-5);
  tf.dispose([tokens, map, out, cot, ...Object.values(grads)]);
  egre.dispose();
});

test('lare-egre dropout: seeded in training (same seed, same output; differs from eval), identity in eval', () => {
  const tokens = T('egre.tokens');
  const map = T('egre.map');
  const run = (training: boolean) => {
    const egre = makeEgre(7, 0.1);
    loadParams(egre.trainableVariables(), ref, 'egre.param.');
    const a = egre.enhance(egreInput(tokens, map, training));
    const b = egre.enhance(egreInput(tokens, map, training));
    egre.dispose();
    return [a, b] as const;
  };
  const [train1, train2] = run(true);
  const [again1] = run(true);
  const [eval1, eval2] = run(false);
  expect(maxAbsDiff(train1, again1)).toBe(0); // reproducible from the seed
  expect(maxAbsDiff(train1, train2)).toBeGreaterThan(1e-3); // a fresh mask per call
  expect(maxAbsDiff(train1, eval1)).toBeGreaterThan(1e-3);
  expect(maxAbsDiff(eval1, eval2)).toBe(0);
  expect(maxAbsDiff(eval1, T('egre.out'))).toBeLessThan(1e-5);
  tf.dispose([tokens, map, train1, train2, again1, eval1, eval2]);
});

test('lare-egre: missing or misshapen inputs fail with a message naming the fix', () => {
  const egre = makeEgre();
  const tokens = T('egre.tokens');
  const input = egreInput(tokens, T('egre.map'), false);
  expect(() => egre.enhance({ ...input, extras: {} })).toThrow(/no 'lare' extra .*dfd lare/);
  expect(() => egre.enhance({ ...input, extras: { lare: tf.zeros([meta.B, 3, 8, 8]) } })).toThrow(/must be \[B, 4, H, W\]/);
  expect(() => egre.enhance({ ...input, image: { embeds: input.image.embeds } })).toThrow(/no patch tokens/);
  expect(() => egre.enhance({ ...input, image: { embeds: input.image.embeds, patchTokens: tf.zeros([meta.B, 5, 5, meta.width]) as tf.Tensor4D } })).toThrow(/built for \[B, 4, 4, 16\]/);
  egre.dispose();
});

test.each(['mean', 'concat'] as const)('lare-roi (%s): RoI Align at the patch stride equals torchvision + GAP + region aggregation', (aggregate) => {
  const roi = new LareRoiEnhancer(LareRoiConfigSchema.parse({ outputSize: 3, aggregate, regions: 3 }), encoderGeometry({ visionWidth: meta.width, gridSize: meta.grid }));
  expect(roi.outputDim).toBe(aggregate === 'mean' ? meta.width : 3 * meta.width);
  const tokens = tf.variable(T('roi.tokens'));
  const boxes = T('roi.boxes') as tf.Tensor3D;
  const input = (): EnhancerInput => ({ image: { embeds: tf.zeros([meta.B, 1]) as tf.Tensor2D, patchTokens: tokens as unknown as tf.Tensor4D }, extras: {}, boxes, imageSize: meta.imageSize, training: true });
  const out = roi.enhance(input());
  expect(maxAbsDiff(out, T(`roi.${aggregate}.out`))).toBeLessThan(1e-5);
  const cot = T(`roi.${aggregate}.cot`);
  const { grads } = gradsOf(() => tf.tidy(() => tf.sum(tf.mul(roi.enhance(input()), cot)) as tf.Scalar), { tokens });
  expect(maxAbsDiff(grads.tokens!, T(`roi.${aggregate}.grad`))).toBeLessThan(1e-5);
  expect(() => roi.enhance({ ...input(), boxes: undefined })).toThrow(/no face boxes/);
  expect(() => new LareRoiEnhancer(LareRoiConfigSchema.parse({ regions: 5 }), encoderGeometry({ visionWidth: meta.width, gridSize: meta.grid })).enhance(input())).toThrow(/set regions to 3/);
  tf.dispose([tokens, boxes, out, cot, ...Object.values(grads)]);
});
