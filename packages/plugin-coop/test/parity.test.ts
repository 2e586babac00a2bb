/**
 * CoOp against PyTorch + transformers (tools/fixtures/prompt/make_coop_fixture.py): the same tiny CLIP, the
 * same context vectors, CoOp's own prompt assembly and 77-token text pass in PyTorch; here the text pass
 * stops at the longest EOT. Text features, loss and d loss / d ctx must agree.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ensureBackend, readSafetensors, Rng, tf, type NamedTensor } from '@dfd/core';
import { loadClip, type ClipEncoder } from '@dfd/encoder-clip';
import { CoOpConfigSchema, CoOpPromptLearner } from '@dfd/plugin-coop';
import { maxAbsDiff, TINY_CLIP } from './support.js';

const FIXTURE = fileURLToPath(new URL('../../../tools/fixtures/prompt/out/', import.meta.url));
interface Case {
  name: string;
  classNames: string[];
  nCtx: number;
  csc: boolean;
  classTokenPosition: 'end' | 'middle' | 'front';
}
const cases = JSON.parse(readFileSync(`${FIXTURE}coop.json`, 'utf8')) as Case[];
let encoder: ClipEncoder;
let ref: Record<string, NamedTensor>;

beforeAll(async () => {
  await ensureBackend();
  encoder = await loadClip(TINY_CLIP);
  ref = (await readSafetensors(`${FIXTURE}coop.safetensors`)).tensors;
});
afterAll(() => encoder?.dispose());

const f32 = (t: NamedTensor) => t.data as Float32Array;
const maxAbs = (a: ArrayLike<number>) => Math.max(...Array.from(a, Math.abs));

test.each(cases.map((c) => [c.name, c] as const))('%s: text features, loss and gradient match PyTorch', (name, c) => {
  const coop = new CoOpPromptLearner(CoOpConfigSchema.parse({ classNames: c.classNames, nCtx: c.nCtx, csc: c.csc, classTokenPosition: c.classTokenPosition }), encoder, new Rng(1));
  coop.ctx.assign(tf.tensor(f32(ref[`${name}.ctx`]!), ref[`${name}.ctx`]!.shape));
  expect(coop.template.eotIndices).toEqual(Array.from(ref[`${name}.eot`]!.data as Int32Array));
  const image = tf.tensor2d(f32(ref.image!), ref.image!.shape as [number, number]);
  const labels = tf.tensor1d(Array.from(ref.labels!.data as Int32Array), 'int32');
  const text = coop.textFeatures({ encoder, training: false });
  const textError = maxAbsDiff(text.dataSync(), f32(ref[`${name}.text`]!));
  const { value, grads } = tf.variableGrads(() => {
    const t = coop.textFeatures({ encoder, training: true });
    const logits = tf.mul(tf.matMul(image, tf.div(t, tf.norm(t, 'euclidean', -1, true)), false, true), 100);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 2), logits) as tf.Scalar;
  }, [coop.ctx]);
  const lossError = Math.abs(value.dataSync()[0]! - f32(ref[`${name}.loss`]!)[0]!);
  const grad = grads[coop.ctx.name]!.dataSync();
  const gradError = maxAbsDiff(grad, f32(ref[`${name}.grad`]!)) / maxAbs(f32(ref[`${name}.grad`]!));
  console.log(`${name}: |Δtext| ${textError.toExponential(2)}, |Δloss| ${lossError.toExponential(2)}, |Δgrad|/max|grad| ${gradError.toExponential(2)}`);
  expect(textError).toBeLessThan(1e-4 * maxAbs(f32(ref[`${name}.text`]!)));
  expect(lossError).toBeLessThan(1e-4);
  expect(gradError).toBeLessThan(1e-3);
  tf.dispose([image, labels, text, value, ...Object.values(grads)]);
  coop.dispose();
});
