/**
 * Static int8 for stage 1 (`--precision int8 --calibrate N`): the VAE encoder and UNet of the tiny SD
 * rewritten to QDQ with ranges calibrated through the pipeline, cached per calibration, recorded in the
 * maps' settings, and the same graphs for every shard. Threshold lowered to 256 elements (tiny weights).
 */
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStoreIndexes } from '@dfd/dataset-df40';
import { readLareImages } from '../src/stage1/extract-run.js';
import { LareExtractor, type LareSettings } from '../src/stage1/lare.js';
import { openSdOnnx } from '../src/stage1/sd-model.js';
import { ensureStaticInt8Graphs, openSdOnnxStaticInt8, StaticInt8Error } from '../src/stage1/static-int8.js';
import { cosine, IMAGES, NOISE, providedMaps, runLare, storedMaps, tinySdCopy } from './helpers.js';

const NAMES = ['rgb-80x48.png', 'gray-64.png', 'cmyk-50x70.jpg', 'rgba-40.png', 'exact-64.jpg'];
const MIN = 256;
const SETTINGS: LareSettings = { timestep: 200, ensemble: 2, size: 64, prompt: 'a photo of a face', seed: 0, noiseFile: NOISE };
let dir: string;
let model: string;

const lare = (...args: string[]) => runLare(dir, ...args);

beforeAll(async () => {
  ({ dir, model } = await tinySdCopy('dfd-lare-static-', NAMES)); // a copy: the int8 graphs are written beside the model
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('static int8 VAE encoder and UNet (QDQ, calibrated through the pipeline)', () => {
  it('calibrates once, caches both graphs with their ranges, and gives maps close to fp32', async () => {
    const { images } = await readLareImages(NAMES.map((n) => join(IMAGES, n)), SETTINGS.size);
    const built = await ensureStaticInt8Graphs(model, SETTINGS, images, { threads: 1, minElements: MIN });
    expect(built.built).toBe(true);
    for (const graph of ['vae_encoder', 'unet'] as const) {
      expect(built.graphs[graph]).toBe(join(model, graph, `dfd-int8-static-${built.calibration.sha256.slice(0, 16)}.onnx`));
      const manifest = JSON.parse(await readFile(built.graphs[graph].replace(/\.onnx$/, '.manifest.json'), 'utf8'));
      expect(manifest.method).toMatch(/^int8-static-qdq\/2: .*>= 256 elements/);
      expect(manifest.calibration).toMatchObject({ images: 5, settings: { timestep: 200, ensemble: 2, size: 64 } });
      expect(manifest.report.convs).toBeGreaterThan(3);
      // Every range the rewrite used is recorded, and finite.
      expect(Object.keys(manifest.activationRanges).length).toBe(manifest.report.activations);
      for (const [min, max] of Object.values(manifest.activationRanges) as Array<[number, number]>) expect(max).toBeGreaterThanOrEqual(min);
      // The temporary probe graphs are gone.
      expect((await readdir(join(model, graph))).filter((n) => n.startsWith('dfd-probe'))).toEqual([]);
    }

    const fp32Model = await openSdOnnx(model, { threads: 1 });
    const int8Model = await openSdOnnxStaticInt8(model, SETTINGS, images, { threads: 1, minElements: MIN });
    try {
      const fp32 = await (await LareExtractor.create(fp32Model, SETTINGS)).maps(images);
      const int8Extractor = await LareExtractor.create(int8Model, SETTINGS);
      const int8 = await int8Extractor.maps(images);
      expect(int8Extractor.recipe).toMatchObject({ precision: 'int8', quantization: expect.stringMatching(/^vae_encoder, unet: int8-static-qdq\/2.*calibration [0-9a-f]{16} \(5 images\)$/) });
      expect(int8Model.digest).toBe(fp32Model.digest);
      const cosines = fp32.map((m, i) => cosine(int8[i]!, m));
      console.log(`static int8 vs fp32 LaRE maps on the tiny SD: min cosine ${Math.min(...cosines).toFixed(6)}`);
      expect(fp32.some((m, i) => m.some((v, j) => v !== int8[i]![j]))).toBe(true); // really other graphs
      expect(Math.min(...cosines)).toBeGreaterThan(0.998); // measured 0.99969: convolutions and the VAE too, so more rounding than dynamic int8 of the UNet's MatMuls alone (0.999991)
    } finally {
      await Promise.all([fp32Model.dispose(), int8Model.dispose()]);
    }

    // Cached: the same calibration reuses both graphs; other settings are another calibration.
    expect((await ensureStaticInt8Graphs(model, SETTINGS, images, { threads: 1, minElements: MIN })).built).toBe(false);
    const other = await ensureStaticInt8Graphs(model, { ...SETTINGS, timestep: 100 }, images.slice(0, 1), { threads: 1, minElements: MIN });
    expect(other.built).toBe(true);
    expect(other.calibration.sha256).not.toBe(built.calibration.sha256);
    await expect(ensureStaticInt8Graphs(model, SETTINGS, [], {})).rejects.toThrow(StaticInt8Error);
  });

  it('dfd lare extract --calibrate: every shard calibrates on the whole list, so the shards merge into one store', async () => {
    const common = ['--model', model, '--dataset', join(dir, 'list.txt'), '--size', '64', '--ensemble', '2', '--threads', '1', '--int8-min-elements', String(MIN)];
    const int8 = [...common, '--precision', 'int8', '--calibrate', '3'];
    const a = await lare('extract', ...int8, '--shard', '0/2', '--out', join(dir, 'shard0'));
    const b = await lare('extract', ...int8, '--shard', '1/2', '--out', join(dir, 'shard1'));
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(a.out).toMatch(/int8 static, 3 calibration images/);
    const settings = (await readStoreIndexes(join(dir, 'shard0')))[0]!.index.settings;
    expect(settings).toMatchObject({ precision: 'int8', quantization: expect.stringMatching(/int8-static-qdq.*\(3 images\)/) });
    expect((await readStoreIndexes(join(dir, 'shard1')))[0]!.index.settings).toEqual(settings);
    expect((await lare('merge', join(dir, 'merged'), join(dir, 'shard0'), join(dir, 'shard1'))).code).toBe(0);
    expect((await readStoreIndexes(join(dir, 'merged')))[0]!.index.entries).toHaveLength(NAMES.length);
    await expect(lare('extract', ...common, '--calibrate', '3', '--out', join(dir, 'x'))).rejects.toThrow(/--calibrate goes with --precision int8/);
  });
  it("dfd predict's lare provider scores a new image with the store's own static graphs, or says which files are missing", async () => {
    const images = NAMES.slice(0, 2).map((n) => join(IMAGES, n));
    const stored = await storedMaps([join(dir, 'shard0'), join(dir, 'shard1')], images);
    const made = await providedMaps(model, join(dir, 'shard0'), images, join(dir, 'provided'));
    for (const [i, map] of made.entries()) expect(Array.from(map)).toEqual(Array.from(stored[i]!)); // bit for bit
    // Without the calibrated graphs (another machine's copy of the model) it cannot be the same maps: refused.
    const key = /calibration ([0-9a-f]{16})/.exec((await readStoreIndexes(join(dir, 'shard0')))[0]!.index.settings.quantization as string)![1]!;
    await rm(join(model, 'unet', `dfd-int8-static-${key}.manifest.json`));
    await expect(providedMaps(model, join(dir, 'shard0'), images, join(dir, 'provided-2'))).rejects.toThrow(new RegExp(`calibration ${key}.*copy the dfd-int8-static-${key}`));
  });
});
