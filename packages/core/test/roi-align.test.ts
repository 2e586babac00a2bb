/**
 * roiAlign against torchvision.ops.roi_align (tools/fixtures/fusion/make_fixtures.py): aligned and not,
 * fixed and adaptive sampling, a non-square map, boxes partly outside it; outputs and d/d features.
 */
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { beforeAll, expect, test } from 'vitest';
import { ensureBackend, readSafetensors, roiAlign, tf, type NamedTensor } from '../src/index.js';

const FIXTURE = fileURLToPath(new URL('../../../tools/fixtures/fusion/out/', import.meta.url));
interface RoiCase {
  aligned: boolean;
  samplingRatio: number;
  outputSize: [number, number];
  spatialScale: number;
}
const meta = JSON.parse(readFileSync(`${FIXTURE}fusion.json`, 'utf8')) as { roialign: RoiCase[] };
let ref: Record<string, NamedTensor>;
const tensor = (name: string) => tf.tensor(ref[name]!.data as Float32Array, ref[name]!.shape);

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

beforeAll(async () => {
  await ensureBackend();
  ref = (await readSafetensors(`${FIXTURE}fusion.safetensors`)).tensors;
});

test.each(meta.roialign.map((c, i) => [i, c] as const))('case %i %o: output and feature gradient equal torchvision', (i, c) => {
  const features = tensor('roialign.features') as tf.Tensor4D;
  const boxes = tensor('roialign.boxes') as tf.Tensor3D;
  const options = { outputSize: c.outputSize, samplingRatio: c.samplingRatio, aligned: c.aligned, spatialScale: c.spatialScale };
  const out = roiAlign(features, boxes, options);
  expect(maxAbsDiff(out, tensor(`roialign.${i}.out`))).toBeLessThan(1e-5);
  const cot = tensor(`roialign.${i}.cot`);
  const grad = tf.grad((f: tf.Tensor) => tf.sum(tf.mul(roiAlign(f as tf.Tensor4D, boxes, options), cot)))(features);
  expect(maxAbsDiff(grad, tensor(`roialign.${i}.grad`))).toBeLessThan(1e-5);
  // The bin mean is the mean of the full output.
  const mean = roiAlign(features, boxes, { ...options, pool: 'mean' });
  expect(maxAbsDiff(mean, tf.mean(out, [2, 3]))).toBeLessThan(1e-6);
  tf.dispose([features, boxes, out, cot, grad, mean]);
});

test('bad boxes and sizes fail with a message naming them', () => {
  const features = tf.zeros([1, 4, 4, 2]) as tf.Tensor4D;
  expect(() => roiAlign(features, tf.zeros([2, 1, 4]) as tf.Tensor3D, { outputSize: 2 })).toThrow(/boxes must be \[1, R, 4\]/);
  expect(() => roiAlign(features, [0, 0, Number.NaN, 1], { outputSize: 2 })).toThrow(/not finite/);
  expect(() => roiAlign(features, [0, 0, 1, 1], { outputSize: 0 })).toThrow(/outputSize/);
  features.dispose();
});
