import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { SafetensorsFile } from '@dfd/core';
import { captureCliIo } from '../../../test/support/cli-io.js';
import { ExtrasStore } from '@dfd/dataset-df40';
import { lareCommand, lareExtraProvider } from '../src/index.js';

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

/** Cosine similarity of two maps. */
export function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

/** `dfd lare ARGS` run in-process in `dir`, its output captured. */
export async function runLare(dir: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureCliIo(dir);
  const code = await lareCommand.run(args, io);
  return { code, out: io.out(), err: io.err() };
}

/** A temporary folder with a copy of the tiny SD (int8 graphs are written beside the model) and `list.txt` naming `images` in IMAGES. */
export async function tinySdCopy(prefix: string, images: string[]): Promise<{ dir: string; model: string }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const model = join(dir, 'tiny-sd');
  await cp(TINY_SD, model, { recursive: true });
  await writeFile(join(dir, 'list.txt'), images.map((n) => join(IMAGES, n)).join('\n'));
  return { dir, model };
}

/** Maps the `lare` extra provider (dfd predict on new images) computes for `images`: with the settings recorded in `recipe`, or `config`'s. */
export async function providedMaps(model: string, recipe: string | Record<string, unknown>, images: string[], outDir: string): Promise<Float32Array[]> {
  const config = typeof recipe === 'string' ? { recipe } : recipe;
  const provider = await lareExtraProvider.create({ model, threads: 1, ...config }, { cwd: outDir });
  try {
    const files = await provider.provide(images, outDir);
    return await Promise.all(
      files.map(async (f) => {
        const file = await SafetensorsFile.open(f);
        try {
          return (await file.readFloat32('lare')).data;
        } finally {
          await file.close();
        }
      }),
    );
  } finally {
    await provider.dispose();
  }
}

/** The maps an extras store holds for `images` (found by path; `stores`: shard folders are searched in turn). */
export async function storedMaps(stores: string[], images: string[]): Promise<Float32Array[]> {
  const found = new Map<string, Float32Array>();
  for (const root of stores) {
    const store = await ExtrasStore.open(root);
    try {
      for (const entry of store.entries()) if (images.includes(entry.path)) found.set(entry.path, (await store.read(entry)).data as Float32Array);
    } finally {
      await store.close();
    }
  }
  return images.map((path) => {
    const map = found.get(path);
    if (!map) throw new Error(`no map for ${path} in ${stores.join(', ')}`);
    return map;
  });
}
