import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBackend, ExperimentContainer, instantiateComponent, PluginRegistry, rngFor, tf, TOKENS, writeSafetensors, type Batch, type BatchSourceOptions, type Sample } from '@dfd/core';
import { df40Plugin, encodeNpy, evalView, ImageBatchLoader, planTransform, templateBoxes, transformBoxes, FACE_REGIONS } from '@dfd/dataset-df40';
import { tempDir, writeImage } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let samples: Sample[];
const N = 10;

const needs = (over: Partial<BatchSourceOptions['needs']> = {}): BatchSourceOptions['needs'] => ({ pixels: true, features: false, extras: [], boxes: false, ...over });
const trainOptions = (over: Partial<BatchSourceOptions> = {}): BatchSourceOptions => ({
  split: 'train', batchSize: 4, shuffle: true, augment: true, seed: 11, needs: needs(), ...over,
});

async function collect(iterable: AsyncIterable<Batch>): Promise<Array<{ ids: string[]; labels: number[]; pixels: Float32Array; boxes?: Float32Array; extras?: Record<string, { shape: number[]; data: Float32Array }> }>> {
  const out = [];
  for await (const batch of iterable) {
    out.push({
      ids: batch.samples.map((s) => s.id),
      labels: Array.from(await batch.labels.data()),
      pixels: (await batch.pixels!.data()) as Float32Array,
      ...(batch.boxes ? { boxes: (await batch.boxes.data()) as Float32Array } : {}),
      ...(batch.extras
        ? { extras: Object.fromEntries(await Promise.all(Object.entries(batch.extras).map(async ([k, t]) => [k, { shape: t.shape, data: (await t.data()) as Float32Array }] as const))) }
        : {}),
    });
    expect(batch.labels.dtype).toBe('int32');
    expect(batch.pixels!.shape.slice(1)).toEqual([3, 32, 32]);
    batch.dispose();
  }
  return out;
}

beforeAll(async () => {
  await ensureBackend();
  ({ dir, cleanup } = await tempDir());
  samples = [];
  for (let i = 0; i < N; i++) {
    const path = join(dir, `img${i}.png`);
    await writeImage(path, 40 + 4 * i, 48, 'png', i);
    const lare = new Float32Array(4 * 8 * 8).map((_, k) => i + k / 1000);
    const extra = i % 2 === 0 ? join(dir, `img${i}.npy`) : join(dir, `img${i}.safetensors`);
    if (i % 2 === 0) await writeFile(extra, encodeNpy(lare, [4, 8, 8]));
    else await writeSafetensors(extra, { lare: { shape: [4, 8, 8], data: lare } });
    samples.push({
      id: `s:${i}`, path, label: (i % 2) as 0 | 1, subset: 'synthetic', split: 'train', videoId: `synthetic/v${i}`,
      ...(i === 3 ? { boxes: [{ region: 'mouth', x1: 10, y1: 20, x2: 30, y2: 40 }] } : {}),
      extras: { lare: extra },
    });
  }
});
afterAll(() => cleanup());

describe("loader 'images'", () => {
  it('yields NCHW float32 pixels and int32 labels, a last partial batch unless dropLast', async () => {
    const loader = new ImageBatchLoader({ size: 32, logSkips: false });
    const source = loader.create(samples, trainOptions());
    expect(source.batchesPerEpoch).toBe(3);
    const batches = await collect(source.batches(0));
    expect(batches.map((b) => b.ids.length)).toEqual([4, 4, 2]);
    expect(new Set(batches.flatMap((b) => b.ids)).size).toBe(N);
    const dropped = loader.create(samples, trainOptions({ dropLast: true }));
    expect(dropped.batchesPerEpoch).toBe(2);
    expect((await collect(dropped.batches(0))).length).toBe(2);
  });

  it('is deterministic for seed + epoch whatever the concurrency and prefetch', async () => {
    const a = await collect(new ImageBatchLoader({ size: 32, concurrency: 1, prefetch: 0 }).create(samples, trainOptions()).batches(0));
    const b = await collect(new ImageBatchLoader({ size: 32, concurrency: 4, prefetch: 2 }).create(samples, trainOptions()).batches(0));
    expect(b.map((x) => x.ids)).toEqual(a.map((x) => x.ids));
    for (let k = 0; k < a.length; k++) expect(Buffer.from(b[k]!.pixels.buffer).equals(Buffer.from(a[k]!.pixels.buffer))).toBe(true);
    const epoch1 = await collect(new ImageBatchLoader({ size: 32 }).create(samples, trainOptions()).batches(1));
    expect(epoch1.map((x) => x.ids)).not.toEqual(a.map((x) => x.ids));
    const otherSeed = await collect(new ImageBatchLoader({ size: 32 }).create(samples, trainOptions({ seed: 12 })).batches(0));
    expect(otherSeed.map((x) => x.ids)).not.toEqual(a.map((x) => x.ids));
  });

  it('resumes mid-epoch with startBatch', async () => {
    const source = new ImageBatchLoader({ size: 32 }).create(samples, trainOptions());
    const all = await collect(source.batches(2));
    const tail = await collect(source.batches(2, { startBatch: 1 }));
    expect(tail.map((x) => x.ids)).toEqual(all.slice(1).map((x) => x.ids));
    expect(Buffer.from(tail[0]!.pixels.buffer).equals(Buffer.from(all[1]!.pixels.buffer))).toBe(true);
  });

  it('uses the eval transform in listing order when not augmenting', async () => {
    const loader = new ImageBatchLoader({ size: 32, eval: { normalize: 'half' } });
    const batches = await collect(loader.create(samples, trainOptions({ shuffle: false, augment: false })).batches(0));
    expect(batches.flatMap((b) => b.ids)).toEqual(samples.map((s) => s.id));
    const expected = await evalView(samples[5]!.path, loader.evalSpec);
    expect(Array.from(batches[1]!.pixels.subarray(3 * 32 * 32, 2 * 3 * 32 * 32))).toEqual(Array.from(expected));
  });

  it('skips, counts and reports a corrupt image; the epoch goes on', async () => {
    const bad = join(dir, 'corrupt.png');
    await writeFile(bad, Buffer.from('this is not a png'));
    const withBad = [...samples.slice(0, 3), { ...samples[0]!, id: 'bad', path: bad }];
    const loader = new ImageBatchLoader({ size: 32, logSkips: false });
    const heard: string[] = [];
    loader.onSkip((message, sample) => heard.push(`${sample.id}: ${message}`));
    const batches = await collect(loader.create(withBad, trainOptions({ shuffle: false })).batches(0));
    expect(batches.map((b) => b.ids)).toEqual([['s:0', 's:1', 's:2']]);
    expect(loader.skipped().count).toBe(1);
    expect(loader.skipped().messages[0]).toContain(bad);
    expect(heard).toHaveLength(1);
    // The reason each left-out sample gets in the evaluation's coverage.
    expect(loader.dropReason(withBad[3]!)).toMatchObject({ reason: 'corrupt' });
    expect(loader.dropReason(samples[0]!)).toBeUndefined();
  });

  it('a sample without its extra, or with an unreadable one, is dropped as no-extras', async () => {
    const brokenExtra = join(dir, 'broken.npy');
    await writeFile(brokenExtra, 'not npy');
    const without = { ...samples[1]!, id: 'no-extra', extras: {} };
    const unreadable = { ...samples[2]!, id: 'bad-extra', extras: { lare: brokenExtra } };
    const loader = new ImageBatchLoader({ size: 32, logSkips: false });
    const batches = await collect(loader.create([samples[0]!, without, unreadable], trainOptions({ shuffle: false, augment: false, needs: needs({ extras: ['lare'] }) })).batches(0));
    expect(batches.map((b) => b.ids)).toEqual([['s:0']]);
    expect(loader.dropReason(without)).toMatchObject({ reason: 'no-extras', message: expect.stringContaining("has no 'lare' extra") });
    expect(loader.dropReason(unreadable)).toMatchObject({ reason: 'no-extras', message: expect.stringContaining(brokenExtra) });
  });

  it('a map with NaN values is dropped as no-extras, the message naming the file and the count', async () => {
    const nanExtra = join(dir, 'nan.safetensors');
    const data = new Float32Array(4 * 8 * 8).fill(0.5);
    data[3] = NaN;
    data[70] = Infinity;
    await writeSafetensors(nanExtra, { lare: { shape: [4, 8, 8], data } });
    const poisoned = { ...samples[2]!, id: 'nan-extra', extras: { lare: nanExtra } };
    const loader = new ImageBatchLoader({ size: 32, logSkips: false });
    const batches = await collect(loader.create([samples[0]!, poisoned], trainOptions({ shuffle: false, augment: false, needs: needs({ extras: ['lare'] }) })).batches(0));
    expect(batches.map((b) => b.ids)).toEqual([['s:0']]);
    expect(loader.dropReason(poisoned)).toMatchObject({ reason: 'no-extras', message: expect.stringMatching(new RegExp(`${nanExtra}: 2 of 256 values of extra 'lare' are NaN or infinite`)) });
  });

  it('inside a run, a skipped image becomes a run warning naming the file', async () => {
    const bad = join(dir, 'corrupt-in-run.png');
    await writeFile(bad, Buffer.from('still not a png'));
    const warnings: string[] = [];
    const container = ExperimentContainer.create();
    container.registerValue(TOKENS.RunContext, { runId: 'r', runDir: dir, experiment: 'e', seed: 1, warn: (source: string, message: string) => warnings.push(`${source}: ${message}`) });
    const registry = new PluginRegistry([df40Plugin]);
    const loader = instantiateComponent<ImageBatchLoader>(container, registry, 'loader', 'images', registry.resolveConfig('loader', 'images', { size: 32 }));
    await collect(loader.create([samples[0]!, { ...samples[0]!, id: 'bad', path: bad }], trainOptions({ shuffle: false })).batches(0));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^loader: skipped .*corrupt-in-run\.png/);
    container.dispose();
  });

  it('scales boxes with the image: sample boxes, template boxes otherwise', async () => {
    const loader = new ImageBatchLoader({ size: 32 });
    const batches = await collect(loader.create(samples, trainOptions({ shuffle: false, augment: false, needs: needs({ boxes: true }) })).batches(0));
    const boxes = batches[0]!.boxes!;
    expect(boxes.length).toBe(4 * FACE_REGIONS.length * 4);
    const R = FACE_REGIONS.length;
    // sample 3 (52×48) has only a mouth box; the others regions come from the template of its source size
    const plan = planTransform(loader.evalSpec, 52, 48, rngFor(0, 'unused'));
    const mouth = transformBoxes([{ region: 'mouth', x1: 10, y1: 20, x2: 30, y2: 40 }], plan)[0]!;
    const m = FACE_REGIONS.indexOf('mouth');
    expect(Array.from(boxes.subarray((3 * R + m) * 4, (3 * R + m) * 4 + 4))).toEqual([mouth.x1, mouth.y1, mouth.x2, mouth.y2].map(Math.fround));
    const eye = transformBoxes(templateBoxes(52, 48), plan)[0]!;
    expect(Array.from(boxes.subarray(3 * R * 4, 3 * R * 4 + 4))).toEqual([eye.x1, eye.y1, eye.x2, eye.y2].map(Math.fround));
    for (const v of boxes) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(32);
    }
  });

  it('loads extras from .npy and .safetensors into [B, ...shape]', async () => {
    // File formats only: geometry 'none' keeps the stored values (extras-geometry.test.ts tests the crop/flip).
    const loader = new ImageBatchLoader({ size: 32, extraGeometry: { lare: 'none' } });
    const batches = await collect(loader.create(samples, trainOptions({ shuffle: false, augment: false, needs: needs({ extras: ['lare'] }) })).batches(0));
    const lare = batches[0]!.extras!.lare!;
    expect(lare.shape).toEqual([4, 4, 8, 8]);
    for (let i = 0; i < 4; i++) {
      expect(lare.data[i * 256]).toBeCloseTo(i, 5);
      expect(lare.data[i * 256 + 255]).toBeCloseTo(i + 0.255, 5);
    }
  });

  it('keeps tensor memory flat, also when the consumer stops early', async () => {
    const loader = new ImageBatchLoader({ size: 32, prefetch: 2 });
    const source = loader.create(samples, trainOptions({ needs: needs({ boxes: true, extras: ['lare'] }) }));
    const before = tf.memory().numTensors;
    for (let epoch = 0; epoch < 2; epoch++) {
      for await (const batch of source.batches(epoch)) batch.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    for await (const batch of source.batches(3)) {
      batch.dispose();
      break; // two more batches were being prepared
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a detector that needs precomputed features', () => {
    const loader = new ImageBatchLoader({});
    expect(() => loader.create(samples, trainOptions({ needs: needs({ pixels: false, features: true }) }))).toThrow(/feature-cache loader/);
  });
});
