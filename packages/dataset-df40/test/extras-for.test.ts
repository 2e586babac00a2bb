/**
 * `Dataset.extrasFor(image)`: the extras the dataset's configuration holds for an image, listed or not (what
 * `dfd predict` uses before computing a missing map): a mirrored map file that exists, an extras store that
 * indexes the image (by path, or by content hash for a copy elsewhere); nothing otherwise.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { writeSafetensors } from '@dfd/core';
import { Df40JsonDataset, generateMiniDf40 } from '@dfd/dataset-df40';
import { tempDir } from './helpers.js';

let base: string;
let mini: string;
let cleanup: () => Promise<void>;
let images: string[];

beforeAll(async () => {
  ({ dir: base, cleanup } = await tempDir('dfd-extras-for-'));
  mini = join(base, 'mini');
  await generateMiniDf40({ out: mini, videos: 1, frames: 2, size: 32, seed: 5 });
  const listed = await new Df40JsonDataset({ root: mini, framesPerVideo: 2 }).samples({ split: 'test' });
  images = listed.map((s) => s.path).slice(0, 2);
  expect(images).toHaveLength(2);
});
afterAll(() => cleanup?.());

test('a map folder mirroring the root: the map of an image under the root when it exists, nothing for others', async () => {
  const maps = join(base, 'maps');
  const dataset = new Df40JsonDataset({ root: mini, extras: { lare: { root: maps, ext: '.safetensors' } } });
  const [withMap, withoutMap] = images as [string, string];
  const mapPath = join(maps, relative(mini, withMap)).replace(/\.png$/, '.safetensors');
  mkdirSync(dirname(mapPath), { recursive: true });
  await writeSafetensors(mapPath, { lare: { shape: [1, 2, 2], data: new Float32Array(4) } });
  expect(await dataset.extrasFor(withMap)).toEqual({ lare: mapPath });
  expect(await dataset.extrasFor(withoutMap)).toEqual({});
  const outside = join(base, 'elsewhere.png');
  copyFileSync(withMap, outside);
  expect(await dataset.extrasFor(outside)).toEqual({}); // a mirrored folder finds images by their place under the root
});

test('an extras store: its root for an image it indexes, by path or by content (a copy elsewhere); nothing for others', async () => {
  const store = join(base, 'store');
  mkdirSync(store, { recursive: true });
  const [indexed, other] = images as [string, string];
  await writeSafetensors(join(store, 'part-0.safetensors'), { maps: { shape: [1, 1, 2, 2], data: new Float32Array(4) } });
  const sha = createHash('sha256').update(readFileSync(indexed)).digest('hex');
  const index = { format: 'dfd-extras-store/1', tensor: 'maps', shape: [1, 2, 2], settings: {}, parts: ['part-0.safetensors'], entries: [[indexed, sha, 0, 0]], skipped: [] };
  writeFileSync(join(store, 'index.json'), JSON.stringify(index));
  const dataset = new Df40JsonDataset({ root: mini, extras: { lare: { root: store } } });
  expect(await dataset.extrasFor(indexed)).toEqual({ lare: store });
  const copy = join(base, 'copy-of-indexed.png');
  copyFileSync(indexed, copy);
  expect(await dataset.extrasFor(copy)).toEqual({ lare: store });
  expect(readFileSync(other).equals(readFileSync(indexed))).toBe(false);
  expect(await dataset.extrasFor(other)).toEqual({});
});
