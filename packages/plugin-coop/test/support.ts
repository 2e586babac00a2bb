/** Shared helpers of the CoOp tests: the committed tiny CLIP and small tensor utilities. */
import { fileURLToPath } from 'node:url';
import { tf } from '@dfd/core';

export const TINY_CLIP = fileURLToPath(new URL('../../../examples/models/tiny-clip', import.meta.url));

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

export function values(t: tf.Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}
