/**
 * `--precision int8`: the UNet rewritten by our own TypeScript quantiser (DynamicQuantizeMatMul), cached beside
 * the model with a manifest; maps close to fp32; the precision in the store's settings, mixing refused.
 * The tiny SD's MatMuls are small (≤ 32×256), so the threshold is lowered to 256 elements to quantise most.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExtrasStore, readStoreIndexes } from '@dfd/dataset-df40';
import { decodeRgbLikePil, larePixels } from '../src/stage1/image.js';
import { LareExtractor, type LareImage } from '../src/stage1/lare.js';
import { openSdOnnx } from '../src/stage1/sd-model.js';
import { ensureInt8Graph } from '../src/stage1/int8-graph.js';
import { createLareSession } from '../src/stage1/session.js';
import { contentHash } from '../src/stage1/noise.js';
import { cosine, IMAGES, NOISE, providedMaps, relativeError, runLare, storedMaps, tinySdCopy } from './helpers.js';

const NAMES = ['rgb-80x48.png', 'gray-64.png', 'cmyk-50x70.jpg', 'rgba-40.png', 'exact-64.jpg'];
const MIN = 256;
let dir: string;
let model: string;

async function images(): Promise<LareImage[]> {
  return Promise.all(
    NAMES.map(async (name) => {
      const bytes = await readFile(join(IMAGES, name));
      return { hash: contentHash(bytes), pixels: larePixels(await decodeRgbLikePil(bytes, name), 64) };
    }),
  );
}

async function maps(precision: 'fp32' | 'int8'): Promise<{ maps: Float32Array[]; extractor: LareExtractor }> {
  const sd = await openSdOnnx(model, { threads: 1, precision, int8MinElements: MIN });
  try {
    const extractor = await LareExtractor.create(sd, { timestep: 200, ensemble: 2, size: 64, prompt: 'a photo of a face', seed: 0, noiseFile: NOISE });
    return { maps: await extractor.maps(await images()), extractor };
  } finally {
    await sd.dispose();
  }
}

const lare = (...args: string[]) => runLare(dir, ...args);

beforeAll(async () => {
  ({ dir, model } = await tinySdCopy('dfd-lare-int8-', NAMES)); // a copy: the int8 graphs are written beside the model
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('int8 UNet (our MatMul rewrite)', () => {
  it('is built once beside the model with a manifest, runs DynamicQuantizeMatMul, and gives maps close to fp32', async () => {
    const fp32 = await maps('fp32');
    const int8 = await maps('int8');
    const manifest = JSON.parse(await readFile(join(model, 'unet', 'dfd-int8.manifest.json'), 'utf8'));
    expect(manifest.calibration).toBeNull();
    expect(manifest.method).toMatch(/^int8-dynamic-matmul\/2: .*>= 256 elements/);
    expect(manifest.source.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.report.quantized).toBeGreaterThan(20); // of the tiny UNet's 40 MatMuls
    expect((await readFile(join(model, 'unet', 'dfd-int8.onnx'))).includes('DynamicQuantizeMatMul')).toBe(true);
    // The int8 files are not part of the model digest; the precision is part of the recipe.
    expect(int8.extractor.model.digest).toBe(fp32.extractor.model.digest);
    expect(fp32.extractor.recipe).toMatchObject({ precision: 'fp32', quantization: null });
    expect(int8.extractor.recipe).toMatchObject({ precision: 'int8', quantization: expect.stringMatching(/^unet: int8-dynamic-matmul\/2/) });
    const errors = fp32.maps.map((m, i) => relativeError(int8.maps[i]!, m));
    const cosines = fp32.maps.map((m, i) => cosine(int8.maps[i]!, m));
    console.log(`int8 vs fp32 LaRE maps on the tiny SD: max relative error ${Math.max(...errors).toExponential(2)}, min cosine ${Math.min(...cosines).toFixed(6)}`);
    expect(fp32.maps.some((m, i) => relativeError(int8.maps[i]!, m) > 0)).toBe(true); // really another graph
    expect(Math.max(...errors)).toBeLessThan(0.02); // measured 3.4e-3 with 7-bit weights (3.7e-2 with 8-bit: int16 saturation)
    expect(Math.min(...cosines)).toBeGreaterThan(0.9995); // measured 0.999991 (0.99907 with 8-bit weights)
    // A second open reuses the cached graph (manifest unchanged).
    await maps('int8');
    const again = JSON.parse(await readFile(join(model, 'unet', 'dfd-int8.manifest.json'), 'utf8'));
    expect(again.createdAt).toBe(manifest.createdAt);
  });

  it("location 'cache' (a shared or read-only model folder) builds under $DFD_CACHE beside hard links to the source, same graph", async () => {
    const cache = join(dir, 'cache');
    const before = process.env.DFD_CACHE;
    process.env.DFD_CACHE = cache;
    try {
      const built = await ensureInt8Graph(join(model, 'unet', 'model.onnx'), { minElements: MIN, location: 'cache' });
      expect(built.built).toBe(true);
      expect(built.path.startsWith(join(cache, 'sd-int8'))).toBe(true);
      expect(built.path.endsWith(join('unet', 'dfd-int8.onnx'))).toBe(true);
      // The same rewrite as beside the model (the rewrite is deterministic), and onnxruntime opens it.
      expect(Buffer.compare(await readFile(`${built.path}.data`), await readFile(join(model, 'unet', 'dfd-int8.onnx.data')))).toBe(0);
      const session = await createLareSession(built.path, { threads: 1 });
      expect(session.inputNames).toContain('timestep');
      await session.release();
    } finally {
      if (before === undefined) delete process.env.DFD_CACHE;
      else process.env.DFD_CACHE = before;
    }
  });

  it('dfd lare extract --precision int8 records the precision; resume with fp32 and merging with fp32 are refused; predict computes int8 maps from the recipe or its own precision', async () => {
    const common = ['--model', model, '--dataset', join(dir, 'list.txt'), '--size', '64', '--ensemble', '2', '--threads', '1', '--int8-min-elements', String(MIN)];
    const int8 = await lare('extract', ...common, '--out', join(dir, 'int8'), '--precision', 'int8');
    expect(int8.code).toBe(0);
    expect(int8.out).toMatch(/int8\)/);
    const index = (await readStoreIndexes(join(dir, 'int8')))[0]?.index;
    expect(index!.settings).toMatchObject({ precision: 'int8' });
    expect(index!.entries).toHaveLength(NAMES.length);
    await expect(lare('extract', ...common, '--out', join(dir, 'int8'))).rejects.toThrow(/precision: stored "int8", now "fp32"/);
    expect((await lare('extract', ...common, '--out', join(dir, 'fp32'))).code).toBe(0);
    const fp32Index = (await readStoreIndexes(join(dir, 'fp32')))[0]?.index;
    expect(fp32Index!.settings).toMatchObject({ precision: 'fp32', quantization: null });
    await expect(lare('merge', join(dir, 'mixed'), join(dir, 'fp32'), join(dir, 'int8'))).rejects.toThrow(/precision/);
    await expect(lare('extract', ...common, '--out', join(dir, 'x'), '--precision', 'bf16')).rejects.toThrow(/--precision must be fp32 or int8/);
    // The stores read back as extras: the int8 maps are finite and of the right shape.
    const store = await ExtrasStore.open(join(dir, 'int8'));
    for (const entry of store.entries()) expect((await store.read(entry)).data.every(Number.isFinite)).toBe(true);
    await store.close();
    // Dynamic int8 runs one image per call, so --batch does not change a map.
    expect((await lare('extract', ...common, '--out', join(dir, 'int8-b2'), '--precision', 'int8', '--batch', '2')).code).toBe(0);
    const all = NAMES.map((n) => join(IMAGES, n));
    const [b1, b2] = await Promise.all([storedMaps([join(dir, 'int8')], all), storedMaps([join(dir, 'int8-b2')], all)]);
    for (const [i, map] of b2.entries()) expect(Array.from(map)).toEqual(Array.from(b1[i]!));
    // dfd predict on a new image computes it at the store's precision: the same maps, bit for bit.
    const two = NAMES.slice(0, 2).map((n) => join(IMAGES, n));
    const provided = await providedMaps(model, join(dir, 'int8'), two, join(dir, 'provided'));
    const stored = await storedMaps([join(dir, 'int8')], two);
    for (const [i, map] of provided.entries()) expect(Array.from(map)).toEqual(Array.from(stored[i]!));
    // Without a recipe, the config's precision chooses int8: the same settings give the store's maps.
    const configured = { precision: 'int8', int8MinElements: MIN, size: 64, ensemble: 2 };
    const chosen = await providedMaps(model, configured, two, join(dir, 'provided-config'));
    for (const [i, map] of chosen.entries()) expect(Array.from(map)).toEqual(Array.from(stored[i]!));
    await expect(providedMaps(model, { ...configured, precision: 'fp32', recipe: join(dir, 'int8') }, two, join(dir, 'provided-x'))).rejects.toThrow(/made at int8, but predict\.extras\.lare\.precision is fp32/);
  });
});
