/**
 * `FeatureCacheLoader`: a BatchLoader that turns another loader's pixel batches into frozen image
 * embeddings (`Batch.features`), computed once and kept on disk.
 *
 * - What is cached: the deterministic eval view (the inner loader's `augment: false` transform) of each
 *   image, keyed by the frozen encoder's weights digest, the preprocessing description and the image's
 *   content digest. The namespace's manifest.json spells the key out.
 * - What is not: augmented training views. With `train: 'augmented'` (default) training batches come from
 *   the inner loader with augmentation and are encoded fresh every epoch (by the fast frozen path, but never
 *   stored, since one stored draw would freeze the augmentation). `train: 'eval-view'` trains on the cached
 *   eval view instead — fast, and recorded as such in the resolved config.
 * - A sample the inner loader skips (corrupt image) is counted and left out, as with the inner loader.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch, BatchLoader, BatchSource, BatchSourceOptions, FrozenImageEncoder, Sample } from '../contracts.js';
import { ensureBackend } from '../backend.js';
import { rngFor } from '../rng.js';
import { join } from 'node:path';
import { digestOf } from './content-hash.js';
import { FileDigestIndex } from './digest-index.js';
import { FEATURE_STORE_FORMAT, FeatureStore } from './store.js';

export type TrainView = 'augmented' | 'eval-view';

export interface FeatureCacheOptions {
  /** The loader that decodes and transforms images (e.g. `images`). */
  inner: BatchLoader;
  /** The frozen image path, or a function opening it on first use (loading ONNX only if something misses). */
  encoder: FrozenImageEncoder | (() => Promise<FrozenImageEncoder>);
  /** Cache root folder. */
  dir: string;
  /**
   * What the inner loader's eval view depends on (its name and transform settings). Part of the key:
   * change the crop or the normalisation and the cache misses.
   */
  preprocessing: unknown;
  train?: TrainView;
  /** Precision of the frozen path, as the encoder announces it before opening (for the run's protocol facts). */
  precision?: string;
  /** Images per frozen-encoder call when filling the cache. */
  encodeBatchSize?: number;
  /** Progress lines (hits, misses, time); default none. */
  log?: (message: string) => void;
  /** Dispose the inner loader with this one (when this loader created it). */
  ownsInner?: boolean;
}

export interface FeatureCacheStats {
  /** Samples served from disk without encoding. */
  hits: number;
  /** Samples encoded and stored. */
  misses: number;
  /** Training samples encoded without caching (augmented views). */
  augmentedEncoded: number;
  /** Samples left out (unreadable file, or skipped by the inner loader). */
  skipped: number;
  encodeSeconds: number;
}

export class FeatureCacheError extends Error {
  override name = 'FeatureCacheError';
}

const PIXELS_ONLY: BatchSourceOptions['needs'] = { pixels: true, features: false, extras: [], boxes: false };

export class FeatureCacheLoader implements BatchLoader {
  readonly dir: string;
  readonly train: TrainView;
  readonly encodeBatchSize: number;
  readonly preprocessingDigest: string;
  private encoderPromise?: Promise<FrozenImageEncoder>;
  private storePromise?: Promise<FeatureStore>;
  private digestsPromise?: Promise<FileDigestIndex>;
  private readonly counts: FeatureCacheStats = { hits: 0, misses: 0, augmentedEncoded: 0, skipped: 0, encodeSeconds: 0 };
  private readonly messages: string[] = [];

  constructor(readonly options: FeatureCacheOptions) {
    this.dir = options.dir;
    this.train = options.train ?? 'augmented';
    this.encodeBatchSize = options.encodeBatchSize ?? 64;
    this.preprocessingDigest = digestOf(options.preprocessing);
  }

  create(samples: Sample[], options: BatchSourceOptions): BatchSource {
    const needs = options.needs;
    if (needs.pixels || needs.boxes || needs.extras.length > 0) {
      const wanted = [needs.pixels && 'pixels', needs.boxes && 'boxes', ...needs.extras.map((e) => `extra '${e}'`)].filter(Boolean).join(', ');
      throw new FeatureCacheError(
        `the feature-cache loader gives only cached image embeddings, but the detector needs ${wanted}: ` +
          `use the inner loader directly, or set the detector's imageInput to 'features'`,
      );
    }
    if (options.augment && this.train === 'augmented') return new AugmentedFeatureSource(this, samples, options);
    return new CachedFeatureSource(this, samples, options);
  }

  skipped(): { count: number; messages: string[] } {
    const inner = this.options.inner.skipped?.() ?? { count: 0, messages: [] };
    return { count: inner.count + this.messages.length, messages: [...this.messages, ...inner.messages] };
  }

  /** Recorded in the run's protocol: the precision of every cached or freshly encoded feature, and the training view. */
  protocolFacts(): Record<string, string> {
    return { frozen_precision: this.options.precision ?? 'fp32', feature_cache_train_view: this.train };
  }

  stats(): FeatureCacheStats {
    return { ...this.counts };
  }

  /** @internal */
  frozen(): Promise<FrozenImageEncoder> {
    if (!this.encoderPromise) {
      const encoder = this.options.encoder;
      this.encoderPromise = typeof encoder === 'function' ? encoder() : Promise.resolve(encoder);
    }
    return this.encoderPromise;
  }

  /** The namespace of this (encoder, preprocessing, eval view). @internal */
  store(): Promise<FeatureStore> {
    this.storePromise ??= (async () => {
      const encoder = await this.frozen();
      const key = {
        format: FEATURE_STORE_FORMAT,
        view: 'eval',
        encoder: {
          name: encoder.info.name,
          weightsDigest: encoder.weightsDigest,
          embedDim: encoder.info.embedDim,
          imageSize: encoder.info.imageSize,
          // fp32 and int8 features never share a namespace, even for a graph whose digest would not say so.
          precision: encoder.precision ?? 'fp32',
        },
        preprocessing: this.options.preprocessing,
      };
      const store = new FeatureStore(this.dir, digestOf(key).slice(0, 32), encoder.info.embedDim);
      await store.open({ ...key, engineWhenCreated: encoder.engine });
      return store;
    })();
    return this.storePromise;
  }

  /** Image content digests, remembered across processes in `<dir>/file-digests.jsonl`. @internal */
  digests(): Promise<FileDigestIndex> {
    this.digestsPromise ??= FileDigestIndex.open(join(this.dir, 'file-digests.jsonl'));
    return this.digestsPromise;
  }

  /** Runs the frozen encoder on one inner batch's pixels. @internal */
  async embedBatch(batch: Batch): Promise<Float32Array> {
    const encoder = await this.frozen();
    const pixels = batch.pixels;
    if (!pixels) throw new FeatureCacheError('the inner loader returned a batch without pixels');
    const [n, channels, height, width] = pixels.shape;
    const size = encoder.info.imageSize;
    if (channels !== 3 || height !== size || width !== size) {
      throw new FeatureCacheError(
        `the inner loader makes [${n}, ${channels}, ${height}, ${width}] pixels but ${encoder.info.name} takes ${size}×${size}: set the loader's size to ${size}`,
      );
    }
    const started = performance.now();
    const { embeds } = await encoder.embed((await pixels.data()) as Float32Array, n);
    this.counts.encodeSeconds += (performance.now() - started) / 1000;
    return embeds;
  }

  /** @internal */
  note(kind: keyof Omit<FeatureCacheStats, 'encodeSeconds'>, count: number): void {
    this.counts[kind] += count;
  }

  /** @internal */
  skip(message: string): void {
    this.counts.skipped += 1;
    if (this.messages.length < 50) this.messages.push(message);
  }

  /** @internal */
  log(message: string): void {
    this.options.log?.(message);
  }

  dispose(): void {
    if (this.options.ownsInner) (this.options.inner as { dispose?: () => void }).dispose?.();
    void this.encoderPromise?.then((encoder) => (typeof this.options.encoder === 'function' ? encoder.dispose() : undefined)).catch(() => undefined);
  }
}

function featureBatch(samples: Sample[], rows: Float32Array[], dim: number): Batch {
  const data = new Float32Array(samples.length * dim);
  rows.forEach((row, i) => data.set(row, i * dim));
  const labels = tf.tensor1d(samples.map((s) => s.label), 'int32');
  const features = tf.tensor2d(data, [samples.length, dim]);
  return { samples, labels, features, dispose: () => tf.dispose([labels, features]) };
}

/** Eval views from the cache; what is missing is encoded once (in listing order) before the first batch. */
class CachedFeatureSource implements BatchSource {
  readonly size: number;
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  private ready?: Promise<Map<string, string>>;

  constructor(
    private readonly loader: FeatureCacheLoader,
    private readonly samples: Sample[],
    private readonly options: BatchSourceOptions,
  ) {
    this.size = samples.length;
    this.batchSize = options.batchSize;
    this.batchesPerEpoch = options.dropLast ? Math.floor(this.size / this.batchSize) : Math.ceil(this.size / this.batchSize);
  }

  /** sample id → content digest, for every sample whose embedding is in the store. */
  private warm(): Promise<Map<string, string>> {
    this.ready ??= this.fill();
    return this.ready;
  }

  private async fill(): Promise<Map<string, string>> {
    const loader = this.loader;
    const store = await loader.store();
    const digests = new Map<string, string>();
    const started = performance.now();
    const index = await loader.digests();
    // Hash a few files at a time: enough to keep the disk busy, few enough open files.
    for (let i = 0; i < this.samples.length; i += 32) {
      await Promise.all(
        this.samples.slice(i, i + 32).map(async (sample) => {
          try {
            digests.set(sample.id, await index.digest(sample.path));
          } catch (error) {
            loader.skip(`${sample.path}: ${(error as Error).message}`);
          }
        }),
      );
    }
    await index.flush();
    const missing = new Map<string, Sample>();
    for (const sample of this.samples) {
      const digest = digests.get(sample.id);
      if (digest && !store.has(digest) && !missing.has(digest)) missing.set(digest, sample);
    }
    const hits = digests.size - [...digests.values()].filter((d) => missing.has(d)).length;
    loader.note('hits', hits);
    if (missing.size > 0) {
      const todo = [...missing.values()];
      const source = loader.options.inner.create(todo, {
        split: this.options.split,
        batchSize: loader.encodeBatchSize,
        shuffle: false,
        augment: false,
        seed: this.options.seed,
        needs: PIXELS_ONLY,
      });
      let encoded = 0;
      for await (const batch of source.batches(0)) {
        try {
          const embeds = await loader.embedBatch(batch);
          const dim = store.dim;
          await Promise.all(batch.samples.map((sample, i) => store.write(digests.get(sample.id)!, embeds.subarray(i * dim, (i + 1) * dim))));
          encoded += batch.samples.length;
        } finally {
          batch.dispose();
        }
      }
      loader.note('misses', encoded);
    }
    const available = new Map<string, string>();
    for (const [id, digest] of digests) if (store.has(digest)) available.set(id, digest);
    loader.log(
      `feature cache (${this.options.split}): ${hits} hits, ${missing.size} encoded, ${this.samples.length - available.size} unavailable ` +
        `in ${((performance.now() - started) / 1000).toFixed(2)} s [${store.path}]`,
    );
    return available;
  }

  async *batches(epoch: number, options: { startBatch?: number } = {}): AsyncIterable<Batch> {
    await ensureBackend();
    const available = await this.warm();
    const store = await this.loader.store();
    const order = this.options.shuffle ? rngFor(this.options.seed, `shuffle/${epoch}`).shuffle([...this.samples]) : this.samples;
    for (let b = options.startBatch ?? 0; b < this.batchesPerEpoch; b++) {
      const chunk = order.slice(b * this.batchSize, (b + 1) * this.batchSize);
      const kept: Sample[] = [];
      const rows: Float32Array[] = [];
      const read = await Promise.all(chunk.map((s) => (available.has(s.id) ? store.read(available.get(s.id)!) : Promise.resolve(undefined))));
      chunk.forEach((sample, i) => {
        const row = read[i];
        if (row) {
          kept.push(sample);
          rows.push(row);
        } else if (available.has(sample.id)) {
          // Present at warm-up, unreadable now (deleted or damaged by another process): counted, left out.
          this.loader.skip(`${sample.path}: its cached features in ${store.path} became unreadable; run again to re-encode`);
          available.delete(sample.id);
        }
      });
      if (kept.length) yield featureBatch(kept, rows, store.dim);
    }
  }
}

/** Augmented training views: the inner loader's augmented pixels, encoded every epoch, never stored. */
class AugmentedFeatureSource implements BatchSource {
  readonly size: number;
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  private readonly inner: BatchSource;

  constructor(
    private readonly loader: FeatureCacheLoader,
    samples: Sample[],
    options: BatchSourceOptions,
  ) {
    this.inner = loader.options.inner.create(samples, { ...options, needs: PIXELS_ONLY });
    this.size = this.inner.size;
    this.batchSize = this.inner.batchSize;
    this.batchesPerEpoch = this.inner.batchesPerEpoch;
  }

  async *batches(epoch: number, options: { startBatch?: number } = {}): AsyncIterable<Batch> {
    for await (const batch of this.inner.batches(epoch, options)) {
      let embeds: Float32Array;
      try {
        embeds = await this.loader.embedBatch(batch);
      } finally {
        batch.dispose();
      }
      this.loader.note('augmentedEncoded', batch.samples.length);
      const dim = embeds.length / batch.samples.length;
      yield featureBatch(batch.samples, batch.samples.map((_, i) => embeds.subarray(i * dim, (i + 1) * dim)), dim);
    }
  }
}
