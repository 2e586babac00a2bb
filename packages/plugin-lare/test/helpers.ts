import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { SafetensorsFile } from '@dfd/core';

export const FIXTURES = fileURLToPath(new URL('../../../tools/fixtures/lare-stage1/out/', import.meta.url));
export const TINY_SD = join(FIXTURES, 'tiny-sd');
export const IMAGES = join(FIXTURES, 'images');
export const NOISE = join(FIXTURES, 'noise.safetensors');

export interface Cases {
  size: number;
  prompt: string;
  ensemble: number;
  images: Record<string, string>;
  maps: Array<{ tensor: string; image: string; t: number; ensemble: number; schedule: string; prompt: string }>;
}

export async function reference(name: string, file = 'reference.safetensors'): Promise<Float32Array> {
  const st = await SafetensorsFile.open(join(FIXTURES, file));
  try {
    return (await st.readFloat32(name)).data;
  } finally {
    await st.close();
  }
}

/** max |a − b| / max |b|: the error relative to the reference's scale. */
export function relativeError(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / scale;
}
