/** Shared helpers of the stage-2 tests: the PyTorch fixture (tools/fixtures/fusion) and small tensor utilities. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { readSafetensors, tf, type Encoder, type EncoderInfo, type NamedTensor } from '@dfd/core';

const FIXTURE = fileURLToPath(new URL('../../../tools/fixtures/fusion/out/', import.meta.url));

export interface FixtureMeta {
  B: number;
  grid: number;
  width: number;
  heads: number;
  headDim: number;
  channelHidden: number;
  map: number[];
  embed: number;
  imageSize: number;
  attn: { dims: number[] };
}

export async function loadFixture(): Promise<{ meta: FixtureMeta; ref: Record<string, NamedTensor> }> {
  const meta = JSON.parse(readFileSync(`${FIXTURE}fusion.json`, 'utf8')) as FixtureMeta;
  return { meta, ref: (await readSafetensors(`${FIXTURE}fusion.safetensors`)).tensors };
}

export function fixtureTensor(ref: Record<string, NamedTensor>, name: string): tf.Tensor {
  const t = ref[name];
  if (!t) throw new Error(`fixture has no tensor '${name}'`);
  return tf.tensor(t.data as Float32Array, t.shape);
}

/** Only the geometry of an encoder (what the modules read at construction); the parity inputs are given directly. */
export function encoderGeometry(info: Partial<EncoderInfo>): Encoder {
  return { info: { visionWidth: 16, gridSize: 4, imageSize: 32, embedDim: 12, ...info } } as Encoder;
}

/** Copies fixture parameters `${prefix}${name}` into a module's variables (every variable must be covered). */
export function loadParams(vars: Record<string, tf.Variable>, ref: Record<string, NamedTensor>, prefix: string): void {
  for (const [name, v] of Object.entries(vars)) {
    const t = fixtureTensor(ref, `${prefix}${name}`);
    expect(t.shape, name).toEqual(v.shape);
    v.assign(t);
    t.dispose();
  }
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** Gradients of `f` (a scalar) with respect to the given variables, by name. */
export function gradsOf(f: () => tf.Scalar, vars: Record<string, tf.Variable>): { value: number; grads: Record<string, tf.Tensor> } {
  const names = Object.keys(vars);
  const { value, grads } = tf.variableGrads(f, names.map((n) => vars[n]!));
  const byName: Record<string, tf.Tensor> = {};
  names.forEach((n) => (byName[n] = grads[vars[n]!.name]!));
  const v = value.dataSync()[0]!;
  value.dispose();
  return { value: v, grads: byName };
}
