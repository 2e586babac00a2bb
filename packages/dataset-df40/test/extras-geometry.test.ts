/**
 * Extras follow the image: a map that encodes its own source coordinates (channel 0 = x, channel 1 = y of
 * each cell's centre, in source pixels) goes through the real `images` loader next to a real PNG whose
 * pixels encode the same coordinates (R = x, G = y). After random-resized crops, flips, resizes and centre
 * crops, every map cell must hold the source coordinate that the image shows at that cell's centre — so a
 * map that drifts off its pixels (CLaRE's misalignment) cannot pass. Also: the header-only path (no pixels,
 * as under a feature cache) draws the same plan, and the missing-map policy.
 */
import { existsSync, unlinkSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { tf, writeSafetensors, type BatchSourceOptions, type Sample } from '@dfd/core';
import { ImageBatchLoader, MissingExtraError, transformMap, type TransformPlan } from '@dfd/dataset-df40';
import { tempDir } from './helpers.js';

const W = 250;
const H = 200;
const MAP_W = 25;
const MAP_H = 20;
const OUT = 100;

let dir: string;
let cleanup: () => Promise<void>;
let sample: Sample;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('dfd-extras-geometry-'));
  const rgb = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) rgb.set([x, y, 128], (y * W + x) * 3);
  const image = join(dir, 'coords.png');
  await writeFile(image, await sharp(rgb, { raw: { width: W, height: H, channels: 3 } }).png().toBuffer());
  // Cell (i, j) covers source pixels [10j, 10j + 10) × [10i, 10i + 10): its centre is pixel index 10j + 4.5.
  const map = new Float32Array(2 * MAP_H * MAP_W);
  for (let i = 0; i < MAP_H; i++) {
    for (let j = 0; j < MAP_W; j++) {
      map[i * MAP_W + j] = ((j + 0.5) * W) / MAP_W - 0.5;
      map[MAP_H * MAP_W + i * MAP_W + j] = ((i + 0.5) * H) / MAP_H - 0.5;
    }
  }
  const mapPath = join(dir, 'coords.safetensors');
  await writeSafetensors(mapPath, { coords: { shape: [2, MAP_H, MAP_W], data: map } });
  // A fixed id: each image's augmentation is drawn from (seed, epoch, id), and the temp folder's random name
  // must not change which crops this test sees.
  sample = { id: 'grid/coords.png', path: image, label: 1, subset: 'grid', split: 'train', videoId: 'grid/1/0', extras: { coords: mapPath } };
});
afterAll(() => cleanup());

const loaderConfig = {
  size: OUT,
  concurrency: 2,
  train: { crop: 'random-resized' as const, scale: [0.25, 1] as [number, number], ratio: [0.6, 1.6] as [number, number], flip: 0.5, normalize: 'none' as const },
  eval: { crop: 'center' as const, normalize: 'none' as const },
};

function options(augment: boolean, pixels = true, boxes = false): BatchSourceOptions {
  return { split: 'train', batchSize: 1, shuffle: false, augment, seed: 5, needs: { pixels, features: false, extras: ['coords'], boxes } };
}

async function firstBatch(loader: ImageBatchLoader, opts: BatchSourceOptions, epoch: number) {
  for await (const batch of loader.create([sample], opts).batches(epoch)) {
    const out = {
      pixels: batch.pixels ? Array.from(batch.pixels.dataSync()) : undefined,
      coords: Array.from(batch.extras!.coords!.dataSync()),
      boxes: batch.boxes ? Array.from(batch.boxes.dataSync()) : undefined,
    };
    batch.dispose();
    return out;
  }
  throw new Error('no batch');
}

/**
 * Largest distance (source pixels) between what each interior map cell claims and what the image shows at
 * that cell's centre. Cell (i, j) of the output map is centred on output position ((j+½)·OUT/MAP_W, (i+½)·OUT/MAP_H),
 * i.e. x between pixels 4j+1 and 4j+2, y on pixel row 5i+2. The border ring is left out: resampling kernels
 * replicate edges there, on both sides.
 */
function misalignment(pixels: number[], coords: number[]): number {
  const plane = OUT * OUT;
  let worst = 0;
  for (let i = 1; i < MAP_H - 1; i++) {
    for (let j = 1; j < MAP_W - 1; j++) {
      const row = 5 * i + 2;
      const at = (c: number, x: number) => pixels[c * plane + row * OUT + x]! * 255;
      const imageX = (at(0, 4 * j + 1) + at(0, 4 * j + 2)) / 2;
      const imageY = (at(1, 4 * j + 1) + at(1, 4 * j + 2)) / 2;
      const mapX = coords[i * MAP_W + j]!;
      const mapY = coords[MAP_H * MAP_W + i * MAP_W + j]!;
      worst = Math.max(worst, Math.abs(imageX - mapX), Math.abs(imageY - mapY));
    }
  }
  return worst;
}

describe('extras follow the image geometry', () => {
  test('under random-resized crops and flips, each map cell holds the source coordinate the image shows there', async () => {
    const loader = new ImageBatchLoader({ ...loaderConfig, logSkips: false });
    const raw = new ImageBatchLoader({ ...loaderConfig, logSkips: false, extraGeometry: { coords: 'none' } });
    let flips = 0;
    for (let epoch = 0; epoch < 8; epoch++) {
      const { pixels, coords } = await firstBatch(loader, options(true), epoch);
      // Flip shows as an image whose R decreases left to right.
      if (pixels![10]! > pixels![90]!) flips++;
      // Within 2 source pixels (a fifth of a map cell): uint8 rounding, plus sharp's own offset when a crop is
      // enlarged along one axis only (image/pipeline.ts). A map left untransformed is off by 40–220 pixels.
      expect(misalignment(pixels!, coords), `epoch ${epoch}`).toBeLessThan(2);
      // The map as it was stored (what CLaRE fed its model) is far off: the check can fail.
      const untransformed = await firstBatch(raw, options(true), epoch);
      expect(misalignment(untransformed.pixels!, untransformed.coords)).toBeGreaterThan(8);
    }
    expect(flips).toBeGreaterThan(0);
    expect(flips).toBeLessThan(8);
  });

  test('the eval transform (resize shorter side + centre crop) and a squash keep the map aligned too', async () => {
    const loader = new ImageBatchLoader({ ...loaderConfig, logSkips: false });
    const centre = await firstBatch(loader, options(false), 0);
    expect(misalignment(centre.pixels!, centre.coords)).toBeLessThan(1.5);
    const squash = new ImageBatchLoader({ ...loaderConfig, logSkips: false, eval: { crop: 'squash', normalize: 'none' } });
    const squashed = await firstBatch(squash, options(false), 0);
    expect(misalignment(squashed.pixels!, squashed.coords)).toBeLessThan(1.5);
  });

  test('without pixels (a feature cache asks only for extras and boxes) the same plan is drawn from the header', async () => {
    const loader = new ImageBatchLoader({ ...loaderConfig, logSkips: false });
    for (let epoch = 0; epoch < 3; epoch++) {
      const withPixels = await firstBatch(loader, options(true, true, true), epoch);
      const headerOnly = await firstBatch(loader, options(true, false, true), epoch);
      expect(headerOnly.pixels).toBeUndefined();
      expect(headerOnly.coords).toEqual(withPixels.coords);
      expect(headerOnly.boxes).toEqual(withPixels.boxes);
    }
  });

  test('transformMap: an identity plan is exact; a flip mirrors columns; [h, w] maps work too', () => {
    const plan: TransformPlan = { source: { width: 8, height: 4 }, resize: { width: 8, height: 4 }, output: { width: 8, height: 4 }, flip: false, blurSigma: 0, jpegQuality: 0 };
    const data = Float32Array.from({ length: 2 * 2 * 4 }, (_, i) => i * 1.5 - 3);
    expect(Array.from(transformMap({ shape: [2, 2, 4], data }, plan).data)).toEqual(Array.from(data));
    const flipped = transformMap({ shape: [2, 4], data: data.subarray(0, 8) }, { ...plan, flip: true });
    expect(flipped.shape).toEqual([2, 4]);
    expect(Array.from(flipped.data)).toEqual([1.5, 0, -1.5, -3, 7.5, 6, 4.5, 3]);
    expect(() => transformMap({ shape: [16], data: new Float32Array(16) }, plan)).toThrow(/\[C, h, w\] or \[h, w\].*geometry 'none'/);
  });
});

describe('a sample without its map', () => {
  async function withMissing() {
    const missing: Sample[] = [];
    await mkdir(join(dir, 'gone'), { recursive: true });
    for (const [k, subset] of ['heygen', 'heygen', 'stargan'].entries()) {
      missing.push({ ...sample, id: `${sample.id}#${k}`, subset, split: 'test', extras: { coords: join(dir, 'gone', `${k}.safetensors`) } });
    }
    missing.push({ ...sample, id: `${sample.id}#nomap`, subset: 'stargan', split: 'test', extras: {} });
    return [{ ...sample, split: 'test' as const }, ...missing];
  }
  const evalOptions = (split: 'val' | 'test' | 'train'): BatchSourceOptions => ({ ...options(false), split, batchSize: 8 });

  test('is an error for test and val by default, naming the files, the subsets and the fix', async () => {
    const samples = await withMissing();
    const loader = new ImageBatchLoader({ ...loaderConfig, logSkips: false });
    for (const split of ['test', 'val'] as const) {
      const error = (() => {
        try {
          loader.create(samples, evalOptions(split));
        } catch (e) {
          return e as Error;
        }
      })();
      expect(error).toBeInstanceOf(MissingExtraError);
      expect(error!.message).toMatch(new RegExp(`4 of 5 ${split} samples have no 'coords' file, in heygen \\(2\\), stargan \\(2\\)`));
      expect(error!.message).toContain(join(dir, 'gone', '0.safetensors'));
      expect(error!.message).toMatch(/missingExtras: \{ eval: 'skip' \}/);
    }
  });

  test("with missingExtras.eval 'skip' they are left out and counted per split and subset", async () => {
    const samples = await withMissing();
    const loader = new ImageBatchLoader({ ...loaderConfig, logSkips: false, missingExtras: { eval: 'skip' } });
    const kept: string[] = [];
    for (let pass = 0; pass < 2; pass++) {
      for await (const batch of loader.create(samples, evalOptions('test')).batches(0)) {
        kept.push(...batch.samples.map((s) => s.id));
        batch.dispose();
      }
    }
    expect(kept).toEqual([sample.id, sample.id]);
    // Each sample counted once, however often it was skipped.
    expect(loader.skipCounts().sort((a, b) => a.subset.localeCompare(b.subset))).toEqual([
      { split: 'test', subset: 'heygen', reason: 'no-extras', count: 2 },
      { split: 'test', subset: 'stargan', reason: 'no-extras', count: 2 },
    ]);
    expect(tf.memory().numTensors).toBeGreaterThanOrEqual(0);
  });

  test('training skips (counted) by default, and can be made strict', async () => {
    const samples = (await withMissing()).map((s) => ({ ...s, split: 'train' as const }));
    const lenient = new ImageBatchLoader({ ...loaderConfig, logSkips: false });
    expect(() => lenient.create(samples, evalOptions('train'))).not.toThrow();
    const strict = new ImageBatchLoader({ ...loaderConfig, logSkips: false, missingExtras: { train: 'error' } });
    expect(() => strict.create(samples, evalOptions('train'))).toThrow(/missingExtras: \{ train: 'skip' \}/);
    expect(existsSync(samples[1]!.extras!.coords!)).toBe(false);
    void unlinkSync;
  });
});

describe('an extras store (dfd lare) lacking a map', () => {
  test("counts as missing: an error for test by default when its batch is made, a counted skip with missingExtras.eval 'skip'; present maps follow the geometry", async () => {
    const { createHash } = await import('node:crypto');
    const { readFile } = await import('node:fs/promises');
    const store = join(dir, 'store');
    await mkdir(store, { recursive: true });
    const map = (await import('@dfd/core')).SafetensorsFile;
    const file = await map.open(sample.extras!.coords!);
    const { data } = await file.readFloat32('coords');
    await file.close();
    await writeSafetensors(join(store, 'part-0.safetensors'), { coords: { shape: [1, 2, MAP_H, MAP_W], data } });
    const sha = createHash('sha256').update(await readFile(sample.path)).digest('hex');
    const index = { format: 'dfd-extras-store/1', tensor: 'coords', shape: [2, MAP_H, MAP_W], settings: {}, parts: ['part-0.safetensors'], entries: [[sample.path, sha, 0, 0]], skipped: [] };
    await writeFile(join(store, 'index.json'), JSON.stringify(index));
    const other = join(dir, 'other.png');
    await writeFile(other, await sharp({ create: { width: W, height: H, channels: 3, background: { r: 9, g: 9, b: 9 } } }).png().toBuffer());
    const samples: Sample[] = [
      { ...sample, split: 'test', extras: { coords: store } },
      { ...sample, id: other, path: other, subset: 'heygen', split: 'test', extras: { coords: store } },
    ];
    const opts: BatchSourceOptions = { ...options(false), split: 'test', batchSize: 2 };
    const strict = new ImageBatchLoader({ ...loaderConfig, logSkips: false });
    const run = async (loader: ImageBatchLoader) => {
      const out: Array<{ ids: string[]; pixels: number[]; coords: number[] }> = [];
      for await (const batch of loader.create(samples, opts).batches(0)) {
        out.push({ ids: batch.samples.map((s) => s.id), pixels: Array.from(batch.pixels!.dataSync()), coords: Array.from(batch.extras!.coords!.dataSync()) });
        batch.dispose();
      }
      return out;
    };
    await expect(run(strict)).rejects.toThrow(new RegExp(`test sample ${other} \\(subset heygen\\): the 'coords' extras store .* has no map for it.*missingExtras: \\{ eval: 'skip' \\}`));
    const lenient = new ImageBatchLoader({ ...loaderConfig, logSkips: false, missingExtras: { eval: 'skip' } });
    const [only] = await run(lenient);
    expect(only!.ids).toEqual([sample.id]);
    expect(misalignment(only!.pixels, only!.coords)).toBeLessThan(2);
    expect(lenient.skipCounts()).toEqual([{ split: 'test', subset: 'heygen', reason: 'no-extras', count: 1 }]);
  });
});
