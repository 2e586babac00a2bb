/**
 * The attention fuser and CLaRE's FusionCLIP head against PyTorch (tools/fixtures/fusion/make_fixtures.py):
 * outputs and gradients with respect to the inputs and every parameter, ≤ 1e-5, in eval mode.
 *
 * The head test runs the real `clip-prompt` detector with the real `lare-egre` enhancer and the `concat`
 * fuser under the `fusion-clip` preset; only the CLIP towers are replaced by fixed tensors (an encoder that
 * returns the fixture's CLS embedding and patch tokens, a prompt learner that returns its text features), so
 * the PyTorch side needs no CLIP weights.
 */
import { beforeAll, expect, test } from 'vitest';
import { ClipPromptDetector, ClipPromptConfigSchema, ensureBackend, Rng, tf, type Batch, type Encoder, type FusionInput, type NamedTensor, type PromptLearner } from '@dfd/core';
import { AttentionConfigSchema, AttentionFuser, ConcatConfigSchema, ConcatFuser, FUSION_CLIP_PRESET } from '@dfd/plugin-fusion';
import { LareEgreConfigSchema, LareEgreEnhancer } from '@dfd/plugin-lare';
import { encoderGeometry, fixtureTensor, gradsOf, loadFixture, loadParams, maxAbsDiff, type FixtureMeta } from './support.js';

let meta: FixtureMeta;
let ref: Record<string, NamedTensor>;
const T = (name: string) => fixtureTensor(ref, name);

beforeAll(async () => {
  await ensureBackend();
  ({ meta, ref } = await loadFixture());
});

test('attention fuser: output and gradients (inputs and every parameter) equal nn.MultiheadAttention + LayerNorm', () => {
  const fuser = new AttentionFuser(AttentionConfigSchema.parse({ heads: meta.heads, headDim: meta.headDim }), new Rng(1));
  const dims = meta.attn.dims;
  const width = fuser.build({ image: meta.embed, enhanced: dims.map((dim, i) => ({ name: `e${i}`, dim })), visionWidth: meta.width, gridSize: meta.grid, imageSize: meta.imageSize });
  expect(width).toBe(meta.embed + dims.length * meta.heads * meta.headDim);
  loadParams(fuser.trainableVariables(), ref, 'attn.param.');
  const image = tf.variable(T('attn.image'));
  const e0 = tf.variable(T('attn.e0'));
  const e1 = tf.variable(T('attn.e1'));
  const tokens = tf.variable(T('attn.tokens'));
  const input = (): FusionInput => ({
    image: image as unknown as tf.Tensor2D,
    enhanced: [{ name: 'e0', features: e0 as unknown as tf.Tensor2D }, { name: 'e1', features: e1 as unknown as tf.Tensor2D }],
    imageFeatures: { embeds: image as unknown as tf.Tensor2D, patchTokens: tokens as unknown as tf.Tensor4D },
    extras: {},
    imageSize: meta.imageSize,
    training: false,
  });
  const out = fuser.fuse(input());
  expect(maxAbsDiff(out, T('attn.out'))).toBeLessThan(1e-5);
  const cot = T('attn.cot');
  const vars = { image, e0, e1, tokens, ...fuser.trainableVariables() };
  const { grads } = gradsOf(() => tf.tidy(() => tf.sum(tf.mul(fuser.fuse(input()), cot)) as tf.Scalar), vars);
  expect(Object.keys(grads).length).toBe(4 + 4 + 8 + 2);
  for (const [name, g] of Object.entries(grads)) expect(maxAbsDiff(g, T(`attn.grad.${name}`)), name).toBeLessThan(1e-5);
  expect(() => fuser.fuse({ ...input(), enhanced: [input().enhanced[0]!] })).toThrow(/built for \(image: 12, e0: 6, e1: 10\)/);
  tf.dispose([image, e0, e1, tokens, out, cot, ...Object.values(grads)]);
  fuser.dispose();
});

/** An encoder whose image tower returns the fixture's CLS embedding and patch tokens (the CLIP towers are not under test). */
function fixedImageEncoder(cls: tf.Tensor, tokens: tf.Tensor): Encoder {
  const geometry = encoderGeometry({ visionWidth: meta.width, gridSize: meta.grid, imageSize: meta.imageSize, embedDim: meta.embed });
  return {
    ...geometry,
    info: { ...geometry.info, logitScale: 100 },
    encodeImage: () => ({ embeds: cls as tf.Tensor2D, patchTokens: tokens as tf.Tensor4D }),
    trainableVariables: () => ({}),
  } as unknown as Encoder;
}

test("FusionCLIP head (clip-prompt + lare-egre + concat 'fusion-clip'): logits, loss and gradients equal CLaRE's head", () => {
  const cls = tf.variable(T('head.cls'));
  const text = tf.variable(T('head.text'));
  const tokens = tf.variable(T('head.tokens'));
  const map = tf.variable(T('head.map'));
  const encoder = fixedImageEncoder(cls, tokens);
  const promptLearner: PromptLearner = {
    classNames: ['real', 'fake'],
    conditional: false,
    textFeatures: () => tf.clone(text) as tf.Tensor2D,
    trainableVariables: () => ({ text }),
    dispose: () => {},
  };
  const rng = new Rng(3);
  const egre = new LareEgreEnhancer(LareEgreConfigSchema.parse({ heads: meta.heads, headDim: meta.headDim, channelHidden: meta.channelHidden }), encoder, rng);
  const fuser = new ConcatFuser(ConcatConfigSchema.parse(FUSION_CLIP_PRESET), rng);
  const detector = new ClipPromptDetector(ClipPromptConfigSchema.parse({}), { encoder, promptLearner, enhancers: [egre], fuser, rng });
  loadParams(egre.trainableVariables(), ref, 'head.param.enhancer.');
  loadParams(fuser.trainableVariables(), ref, 'head.param.fuser.');
  const vars = detector.trainableVariables();
  expect(Object.keys(vars)).toContain('text_projection');
  loadParams({ text_projection: vars.text_projection! }, ref, 'head.param.');
  const labels = tf.tensor1d(Array.from(ref['head.labels']!.data as Float32Array), 'int32');
  const batch = { samples: [], labels, pixels: tf.zeros([meta.B, 3, 1, 1]), extras: { lare: map }, dispose: () => {} } as unknown as Batch;
  const logits = detector.forward(batch, false);
  expect(maxAbsDiff(logits, T('head.logits'))).toBeLessThan(1e-5);
  const named: Record<string, tf.Variable> = {
    cls, text, tokens, map,
    'fuser.image_proj.weight': vars['fuser.image_proj.weight']!,
    'fuser.image_proj.bias': vars['fuser.image_proj.bias']!,
    text_projection: vars.text_projection!,
    ...Object.fromEntries(Object.entries(egre.trainableVariables()).map(([n, v]) => [`enhancer.${n}`, v])),
  };
  const { value, grads } = gradsOf(() => tf.tidy(() => detector.loss(detector.forward(batch, false), labels)), named);
  expect(Math.abs(value - (ref['head.loss']!.data as Float32Array)[0]!)).toBeLessThan(1e-5);
  for (const [name, g] of Object.entries(grads)) expect(maxAbsDiff(g, T(`head.grad.${name}`)), name).toBeLessThan(1e-5);
  tf.dispose([cls, text, tokens, map, labels, logits, ...Object.values(grads)]);
  detector.dispose();
  egre.dispose();
  fuser.dispose();
});
