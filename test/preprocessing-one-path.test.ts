/**
 * One preprocessing path: `dfd encode --preset NAME` and the feature cache (inner loader `images` with the
 * same preset) make their pixels with one function (core's evalViewLoader), so the same image, preset and
 * weights give identical rows from either entry point. Real PNG/JPEG files, real sharp decoding, the tiny
 * CLIP on onnxruntime.
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureCliIo } from './support/cli-io.js';
import {
  corePlugin,
  createFeatureCacheLoader,
  ensureBackend,
  evalViewLoader,
  ExperimentContainer,
  FeatureCacheConfigSchema,
  FeatureCacheLoader,
  PluginRegistry,
  readSafetensors,
  TOKENS,
  type BatchLoader,
  type BatchSourceOptions,
  type Encoder,
  type Sample,
} from '@dfd/core';
import df40Plugin from '@dfd/dataset-df40';
import { clipPlugin, encodeCommand, OnnxClipImageEncoder } from '@dfd/encoder-clip';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const TINY_CLIP = join(REPO, 'examples/models/tiny-clip');


/** The embeddings a feature cache serves for `images`, in order (filling it on the way). */
async function cachedRows(cache: BatchLoader, images: string[]): Promise<number[]> {
  const samples: Sample[] = images.map((path) => ({ id: path, path, label: 0, subset: 's', split: 'test', videoId: path }));
  const options: BatchSourceOptions = { split: 'test', batchSize: 2, shuffle: false, augment: false, seed: 0, needs: { pixels: false, features: true, extras: [], boxes: false } };
  const rows: number[] = [];
  for await (const batch of cache.create(samples, options).batches(0)) {
    rows.push(...(batch.features!.dataSync() as Float32Array));
    batch.dispose();
  }
  return rows;
}

describe('dfd encode --preset and the feature cache give identical rows', () => {
  let dir: string;
  let images: string[];
  const registry = new PluginRegistry([corePlugin, df40Plugin, clipPlugin]);

  beforeAll(async () => {
    await ensureBackend();
    dir = await mkdtemp(join(tmpdir(), 'dfd-one-path-'));
    await mkdir(join(dir, 'imgs'));
    images = [];
    for (let i = 0; i < 4; i++) {
      const path = join(dir, 'imgs', `face${i}.png`);
      const raw = Buffer.alloc(45 * 38 * 3);
      for (let k = 0; k < raw.length; k++) raw[k] = (k * (7 + i) + (k % 3) * 40) % 256;
      await sharp(raw, { raw: { width: 45, height: 38, channels: 3 } }).png().toFile(path);
      images.push(path);
    }
    await copyFile(join(REPO, 'tools/fixtures/clip/out/preprocess/landscape.jpg'), join(dir, 'imgs', 'landscape.jpg'));
    images.push(join(dir, 'imgs', 'landscape.jpg'));
    images.sort();
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  for (const preset of ['clip', 'ufd', 'df40']) {
    it(`preset ${preset}`, async () => {
      const out = `${preset}.safetensors`;
      const io = captureCliIo(dir, { registry: registry });
      expect(await encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/*.{png,jpg}', '--out', out, '--preset', preset, '--batch', '3'], io)).toBe(0);
      const { tensors } = await readSafetensors(join(dir, out));
      const index = JSON.parse(await readFile(join(dir, `${out}.index.json`), 'utf8'));
      expect(index.rows).toEqual(images);
      expect(index.preprocessing).toMatchObject({ loader: 'images', preset });

      const encoder = await OnnxClipImageEncoder.create(TINY_CLIP);
      const container = ExperimentContainer.create();
      const { loader, preprocessing } = evalViewLoader(registry, container, { use: 'images', preset, config: { size: 32 } });
      expect(index.preprocessing).toEqual({ ...preprocessing, preset });
      const cache = new FeatureCacheLoader({ inner: loader, encoder, dir: join(dir, 'cache'), preprocessing });
      const rows = await cachedRows(cache, images);
      expect(rows).toEqual(Array.from(tensors.embeds!.data as Float32Array));
      await encoder.dispose();
    });
  }

  it('static int8 from the encoder config calibrates on the feature cache\'s eval view: its rows equal dfd encode --preset --calibrate', async () => {
    const model = join(dir, 'hf-static'); // a copy: the int8 graphs are written beside the model
    await mkdir(model);
    for (const file of ['config.json', 'model.safetensors', 'vocab.json', 'merges.txt']) await copyFile(join(TINY_CLIP, file), join(model, file));
    const io = captureCliIo(dir, { registry });
    const args = ['--model', model, '--images', 'imgs/*.{png,jpg}', '--out', 'static.safetensors', '--preset', 'clip', '--precision', 'int8', '--calibrate', '4'];
    expect(await encodeCommand.run(args, io)).toBe(0);
    const { tensors } = await readSafetensors(join(dir, 'static.safetensors'));

    // The feature-cache component as the runner builds it, over an encoder config asking for static int8.
    const container = ExperimentContainer.create();
    container.registerValue(TOKENS.Registry, registry);
    const encoderConfig = registry.resolveConfig('encoder', 'clip', { model, engine: 'onnx', precision: 'int8', calibrate: { images, count: 4 } });
    container.registerFactory(TOKENS.Encoder, (r) => registry.get('encoder', 'clip').useFactory!(encoderConfig, r) as Encoder);
    const cacheConfig = FeatureCacheConfigSchema.parse({ dir: join(dir, 'cache-static'), inner: { use: 'images', preset: 'clip', config: { size: 32 } } });
    const cache = createFeatureCacheLoader(cacheConfig, container);
    const rows = await cachedRows(cache, images);
    cache.dispose();
    container.resolve<Encoder>(TOKENS.Encoder).dispose();
    // One calibration set, so one static graph (Pillow pixels would calibrate another and give other rows).
    expect((await readdir(join(model, 'onnx/dfd'))).filter((f) => /^vision-int8-static-.*\.manifest\.json$/.test(f))).toHaveLength(1);
    expect(rows).toEqual(Array.from(tensors.embeds!.data as Float32Array));
  });

  it('without --preset the default path (Pillow-bicubic CLIP eval) is recorded as such', async () => {
    const io = captureCliIo(dir, { registry: registry });
    expect(await encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/*.png', '--out', 'pil.safetensors'], io)).toBe(0);
    const index = JSON.parse(await readFile(join(dir, 'pil.safetensors.index.json'), 'utf8'));
    expect(index.preprocessing).toEqual({ transform: 'clip-eval', resample: 'pil' });
    await expect(encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/*.png', '--out', 'pil.safetensors', '--preset', 'clip'], io)).rejects.toThrow(/other preprocessing/);
  });
});
