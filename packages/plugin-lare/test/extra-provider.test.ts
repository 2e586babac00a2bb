/**
 * The `lare` extra provider (`dfd predict` on an image without a map): with `recipe` pointing at an extras store
 * written by `dfd lare extract`, it computes, for a copy of an image under another name, the very map the store
 * holds (same settings, noise seeded by the image's content); it keeps what it wrote; and a model other than the
 * one the store recorded is refused, naming the model digest.
 */
import { copyFile, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { captureCliIo } from '../../../test/support/cli-io.js';
import { SafetensorsFile } from '@dfd/core';
import { ExtrasStore } from '@dfd/dataset-df40';
import { lareCommand, lareExtraProvider, larePlugin } from '../src/index.js';
import { IMAGES, TINY_SD } from './helpers.js';

/** Another tiny SD (the examples' one, pre-trained on faces): other weights, so another digest. */
const OTHER_SD = fileURLToPath(new URL('../../../examples/models/tiny-sd-df40', import.meta.url));

let dir: string;
let images: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dfd-lare-provider-'));
  await mkdir(join(dir, 'imgs'));
  const names = (await readdir(IMAGES)).filter((n) => /\.(png|jpg)$/.test(n) && !/corrupt|not-an-image/.test(n)).slice(0, 2);
  images = [];
  for (const name of names) {
    await copyFile(join(IMAGES, name), join(dir, 'imgs', name));
    images.push(join(dir, 'imgs', name));
  }
  await writeFile(join(dir, 'list.txt'), images.join('\n'));
  const io = captureCliIo(dir);
  const code = await lareCommand.run(['extract', '--model', TINY_SD, '--size', '64', '--ensemble', '2', '--threads', '1', '--dataset', 'list.txt', '--out', 'store'], io);
  expect(code, io.err()).toBe(0);
}, 300_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('plugin-lare registers it for the lare key', () => {
  expect(larePlugin.extraProviders?.map((f) => f.key)).toEqual(['lare']);
});

test('computes, for a renamed copy, the map the store holds (settings from the store index); keeps what it wrote', async () => {
  const copies = await Promise.all(
    images.map(async (image, i) => {
      const copy = join(dir, `copy-${i}${image.slice(image.lastIndexOf('.'))}`);
      await copyFile(image, copy);
      return copy;
    }),
  );
  const out = join(dir, 'computed');
  const provider = await lareExtraProvider.create({ model: TINY_SD, recipe: 'store', threads: 1 }, { cwd: dir });
  let files: string[];
  try {
    files = await provider.provide(copies, out);
  } finally {
    await provider.dispose();
  }
  expect(files).toHaveLength(2);
  const store = await ExtrasStore.open(join(dir, 'store'));
  try {
    for (const [i, image] of images.entries()) {
      const entry = [...store.entries()].find((e) => e.path === image)!;
      const stored = await store.read(entry);
      const file = await SafetensorsFile.open(files[i]!);
      const made = await file.readFloat32('lare');
      await file.close();
      expect(made.shape).toEqual(stored.shape);
      expect(Array.from(made.data), image).toEqual(Array.from(stored.data)); // bit for bit
    }
  } finally {
    await store.close();
  }
  // A second call finds the maps (same content, same recipe) and does not rewrite them.
  const before = await Promise.all(files.map(async (f) => (await stat(f)).mtimeMs));
  const again = await lareExtraProvider.create({ model: TINY_SD, recipe: join(dir, 'store'), threads: 1 }, { cwd: '/' });
  try {
    expect(await again.provide(copies, out)).toEqual(files);
  } finally {
    await again.dispose();
  }
  expect(await Promise.all(files.map(async (f) => (await stat(f)).mtimeMs))).toEqual(before);
}, 300_000);

test('a model other than the recorded one is refused, naming the digest; a bad config names the field', async () => {
  await expect(lareExtraProvider.create({ model: OTHER_SD, recipe: join(dir, 'store') }, { cwd: dir })).rejects.toThrow(/modelDigest.*differ.*recorded model [0-9a-f]{12}, this one [0-9a-f]{12}/);
  await expect(lareExtraProvider.create({ recipe: 'store' }, { cwd: dir })).rejects.toThrow(/predict\.extras\.lare is invalid: model/);
  await expect(lareExtraProvider.create({ model: TINY_SD, recipe: 'imgs' }, { cwd: dir })).rejects.toThrow(/records no LaRE settings/);
}, 300_000);
