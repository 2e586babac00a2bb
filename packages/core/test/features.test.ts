/**
 * The on-disk feature cache with real PNG files: a small sharp-based pixel loader as the inner loader and a
 * real (if simple) frozen encoder — per-channel mean and standard deviation of the pixels — that counts its
 * calls, so hits and misses are observable. The CLIP/ONNX path is exercised end to end in @dfd/plugin-ufd.
 */
import { mkdtempSync, readdirSync, statSync, writeFileSync, copyFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, test } from 'vitest';
import {
  ensureBackend,
  FeatureCacheLoader,
  rngFor,
  tf,
  type Batch,
  type BatchLoader,
  type BatchSource,
  type BatchSourceOptions,
  type EncoderInfo,
  type FrozenImageEncoder,
  type Sample,
} from '@dfd/core';

const SIZE = 8;

/** Decodes PNGs with sharp to SIZE×SIZE RGB in [0, 1], NCHW; augmentation = a seeded horizontal flip. */
class PngLoader implements BatchLoader {
  skippedCount = 0;
  decoded = 0;
  create(samples: Sample[], options: BatchSourceOptions): BatchSource {
    const loader = this;
    const batchesPerEpoch = Math.ceil(samples.length / options.batchSize);
    return {
      size: samples.length,
      batchSize: options.batchSize,
      batchesPerEpoch,
      async *batches(epoch: number, { startBatch = 0 } = {}) {
        const order = options.shuffle ? rngFor(options.seed, `shuffle/${epoch}`).shuffle([...samples]) : samples;
        for (let b = startBatch; b < batchesPerEpoch; b++) {
          const kept: Sample[] = [];
          const planes: Float32Array[] = [];
          for (const sample of order.slice(b * options.batchSize, (b + 1) * options.batchSize)) {
            try {
              const raw = await sharp(sample.path).resize(SIZE, SIZE, { fit: 'fill' }).removeAlpha().raw().toBuffer();
              loader.decoded++;
              const flip = options.augment && rngFor(options.seed, `aug/${epoch}/${sample.id}`).bernoulli(0.5);
              const chw = new Float32Array(3 * SIZE * SIZE);
              for (let y = 0; y < SIZE; y++)
                for (let x = 0; x < SIZE; x++)
                  for (let c = 0; c < 3; c++) chw[c * SIZE * SIZE + y * SIZE + x] = raw[(y * SIZE + (flip ? SIZE - 1 - x : x)) * 3 + c]! / 255;
              kept.push(sample);
              planes.push(chw);
            } catch {
              loader.skippedCount++;
            }
          }
          if (!kept.length) continue;
          const data = new Float32Array(kept.length * 3 * SIZE * SIZE);
          planes.forEach((p, i) => data.set(p, i * p.length));
          const pixels = tf.tensor4d(data, [kept.length, 3, SIZE, SIZE]);
          const labels = tf.tensor1d(kept.map((s) => s.label), 'int32');
          yield { samples: kept, pixels, labels, dispose: () => tf.dispose([pixels, labels]) } satisfies Batch;
        }
      },
    };
  }
  skipped() {
    return { count: this.skippedCount, messages: [] };
  }
}

/**
 * Per-channel mean and std plus the mean of the left half minus the right half (which a flip negates, so
 * augmented views are distinguishable from the eval view).
 */
class ChannelStatsEncoder implements FrozenImageEncoder {
  readonly engine = 'js';
  readonly info: EncoderInfo = {
    name: 'channel-stats',
    imageSize: SIZE,
    embedDim: 9,
    visionWidth: 9,
    textWidth: 0,
    contextLength: 0,
    gridSize: 1,
    logitScale: 1,
    mean: [0, 0, 0],
    std: [1, 1, 1],
  };
  calls = 0;
  images = 0;
  constructor(readonly weightsDigest = 'stats-v1') {}
  async embed(pixels: Float32Array, count: number) {
    this.calls++;
    this.images += count;
    const plane = SIZE * SIZE;
    const out = new Float32Array(count * 9);
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < 3; c++) {
        const p = pixels.subarray((i * 3 + c) * plane, (i * 3 + c + 1) * plane);
        const mean = p.reduce((a, b) => a + b, 0) / plane;
        const std = Math.sqrt(p.reduce((a, b) => a + (b - mean) ** 2, 0) / plane);
        let lr = 0;
        for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) lr += (x < SIZE / 2 ? 1 : -1) * p[y * SIZE + x]!;
        out.set([mean, std, lr / plane], i * 9 + c * 3);
      }
    }
    return { embeds: out };
  }
  async dispose() {}
}

let images: string;
let samples: Sample[];

async function writePng(path: string, seed: number, label: number): Promise<void> {
  const rng = rngFor(seed, 'png');
  const data = Buffer.alloc(16 * 16 * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(rng.uniform(0, 128) + (label ? 100 * (i % 3 === 0 ? 1 : 0) : 0) + ((i / 3) % 16 < 8 ? 20 : 0));
  await sharp(data, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path);
}

beforeAll(async () => {
  await ensureBackend();
  images = mkdtempSync(join(tmpdir(), 'dfd-fc-images-'));
  samples = [];
  for (let i = 0; i < 20; i++) {
    const path = join(images, `img-${i}.png`);
    await writePng(path, i, i % 2);
    samples.push({ id: path, path, label: (i % 2) as 0 | 1, subset: i < 10 ? 'a' : 'b', split: 'test', videoId: `v${i}` });
  }
});

const evalOptions: BatchSourceOptions = {
  split: 'test',
  batchSize: 6,
  shuffle: false,
  augment: false,
  seed: 1,
  needs: { pixels: false, features: true, extras: [], boxes: false },
};

async function collect(source: BatchSource, epoch = 0): Promise<{ ids: string[]; features: number[][]; labels: number[] }> {
  const out = { ids: [] as string[], features: [] as number[][], labels: [] as number[] };
  for await (const batch of source.batches(epoch)) {
    const f = batch.features!.arraySync();
    out.features.push(...f);
    out.labels.push(...batch.labels.arraySync());
    out.ids.push(...batch.samples.map((s) => s.id));
    expect(batch.pixels).toBeUndefined();
    batch.dispose();
  }
  return out;
}

function countEntries(dir: string): number {
  let n = 0;
  for (const entry of readdirSync(dir, { recursive: true }) as string[]) if (entry.endsWith('.f32')) n++;
  return n;
}

function cache(dir: string, encoder: FrozenImageEncoder, extra: Partial<ConstructorParameters<typeof FeatureCacheLoader>[0]> = {}) {
  return new FeatureCacheLoader({ inner: new PngLoader(), encoder, dir, preprocessing: { size: SIZE, crop: 'fill' }, ...extra });
}

describe('feature cache', () => {
  test('encodes each image once: a second loader on the same folder serves identical features without encoding', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dfd-fc-'));
    const encoder = new ChannelStatsEncoder();
    const first = cache(dir, encoder, { encodeBatchSize: 8 });
    const a = await collect(first.create(samples, evalOptions));
    expect(a.ids).toEqual(samples.map((s) => s.id));
    expect(a.labels).toEqual(samples.map((s) => s.label));
    expect(encoder.images).toBe(20);
    expect(encoder.calls).toBe(3); // 20 images in encode batches of 8
    expect(first.stats()).toMatchObject({ hits: 0, misses: 20 });
    expect(countEntries(dir)).toBe(20);

    // Same loader, another epoch: nothing is encoded again.
    await collect(first.create(samples, evalOptions), 1);
    expect(encoder.images).toBe(20);

    const second = cache(dir, encoder);
    const b = await collect(second.create(samples, evalOptions));
    expect(encoder.images).toBe(20);
    expect(second.stats()).toMatchObject({ hits: 20, misses: 0 });
    expect(b.features).toEqual(a.features); // bit-identical: float32 round-trips through the file

    // And the features are what the encoder computes on the eval view.
    const direct = new ChannelStatsEncoder();
    const inner = new PngLoader().create(samples.slice(0, 6), { ...evalOptions, needs: { pixels: true, features: false, extras: [], boxes: false } });
    for await (const batch of inner.batches(0)) {
      const { embeds } = await direct.embed(batch.pixels!.dataSync() as Float32Array, batch.samples.length);
      expect(Array.from(embeds)).toEqual(a.features.slice(0, 6).flat().map((v) => Math.fround(v)));
      batch.dispose();
    }
  });

  test('the key covers weights, preprocessing and content: each change misses, a renamed copy hits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dfd-fc-'));
    const few = samples.slice(0, 4);
    const v1 = new ChannelStatsEncoder('weights-1');
    await collect(cache(dir, v1).create(few, evalOptions));
    expect(v1.images).toBe(4);

    const v2 = new ChannelStatsEncoder('weights-2');
    const otherWeights = cache(dir, v2);
    await collect(otherWeights.create(few, evalOptions));
    expect(otherWeights.stats()).toMatchObject({ hits: 0, misses: 4 });

    // Same weights digest, another precision (int8 features must never be served to an fp32 run).
    const int8 = Object.assign(new ChannelStatsEncoder('weights-1'), { precision: 'int8' });
    const otherPrecision = cache(dir, int8, { precision: 'int8' });
    await collect(otherPrecision.create(few, evalOptions));
    expect(otherPrecision.stats()).toMatchObject({ hits: 0, misses: 4 });
    expect(otherPrecision.protocolFacts()).toMatchObject({ frozen_precision: 'int8' });
    expect(cache(dir, v1).protocolFacts()).toMatchObject({ frozen_precision: 'fp32' });

    const again = new ChannelStatsEncoder('weights-1');
    const otherPreprocessing = cache(dir, again, { preprocessing: { size: SIZE, crop: 'center' } });
    await collect(otherPreprocessing.create(few, evalOptions));
    expect(otherPreprocessing.stats()).toMatchObject({ hits: 0, misses: 4 });

    // A renamed copy of an image (same bytes) hits; an edited image misses.
    const copyDir = mkdtempSync(join(tmpdir(), 'dfd-fc-copy-'));
    const copied = few.map((s, i) => {
      const path = join(copyDir, `renamed-${i}.png`);
      copyFileSync(s.path, path);
      return { ...s, id: path, path };
    });
    await writePng(copied[0]!.path, 999, 1);
    const counting = new ChannelStatsEncoder('weights-1');
    const moved = cache(dir, counting);
    await collect(moved.create(copied, evalOptions));
    expect(moved.stats()).toMatchObject({ hits: 3, misses: 1 });
    expect(counting.images).toBe(1);
  });

  test('augmented training views are encoded every epoch and never stored; eval-view training uses the cache', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dfd-fc-'));
    const trainOptions: BatchSourceOptions = { ...evalOptions, split: 'train', shuffle: true, augment: true, batchSize: 5 };
    const encoder = new ChannelStatsEncoder();
    const augmented = cache(dir, encoder);
    const source = augmented.create(samples, trainOptions);
    expect(source.batchesPerEpoch).toBe(4);
    const e0 = await collect(source, 0);
    const e1 = await collect(source, 1);
    expect(encoder.images).toBe(40);
    expect(countEntries(dir)).toBe(0);
    expect(augmented.stats()).toMatchObject({ augmentedEncoded: 40, hits: 0, misses: 0 });
    // Shuffled per epoch, and the flips differ: the same image has other features in another epoch.
    expect(e0.ids).not.toEqual(e1.ids);
    const byId = (r: typeof e0) => new Map(r.ids.map((id, i) => [id, r.features[i]!]));
    const m0 = byId(e0);
    const m1 = byId(e1);
    expect(samples.some((s) => m0.get(s.id)![2] !== m1.get(s.id)![2])).toBe(true);

    const evalView = cache(dir, encoder, { train: 'eval-view' });
    const viewSource = evalView.create(samples, trainOptions);
    const v0 = await collect(viewSource, 0);
    const v1 = await collect(viewSource, 1);
    expect(encoder.images).toBe(60); // filled once
    expect(countEntries(dir)).toBe(20);
    expect(v0.ids).not.toEqual(v1.ids);
    expect(byId(v0)).toEqual(byId(v1)); // same features whatever the epoch
  });

  test('a corrupt image is skipped and counted; a damaged cache entry is re-encoded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dfd-fc-'));
    const badPath = join(images, 'corrupt.png');
    writeFileSync(badPath, 'not a png');
    const withBad = [...samples.slice(0, 5), { ...samples[0]!, id: badPath, path: badPath }];
    const encoder = new ChannelStatsEncoder();
    const loader = cache(dir, encoder);
    const got = await collect(loader.create(withBad, evalOptions));
    expect(got.ids).toEqual(samples.slice(0, 5).map((s) => s.id));
    expect(loader.skipped().count).toBe(1);

    // Truncate one entry: the next loader finds it damaged, drops it and encodes it again.
    const entry = (readdirSync(dir, { recursive: true }) as string[]).find((e) => e.endsWith('.f32'))!;
    truncateSync(join(dir, entry), 7);
    const again = new ChannelStatsEncoder();
    const second = cache(dir, again);
    const redo = await collect(second.create(samples.slice(0, 5), evalOptions));
    expect(redo.ids).toHaveLength(5);
    expect(again.images).toBe(1);
    expect(statSync(join(dir, entry)).size).toBe(9 * 4);
  });

  test('a detector that needs pixels gets a clear error (extras and boxes come from the inner loader: dataset-df40 fusion-cache test)', () => {
    const loader = cache(mkdtempSync(join(tmpdir(), 'dfd-fc-')), new ChannelStatsEncoder());
    expect(() => loader.create(samples, { ...evalOptions, needs: { pixels: true, features: false, extras: [], boxes: false } })).toThrow(
      /gives cached image embeddings, but the detector needs pixels.*imageInput to 'features'/,
    );
  });

  test('pixels of the wrong size name the fix', async () => {
    const encoder = new ChannelStatsEncoder();
    (encoder.info as { imageSize: number }).imageSize = 16;
    const loader = cache(mkdtempSync(join(tmpdir(), 'dfd-fc-')), encoder);
    await expect(collect(loader.create(samples.slice(0, 2), evalOptions))).rejects.toThrow(/makes \[2, 3, 8, 8\] pixels but channel-stats takes 16×16: set the loader's size to 16/);
  });
});
