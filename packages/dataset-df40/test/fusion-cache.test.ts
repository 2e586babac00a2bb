/**
 * A fusion run on real files: the synthetic mini-DF40 (PNG frames decoded by sharp), one `[2, 8, 8]` map per
 * frame on disk (safetensors, found through the dataset's `extras.lare`), core's feature cache around the
 * `images` loader, the clip-prompt detector with toy modules from core's test support (an enhancer on the
 * map + patch tokens + boxes, a concat fuser on patch tokens) and core's real runner and df40 evaluator.
 *
 * - the cache carries patch tokens, extras and boxes that equal what the pixel path gives for the same view;
 * - with a warm cache, a whole run (train, val, test) runs the image tower once — for the cache's weights
 *   fingerprint — and never per step;
 * - memory per step is flat with the cache (eval view and augmented views) and without it;
 * - a test frame without its map fails the run before training; opting in to skip states it in the report.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { filter } from 'rxjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { EncoderImagePath, FeatureCacheLoader, runExperiment, Rng, tf, writeSafetensors, type BatchSourceOptions, type Sample, type Tracker } from '@dfd/core';
import { DF40_TEST_SUBSETS, Df40JsonDataset, df40Plugin, generateMiniDf40, ImageBatchLoader } from '@dfd/dataset-df40';
import { ToyEncoder, toyFusionPlugin } from '../../core/test/support/toy-fusion.js';
import { tempDir } from './helpers.js';

let base: string;
let mini: string;
let maps: string;
let cleanup: () => Promise<void>;
const listing: Record<'train' | 'val' | 'test', Sample[]> = { train: [], val: [], test: [] };

beforeAll(async () => {
  ({ dir: base, cleanup } = await tempDir('dfd-fusion-cache-'));
  mini = join(base, 'mini');
  maps = join(base, 'maps');
  await generateMiniDf40({ out: mini, videos: 2, frames: 2, size: 32, seed: 3 });
  const dataset = new Df40JsonDataset({ root: mini, framesPerVideo: 2, extras: { lare: { root: maps, ext: '.safetensors' } } });
  for (const split of ['train', 'val', 'test'] as const) listing[split] = await dataset.samples({ split });
  // A map per frame: channel 0 = the frame's grey levels at 8×8, channel 1 = a vertical ramp.
  for (const sample of Object.values(listing).flat()) {
    const grey = await sharp(sample.path).greyscale().resize(8, 8, { fit: 'fill' }).raw().toBuffer();
    const data = new Float32Array(2 * 64);
    for (let k = 0; k < 64; k++) data.set([grey[k]! / 255], k), data.set([Math.floor(k / 8) / 8], 64 + k);
    mkdirSync(dirname(sample.extras!.lare!), { recursive: true });
    await writeSafetensors(sample.extras!.lare!, { lare: { shape: [2, 8, 8], data } });
  }
});
afterAll(() => cleanup());

function experiment(name: string, over: { cache?: 'eval-view' | 'augmented' | false; cacheDir?: string; inner?: Record<string, unknown>; trainer?: Record<string, unknown> } = {}) {
  const inner = { use: 'images', preset: 'lare', config: { size: 16, ...(over.inner ?? {}) } };
  return {
    name,
    seed: 4,
    backend: 'cpu' as const,
    pluginObjects: [df40Plugin, toyFusionPlugin],
    dataset: { use: 'df40', config: { root: mini, framesPerVideo: 2, extras: { lare: { root: maps, ext: '.safetensors' } } } },
    loader: over.cache === false ? inner : { use: 'feature-cache', config: { dir: over.cacheDir ?? join(base, 'cache'), train: over.cache ?? 'eval-view', inner } },
    encoder: { use: 'toy-encoder' },
    promptLearner: { use: 'toy-prompt' },
    enhancers: [{ use: 'toy-map', config: { patchTokens: true, boxes: true } }],
    fuser: { use: 'toy-concat', config: { out: 10, patchTokens: true } },
    detector: { use: 'clip-prompt', config: { imageInput: over.cache === false ? 'pixels' : 'features' } },
    evaluator: { use: 'df40' },
    trainer: { epochs: 2, batchSize: 8, evalBatchSize: 32, optimizer: { type: 'adam' as const, lr: 0.01 }, ...(over.trainer ?? {}) },
    runsDir: join(base, 'runs'),
  };
}

/** Records a value at every step event. */
function probe(read: () => number): Tracker & { values: number[] } {
  const values: number[] = [];
  return {
    name: 'probe',
    values,
    attach(events) {
      events.pipe(filter((e) => e.type === 'step')).subscribe(() => values.push(read()));
    },
    async close() {},
  };
}

describe('feature cache with enhancers', () => {
  test('cached batches carry the eval view’s embeddings, patch tokens (float16), maps and boxes, equal to the pixel path', async () => {
    await tf.setBackend('cpu');
    const encoder = new ToyEncoder({ imageSize: 16, patch: 4, visionWidth: 8, embedDim: 6 }, new Rng(1));
    const inner = new ImageBatchLoader({ size: 16, logSkips: false });
    const cache = new FeatureCacheLoader({ inner, encoder: new EncoderImagePath(encoder), dir: join(base, 'direct-cache'), preprocessing: { size: 16 } });
    const samples = listing.test.slice(0, 12);
    const needs = { pixels: false, features: true, extras: ['lare'], boxes: true, patchTokens: true };
    const options: BatchSourceOptions = { split: 'test', batchSize: 12, shuffle: false, augment: false, seed: 4, needs };
    for (let pass = 0; pass < 2; pass++) {
      // Pass 0 fills the cache, pass 1 reads it back.
      for await (const cached of cache.create(samples, options).batches(0)) {
        for await (const direct of inner.create(samples, { ...options, needs: { ...needs, pixels: true, features: false } }).batches(0)) {
          const tower = encoder.encodeImage(direct.pixels!, { patchTokens: true });
          expect(cached.samples.map((s) => s.id)).toEqual(direct.samples.map((s) => s.id));
          expect(Array.from(cached.features!.dataSync())).toEqual(Array.from(tower.embeds.dataSync()));
          const [a, b] = [cached.patchTokens!.dataSync(), tower.patchTokens!.dataSync()];
          expect(cached.patchTokens!.shape).toEqual([12, 4, 4, 8]);
          const worst = Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!) / Math.max(Math.abs(b[i]!), 6.1e-5)));
          expect(worst).toBeLessThanOrEqual(2 ** -11); // float16 rounding, nothing more
          expect(Array.from(cached.extras!.lare!.dataSync())).toEqual(Array.from(direct.extras!.lare!.dataSync()));
          expect(Array.from(cached.boxes!.dataSync())).toEqual(Array.from(direct.boxes!.dataSync()));
          tf.dispose([tower.embeds, tower.patchTokens!]);
          direct.dispose();
        }
        cached.dispose();
      }
    }
    expect(cache.stats()).toMatchObject({ misses: 12, hits: 12 });
    cache.dispose();
    encoder.dispose();
  });

  test('with a warm cache a whole fusion run runs the image tower once (the weights fingerprint), never per step', async () => {
    const cacheDir = join(base, 'warm-cache');
    const cold = await runExperiment(experiment('cold', { cacheDir }));
    expect(cold.status).toBe('finished');
    const before = ToyEncoder.imageCalls;
    const calls = probe(() => ToyEncoder.imageCalls);
    const warm = await runExperiment(experiment('warm', { cacheDir }), { trackers: [calls] });
    expect(warm.status).toBe('finished');
    expect(ToyEncoder.imageCalls - before).toBe(1);
    expect(calls.values.length).toBeGreaterThan(4);
    expect(new Set(calls.values).size).toBe(1);
    // Same data, same weights: the warm run is the cold run.
    expect(warm.test!.overall).toEqual(cold.test!.overall);
  });

  test.each([
    ['the cache, eval-view training', { cache: 'eval-view' as const }],
    ['the cache, augmented training views', { cache: 'augmented' as const }],
    ['no cache (pixels, image tower every step)', { cache: false as const }],
  ])('tf.memory().numTensors is flat per step with %s', async (_what, over) => {
    // The images loader decodes the next batch while a step runs (prefetch), so a count taken at a step
    // event may or may not include that batch. Exact at each epoch's end (no batch in flight), and per step
    // never above what the first epoch reached: nothing accumulates.
    const atSteps = probe(() => tf.memory().numTensors);
    const atEpochs: number[] = [];
    const epochs: Tracker = {
      name: 'epochs',
      attach: (events) => void events.pipe(filter((e) => e.type === 'epoch')).subscribe(() => atEpochs.push(tf.memory().numTensors)),
      close: async () => {},
    };
    const result = await runExperiment(experiment('memory', { ...over, cacheDir: join(base, 'memory-cache'), trainer: { epochs: 4 } }), { trackers: [atSteps, epochs] });
    expect(result.status).toBe('finished');
    expect(atEpochs).toHaveLength(4);
    expect(new Set(atEpochs).size).toBe(1);
    const perEpoch = atSteps.values.length / 4;
    const firstEpochMax = Math.max(...atSteps.values.slice(1, perEpoch));
    expect(Math.max(...atSteps.values.slice(perEpoch))).toBeLessThanOrEqual(firstEpochMax);
  });
});

describe('test frames without their map', () => {
  test('fail the run before training, naming the subset and the fix; opting in to skip puts the count in the report', async () => {
    // A fake frame of one of the 8 test subsets the df40 evaluator scores.
    const victim = listing.test.find((s) => s.label === 1 && (DF40_TEST_SUBSETS as readonly string[]).includes(s.subset))!;
    const saved = readFileSync(victim.extras!.lare!);
    rmSync(victim.extras!.lare!);
    try {
      const error = await runExperiment(experiment('strict', { cacheDir: join(base, 'strict-cache') })).catch((e: Error) => e);
      expect((error as Error).name).toBe('MissingExtraError');
      const [, listed] = (error as Error).message.match(/^1 of (\d+) test samples have no 'lare' file, in (\S+) \(1\)/) ?? [];
      expect((error as Error).message).toContain(`in ${victim.subset} (1)`);
      expect(Number(listed)).toBeGreaterThan(8);
      expect((error as Error).message).toContain(victim.extras!.lare!);
      // Refused before run-start: no step was trained and no half run is left behind (the run folder is removed).
      const runDir = join(base, 'runs', 'strict');
      expect(existsSync(runDir) ? readdirSync(runDir) : []).toEqual([]);

      const lenient = await runExperiment(experiment('lenient', { cacheDir: join(base, 'strict-cache'), inner: { missingExtras: { eval: 'skip' } } }));
      expect(lenient.status).toBe('finished');
      expect(lenient.test!.protocol).toMatchObject({ test_skipped_no_extras: 1, test_skipped_no_extras_subsets: `${victim.subset}:1` });
      const report = JSON.parse(readFileSync(join(lenient.runDir, 'report.json'), 'utf8'));
      expect(JSON.stringify(report)).toContain('"test_skipped_no_extras":1');
      const scored = readFileSync(join(lenient.runDir, 'test-scores.csv'), 'utf8').trim().split('\n').length - 1;
      expect(scored).toBe(Number(listed) - 1);
    } finally {
      (await import('node:fs')).writeFileSync(victim.extras!.lare!, saved);
    }
  });
});
