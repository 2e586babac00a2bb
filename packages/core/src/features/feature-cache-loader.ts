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
 * - Patch tokens: when the detector asks (`needs.patchTokens`, an enhancer or fuser on the last layer's
 *   tokens), the eval view's patch tokens `[h, w, C]` are cached too, in their own namespace (keyed as the
 *   embeddings plus what is stored: grid, width, dtype), in float16 by default (`patchTokenDtype`): 196×768
 *   tokens of ViT-B/16 are 294 KiB per image in float16 (≈ 301 GB per million frames; float32 doubles it),
 *   against 2 KiB for the 512-d embedding.
 * - Extras and boxes are not stored: they come from the inner loader (its files, read per batch), made for
 *   the same view as the features — the eval transform for cached views (the plan drawn from the image
 *   header, no decode), the augmented draw for augmented views — so maps and boxes stay on their pixels.
 * - A sample the inner loader skips (corrupt image, missing extra under `skip`) is counted and left out, as
 *   with the inner loader.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch, BatchLoader, BatchSource, BatchSourceOptions, DropReason, FrozenImageEncoder, Sample } from '../contracts.js';
import { ensureBackend } from '../backend.js';
import { rngFor } from '../rng.js';
import { join } from 'node:path';
import { digestOf } from './content-hash.js';
import { FileDigestIndex } from './digest-index.js';
import { FEATURE_STORE_FORMAT, FeatureStore, type StoreDType } from './store.js';

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
  /** On-disk precision of cached patch tokens (default float16; embeddings are always float32). */
  patchTokenDtype?: StoreDType;
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

/** What the inner loader must add to cached features: extras and boxes, no pixels. */
function sideNeeds(needs: BatchSourceOptions['needs']): BatchSourceOptions['needs'] | undefined {
  return needs.extras.length > 0 || needs.boxes ? { pixels: false, features: false, extras: needs.extras, boxes: needs.boxes } : undefined;
}

/** A frozen-encoder call's output for one batch. */
interface Encoded {
  embeds: Float32Array;
  patchTokens?: Float32Array;
}

export class FeatureCacheLoader implements BatchLoader {
  readonly dir: string;
  readonly train: TrainView;
  readonly encodeBatchSize: number;
  readonly preprocessingDigest: string;
  private encoderPromise?: Promise<FrozenImageEncoder>;
  private storePromise?: Promise<FeatureStore>;
  private patchStorePromise?: Promise<FeatureStore>;
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
    if (needs.pixels) {
      throw new FeatureCacheError(
        `the feature-cache loader gives cached image embeddings, but the detector needs pixels: ` +
          `use the inner loader directly, or set the detector's imageInput to 'features'`,
      );
    }
    const side = sideNeeds(needs);
    // The inner loader checks its policies (e.g. missing extra maps of a test set) now, before any encoding.
    if (side) this.options.inner.create(samples, { ...options, needs: side });
    if (options.augment && this.train === 'augmented') return new AugmentedFeatureSource(this, samples, options);
    return new CachedFeatureSource(this, samples, options);
  }

  skipped(): { count: number; messages: string[] } {
    const inner = this.options.inner.skipped?.() ?? { count: 0, messages: [] };
    return { count: inner.count + this.messages.length, messages: [...this.messages, ...inner.messages] };
  }

  /** The inner loader's reason for a sample it left out (for evaluation coverage); otherwise unreadable features. */
  dropReason(sample: Sample): { reason: DropReason; message: string } | undefined {
    return this.options.inner.dropReason?.(sample);
  }

  skipCounts() {
    return this.options.inner.skipCounts?.() ?? [];
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

  /** The key material of this (encoder, preprocessing, eval view). */
  private async baseKey(): Promise<Record<string, unknown>> {
    const encoder = await this.frozen();
    return {
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
  }

  /** The namespace of the embeddings of this (encoder, preprocessing, eval view). @internal */
  store(): Promise<FeatureStore> {
    this.storePromise ??= (async () => {
      const encoder = await this.frozen();
      const key = await this.baseKey();
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

  /** The namespace of the eval view's last-layer patch tokens `[grid, grid, visionWidth]`. @internal */
  patchStore(): Promise<FeatureStore> {
    this.patchStorePromise ??= (async () => {
      const encoder = await this.frozen();
      const { gridSize, visionWidth } = encoder.info;
      const dtype = this.options.patchTokenDtype ?? 'float16';
      const key = { ...(await this.baseKey()), stores: { patchTokens: { layout: 'NHWC', grid: gridSize, width: visionWidth, dtype } } };
      const store = new FeatureStore(this.dir, digestOf(key).slice(0, 32), gridSize * gridSize * visionWidth, dtype);
      await store.open({ ...key, engineWhenCreated: encoder.engine });
      return store;
    })();
    return this.patchStorePromise;
  }

  /** Runs the frozen encoder on one inner batch's pixels (and patch tokens when asked). @internal */
  async embedBatch(batch: Batch, patchTokens = false): Promise<Encoded> {
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
    const out = await encoder.embed((await pixels.data()) as Float32Array, n, { patchTokens });
    this.counts.encodeSeconds += (performance.now() - started) / 1000;
    if (patchTokens && !out.patchTokens) throw new FeatureCacheError(`the frozen encoder (${encoder.engine}) returned no patch tokens although asked`);
    return out;
  }

  /** `[grid, grid, visionWidth]` of the frozen encoder. @internal */
  async patchShape(): Promise<[number, number, number]> {
    const { gridSize, visionWidth } = (await this.frozen()).info;
    return [gridSize, gridSize, visionWidth];
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

/** A features batch; `side` (the inner loader's extras and boxes for the same samples) is taken over. */
function featureBatch(
  samples: Sample[],
  rows: Float32Array[],
  dim: number,
  patches?: { rows: Float32Array[]; shape: [number, number, number] },
  side?: Batch,
): Batch {
  const n = samples.length;
  const data = new Float32Array(n * dim);
  rows.forEach((row, i) => data.set(row, i * dim));
  const labels = tf.tensor1d(samples.map((s) => s.label), 'int32');
  const features = tf.tensor2d(data, [n, dim]);
  const owned: tf.Tensor[] = [labels, features];
  const batch: Batch = { samples, labels, features, dispose: () => tf.dispose(owned) };
  if (patches) {
    const per = patches.shape[0] * patches.shape[1] * patches.shape[2];
    const tokens = new Float32Array(n * per);
    patches.rows.forEach((row, i) => tokens.set(row, i * per));
    batch.patchTokens = tf.tensor4d(tokens, [n, ...patches.shape]);
    owned.push(batch.patchTokens);
  }
  if (side) {
    if (side.extras) {
      batch.extras = side.extras;
      owned.push(...Object.values(side.extras));
    }
    if (side.boxes) {
      batch.boxes = side.boxes;
      owned.push(side.boxes);
    }
    side.labels.dispose();
    side.pixels?.dispose();
  }
  return batch;
}

/** The inner loader's extras and boxes for `samples` (eval view), as one batch; undefined when all were skipped. */
async function sideBatch(loader: FeatureCacheLoader, samples: Sample[], options: BatchSourceOptions, epoch: number): Promise<Batch | undefined> {
  const needs = sideNeeds(options.needs);
  if (!needs || samples.length === 0) return undefined;
  const source = loader.options.inner.create(samples, { ...options, batchSize: samples.length, shuffle: false, augment: false, needs });
  let result: Batch | undefined;
  for await (const batch of source.batches(epoch)) {
    if (result) batch.dispose();
    else result = batch;
  }
  return result;
}

/** Eval views from the cache; what is missing is encoded once (in listing order) before the first batch. */
class CachedFeatureSource implements BatchSource {
  readonly size: number;
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  private ready?: Promise<Map<string, string>>;
  private readonly wantsPatches: boolean;

  constructor(
    private readonly loader: FeatureCacheLoader,
    private readonly samples: Sample[],
    private readonly options: BatchSourceOptions,
  ) {
    this.size = samples.length;
    this.batchSize = options.batchSize;
    this.batchesPerEpoch = options.dropLast ? Math.floor(this.size / this.batchSize) : Math.ceil(this.size / this.batchSize);
    this.wantsPatches = Boolean(options.needs.patchTokens);
  }

  /** sample id → content digest, for every sample whose entries are in the store(s). */
  private warm(): Promise<Map<string, string>> {
    this.ready ??= this.fill();
    return this.ready;
  }

  private async digests(): Promise<Map<string, string>> {
    const digests = new Map<string, string>();
    const index = await this.loader.digests();
    // Hash a few files at a time: enough to keep the disk busy, few enough open files.
    for (let i = 0; i < this.samples.length; i += 32) {
      await Promise.all(
        this.samples.slice(i, i + 32).map(async (sample) => {
          try {
            digests.set(sample.id, await index.digest(sample.path));
          } catch (error) {
            this.loader.skip(`${sample.path}: ${(error as Error).message}`);
          }
        }),
      );
    }
    await index.flush();
    return digests;
  }

  private async fill(): Promise<Map<string, string>> {
    const loader = this.loader;
    const store = await loader.store();
    const patches = this.wantsPatches ? await loader.patchStore() : undefined;
    const started = performance.now();
    const digests = await this.digests();
    const complete = (digest: string) => store.has(digest) && (!patches || patches.has(digest));
    const missing = new Map<string, Sample>();
    for (const sample of this.samples) {
      const digest = digests.get(sample.id);
      if (digest && !complete(digest) && !missing.has(digest)) missing.set(digest, sample);
    }
    const hits = digests.size - [...digests.values()].filter((d) => missing.has(d)).length;
    loader.note('hits', hits);
    if (missing.size > 0) {
      const source = loader.options.inner.create([...missing.values()], {
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
          const out = await loader.embedBatch(batch, Boolean(patches));
          await Promise.all(
            batch.samples.map(async (sample, i) => {
              const digest = digests.get(sample.id)!;
              await store.write(digest, out.embeds.subarray(i * store.dim, (i + 1) * store.dim));
              if (patches) await patches.write(digest, out.patchTokens!.subarray(i * patches.dim, (i + 1) * patches.dim));
            }),
          );
          encoded += batch.samples.length;
        } finally {
          batch.dispose();
        }
      }
      loader.note('misses', encoded);
    }
    const available = new Map<string, string>();
    for (const [id, digest] of digests) if (complete(digest)) available.set(id, digest);
    loader.log(
      `feature cache (${this.options.split}${patches ? ', with patch tokens' : ''}): ${hits} hits, ${missing.size} encoded, ${this.samples.length - available.size} unavailable ` +
        `in ${((performance.now() - started) / 1000).toFixed(2)} s [${store.path}]`,
    );
    return available;
  }

  /** The cached rows of a chunk; samples whose entries became unreadable are counted and left out. */
  private async readChunk(chunk: Sample[], available: Map<string, string>) {
    const store = await this.loader.store();
    const patchStore = this.wantsPatches ? await this.loader.patchStore() : undefined;
    const read = await Promise.all(
      chunk.map(async (s) => {
        const digest = available.get(s.id);
        if (!digest) return undefined;
        const [row, patch] = await Promise.all([store.read(digest), patchStore ? patchStore.read(digest) : Promise.resolve(undefined)]);
        return row && (!patchStore || patch) ? { row, patch } : undefined;
      }),
    );
    const kept: Array<{ sample: Sample; row: Float32Array; patch?: Float32Array }> = [];
    chunk.forEach((sample, i) => {
      const entry = read[i];
      if (entry) kept.push({ sample, ...entry });
      else if (available.has(sample.id)) {
        // Present at warm-up, unreadable now (deleted or damaged by another process): counted, left out.
        this.loader.skip(`${sample.path}: its cached features in ${store.path} became unreadable; run again to re-encode`);
        available.delete(sample.id);
      }
    });
    return kept;
  }

  async *batches(epoch: number, options: { startBatch?: number } = {}): AsyncIterable<Batch> {
    await ensureBackend();
    const available = await this.warm();
    const store = await this.loader.store();
    const patchShape = this.wantsPatches ? await this.loader.patchShape() : undefined;
    const order = this.options.shuffle ? rngFor(this.options.seed, `shuffle/${epoch}`).shuffle([...this.samples]) : this.samples;
    for (let b = options.startBatch ?? 0; b < this.batchesPerEpoch; b++) {
      let kept = await this.readChunk(order.slice(b * this.batchSize, (b + 1) * this.batchSize), available);
      if (!kept.length) continue;
      const side = await sideBatch(this.loader, kept.map((k) => k.sample), this.options, epoch);
      if (sideNeeds(this.options.needs)) {
        if (!side) continue; // the inner loader left every sample of the chunk out (counted there)
        const ids = new Set(side.samples.map((s) => s.id));
        kept = kept.filter((k) => ids.has(k.sample.id));
      }
      yield featureBatch(
        kept.map((k) => k.sample),
        kept.map((k) => k.row),
        store.dim,
        patchShape ? { rows: kept.map((k) => k.patch!), shape: patchShape } : undefined,
        side,
      );
    }
  }
}

/** Augmented training views: the inner loader's augmented pixels (with extras and boxes of the same draw), encoded every epoch, never stored. */
class AugmentedFeatureSource implements BatchSource {
  readonly size: number;
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  private readonly inner: BatchSource;
  private readonly wantsPatches: boolean;

  constructor(
    private readonly loader: FeatureCacheLoader,
    samples: Sample[],
    options: BatchSourceOptions,
  ) {
    const side = sideNeeds(options.needs);
    this.inner = loader.options.inner.create(samples, { ...options, needs: side ? { ...side, pixels: true } : PIXELS_ONLY });
    this.size = this.inner.size;
    this.batchSize = this.inner.batchSize;
    this.batchesPerEpoch = this.inner.batchesPerEpoch;
    this.wantsPatches = Boolean(options.needs.patchTokens);
  }

  async *batches(epoch: number, options: { startBatch?: number } = {}): AsyncIterable<Batch> {
    const patchShape = this.wantsPatches ? await this.loader.patchShape() : undefined;
    for await (const batch of this.inner.batches(epoch, options)) {
      let out: Encoded;
      try {
        out = await this.loader.embedBatch(batch, this.wantsPatches);
      } catch (error) {
        batch.dispose();
        throw error;
      }
      const n = batch.samples.length;
      this.loader.note('augmentedEncoded', n);
      const dim = out.embeds.length / n;
      const slice = (data: Float32Array, per: number) => batch.samples.map((_, i) => data.subarray(i * per, (i + 1) * per));
      const per = patchShape ? patchShape[0] * patchShape[1] * patchShape[2] : 0;
      // featureBatch takes over the extras and boxes and releases the pixels and labels of the inner batch.
      yield featureBatch(batch.samples, slice(out.embeds, dim), dim, patchShape ? { rows: slice(out.patchTokens!, per), shape: patchShape } : undefined, batch);
    }
  }
}
