/** Shared paths and comparison helpers for the encoder-clip tests. */
import { fileURLToPath } from 'node:url';
import { readSafetensors, type NamedTensor } from '@dfd/core';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURES = `${REPO}tools/fixtures/clip/out/`;
export const TINY_CLIP = `${REPO}examples/models/tiny-clip`;

export async function reference(path: string): Promise<Record<string, NamedTensor>> {
  return (await readSafetensors(path)).tensors;
}

export function f32(tensor: NamedTensor | undefined, name = 'tensor'): Float32Array {
  if (!tensor) throw new Error(`reference has no ${name}`);
  return tensor.data as Float32Array;
}

export function i32(tensor: NamedTensor | undefined): Int32Array {
  if (!tensor) throw new Error('missing reference tensor');
  return tensor.data as Int32Array;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** max |a − b| / max |b|: a relative error that is not blown up by near-zero entries. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  return maxAbsDiff(a, b) / scale;
}
