/**
 * The `images` BatchLoader: listed samples → `Batch`es of NCHW pixels, int32 labels, boxes and extras.
 *
 * - Deterministic: the order comes from rngFor(seed, `shuffle/<epoch>`) and each image's augmentation from
 *   rngFor(seed, `aug/<epoch>/<sample id>`), so concurrency and prefetch never change the bytes.
 * - Concurrent: up to `concurrency` images decode at once on sharp's (libuv) threads, and `prefetch`
 *   batches are prepared while the consumer trains on the current one.
 * - Robust: an image that does not decode (or an extra that does not load) is counted, logged with its
 *   path and left out of its batch; the epoch goes on.
 * - Extras follow the pixels: a per-image map is cropped, resized and flipped with the same plan as the
 *   image and its boxes (image/extras-geometry.ts). Without pixels (a feature cache serving embeddings) the
 *   plan is drawn from the image header alone — the same draw the pixel path makes.
 * - A missing extra file is an error for val/test by default (`missingExtras`), never a silent shrink of
 *   the evaluation set; with `skip` the samples left out are counted per split and subset (`skipCounts`).
 */
import { existsSync } from 'node:fs';
import { ensureBackend, rngFor, tf, type Batch, type BatchLoader, type BatchSource, type BatchSourceOptions, type DropReason, type FaceBox, type Sample, type SkipCount, type Split } from '@dfd/core';
import { boxesToArray, templateBoxes } from './boxes.js';
import { loadExtra, type ExtraArray } from './extras.js';
import { extrasStoreAt, isExtrasStore, type ExtrasStore } from './extra-store.js';
import { hwcToChw, normalizationOf } from './image/normalize.js';
import { transformMap } from './image/extras-geometry.js';
import { imageInfo, transformImage } from './image/pipeline.js';
import { planTransform, TransformSpecSchema, transformBoxes, type TransformPlan, type TransformSpec } from './image/transform.js';
import { IssueLog } from './issues.js';
import { EVAL_DEFAULTS, LoaderConfigSchema, TRAIN_DEFAULTS, type LoaderConfig, type LoaderConfigInput } from './loader-config.js';
import { Limiter } from './pool.js';

export type SkipListener = (message: string, sample: Sample) => void;

/** Val/test samples lack their extra files and the policy is `error`. */
export class MissingExtraError extends Error {
  override name = 'MissingExtraError';
}

/** The path of a sample's extra, or undefined when the dataset gave none or the file does not exist. */
function extraPath(sample: Sample, key: string): string | undefined {
  const path = sample.extras?.[key];
  return path && existsSync(path) ? path : undefined;
}

export class ImageBatchLoader implements BatchLoader {
  readonly config: LoaderConfig;
  readonly trainSpec: TransformSpec;
  readonly evalSpec: TransformSpec;
  private readonly log: IssueLog;
  private readonly limiter: Limiter;
  private readonly listeners: SkipListener[] = [];
  /** Per sample id, the last reason it was skipped for. */
  private readonly reasons = new Map<string, { reason: DropReason; message: string }>();
  /** Samples left out, by `split/subset/reason` (each sample once, however many epochs skip it). */
  private readonly skippedSamples = new Map<string, Set<string>>();
  /** Extras stores by root (null: the path is a plain file), opened once. */
  private readonly stores = new Map<string, Promise<ExtrasStore> | null>();

  constructor(config: LoaderConfigInput = {}) {
    this.config = LoaderConfigSchema.parse(config);
    this.trainSpec = TransformSpecSchema.parse({ ...TRAIN_DEFAULTS, ...(this.config.train ?? {}), size: this.config.size });
    this.evalSpec = TransformSpecSchema.parse({ ...EVAL_DEFAULTS, ...(this.config.eval ?? {}), size: this.config.size });
    this.log = new IssueLog(this.config.maxMessages);
    this.limiter = new Limiter(this.config.concurrency);
  }

  /** Called for each skipped sample (e.g. to forward a warning event to the run). */
  onSkip(listener: SkipListener): void {
    this.listeners.push(listener);
  }

  create(samples: Sample[], options: BatchSourceOptions): BatchSource {
    if (options.needs.features && !options.needs.pixels) {
      throw new Error(
        "loader 'images' produces pixels, but the detector needs precomputed features: use a feature-cache loader",
      );
    }
    this.checkExtras(samples, options);
    return new ImageBatchSource(this, samples, options);
  }

  /** @internal The missing-extras policy of a split. */
  missingPolicy(split: Split): 'error' | 'skip' {
    return split === 'train' ? this.config.missingExtras.train : this.config.missingExtras.eval;
  }

  /** @internal True when `path` is an extras store (dfd lare) that holds no map for the sample's image. */
  async storeLacks(path: string, sample: Sample): Promise<boolean> {
    let store = this.stores.get(path);
    if (store === undefined) {
      store = isExtrasStore(path) ? extrasStoreAt(path) : null;
      this.stores.set(path, store);
    }
    return store !== null && !(await (await store).find(sample.path));
  }

  /**
   * Policy `error`: every missing extra file of the split is reported at once, before any batch is made.
   * Maps inside an extras store are looked up (by path or content hash) when their batch is made.
   */
  private checkExtras(samples: Sample[], options: BatchSourceOptions): void {
    const policy = this.missingPolicy(options.split);
    if (policy !== 'error' || options.needs.extras.length === 0) return;
    for (const key of options.needs.extras) {
      const missing = samples.filter((sample) => !extraPath(sample, key));
      if (!missing.length) continue;
      const bySubset = new Map<string, number>();
      for (const sample of missing) bySubset.set(sample.subset, (bySubset.get(sample.subset) ?? 0) + 1);
      const subsets = [...bySubset].map(([subset, n]) => `${subset} (${n})`).join(', ');
      const examples = missing.slice(0, 3).map((s) => `${s.path} → ${s.extras?.[key] ?? `no '${key}' path (the dataset config has no extras.${key})`}`);
      throw new MissingExtraError(
        `${missing.length} of ${samples.length} ${options.split} samples have no '${key}' file, in ${subsets}; e.g. ${examples.join('; ')}. ` +
          `Compute the missing '${key}' maps for these images (for LaRE: the dfd lare stage-1 command), or set the loader option ` +
          `\`missingExtras: { ${options.split === 'train' ? 'train' : 'eval'}: 'skip' }\` to leave them out (the run's report then states how many and which subsets).`,
      );
    }
  }

  skipped(): { count: number; messages: string[] } {
    return { count: this.log.corrupt, messages: this.log.messages };
  }

  /** Why a sample was left out of its batches (the evaluation's coverage counts it under this reason). */
  dropReason(sample: Sample): { reason: DropReason; message: string } | undefined {
    return this.reasons.get(sample.id);
  }

  skipCounts(): SkipCount[] {
    return [...this.skippedSamples].map(([key, ids]) => {
      const [split, subset, reason] = JSON.parse(key) as [Split, string, string];
      return { split, subset, reason, count: ids.size };
    });
  }

  /** @internal */
  skip(sample: Sample, message: string, reason: DropReason = 'corrupt'): void {
    this.reasons.set(sample.id, { reason, message });
    const key = JSON.stringify([sample.split, sample.subset, reason]);
    let ids = this.skippedSamples.get(key);
    if (!ids) this.skippedSamples.set(key, (ids = new Set()));
    ids.add(sample.id);
    this.log.corrupt++;
    this.log.note(message);
    if (this.config.logSkips) console.warn(`[dfd/dataset-df40] skipped ${sample.path}: ${message}`);
    for (const listener of this.listeners) listener(message, sample);
  }

  /** @internal */
  run<T>(task: () => Promise<T>): Promise<T> {
    return this.limiter.run(task);
  }
}

interface Prepared {
  sample: Sample;
  pixels?: Float32Array;
  boxes?: Float32Array;
  extras: Record<string, ExtraArray>;
}

class ImageBatchSource implements BatchSource {
  readonly size: number;
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  private readonly spec: TransformSpec;

  constructor(
    private readonly loader: ImageBatchLoader,
    private readonly samples: Sample[],
    private readonly options: BatchSourceOptions,
  ) {
    this.size = samples.length;
    this.batchSize = options.batchSize;
    this.batchesPerEpoch = options.dropLast ? Math.floor(this.size / this.batchSize) : Math.ceil(this.size / this.batchSize);
    this.spec = options.augment ? loader.trainSpec : loader.evalSpec;
  }

  /** Sample order of an epoch. */
  order(epoch: number): Sample[] {
    const order = [...this.samples];
    return this.options.shuffle ? rngFor(this.options.seed, `shuffle/${epoch}`).shuffle(order) : order;
  }

  async *batches(epoch: number, options: { startBatch?: number } = {}): AsyncIterable<Batch> {
    await ensureBackend();
    const order = this.order(epoch);
    const depth = 1 + this.loader.config.prefetch;
    const queue: Array<Promise<Batch | undefined>> = [];
    let next = options.startBatch ?? 0;
    const fill = () => {
      while (queue.length < depth && next < this.batchesPerEpoch) {
        const k = next++;
        const promise = this.build(order.slice(k * this.batchSize, (k + 1) * this.batchSize), epoch);
        promise.catch(() => undefined); // surfaced when awaited below
        queue.push(promise);
      }
    };
    try {
      fill();
      while (queue.length > 0) {
        const batch = await queue.shift()!;
        fill(); // the next batches decode while the consumer works on this one
        if (batch) yield batch;
      }
    } finally {
      // The consumer stopped early: wait for what was prepared ahead and release it, so tensor memory is
      // back to where it was when the loop exits (a `break` awaits this).
      const pending = await Promise.allSettled(queue);
      for (const result of pending) if (result.status === 'fulfilled') result.value?.dispose();
    }
  }

  private async prepare(sample: Sample, epoch: number): Promise<Prepared | undefined> {
    const needs = this.options.needs;
    const prepared: Prepared = { sample, extras: {} };
    let plan: TransformPlan | undefined;
    try {
      // One draw per (seed, epoch, sample): pixels, boxes and extras all follow this plan.
      const rng = rngFor(this.options.seed, `${this.options.augment ? 'aug' : 'eval'}/${epoch}/${sample.id}`);
      if (needs.pixels) {
        const image = await this.loader.run(() => transformImage(sample.path, this.spec, rng));
        prepared.pixels = hwcToChw(image.data, image.width, image.height, 3, normalizationOf(this.spec.normalize), image.plan.flip);
        plan = image.plan;
      } else if (needs.boxes || needs.extras.length > 0) {
        const info = await this.loader.run(() => imageInfo(sample.path));
        plan = planTransform(this.spec, info.width, info.height, rng);
      }
      if (needs.boxes && plan) {
        const source: readonly FaceBox[] = sample.boxes ?? templateBoxes(plan.source.width, plan.source.height);
        const template = templateBoxes(plan.source.width, plan.source.height);
        prepared.boxes = boxesToArray(transformBoxes(source, plan), this.loader.config.regions, transformBoxes(template, plan));
      }
    } catch (error) {
      this.loader.skip(sample, `${(error as Error).message}; the image is left out (re-extract or delete the file)`);
      return undefined;
    }
    for (const key of needs.extras) {
      const path = extraPath(sample, key);
      const missing = !path
        ? sample.extras?.[key]
          ? `its '${key}' file ${sample.extras[key]} does not exist`
          : `it has no '${key}' extra (configure the dataset's extras.${key})`
        : (await this.loader.storeLacks(path, sample))
          ? `the '${key}' extras store ${path} has no map for it (by path or content hash)`
          : undefined;
      if (missing) {
        const message = `${this.options.split} sample ${sample.path} (subset ${sample.subset}): ${missing}`;
        if (this.loader.missingPolicy(this.options.split) === 'error') {
          throw new MissingExtraError(
            `${message}. Compute its '${key}' map (for LaRE: dfd lare extract; dfd lare verify lists what a store lacks), or set the loader option ` +
              `\`missingExtras: { ${this.options.split === 'train' ? 'train' : 'eval'}: 'skip' }\` to leave such samples out (counted in the report).`,
          );
        }
        this.loader.skip(sample, message, 'no-extras');
        return undefined;
      }
      try {
        const extra = await this.loader.run(() => loadExtra(path!, key, sample.path)); // defined: `missing` covers !path
        prepared.extras[key] = plan && (this.loader.config.extraGeometry[key] ?? 'image') === 'image' ? transformMap(extra, plan) : extra;
      } catch (error) {
        this.loader.skip(sample, `extra '${key}' ${path}: ${(error as Error).message}`, 'no-extras');
        return undefined;
      }
    }
    return prepared;
  }

  private async build(samples: Sample[], epoch: number): Promise<Batch | undefined> {
    const results = await Promise.all(samples.map((s) => this.prepare(s, epoch)));
    let ok = results.filter((r): r is Prepared => r !== undefined);
    ok = this.consistentExtras(ok);
    if (ok.length === 0) return undefined;
    const n = ok.length;
    const needs = this.options.needs;
    const side = this.spec.size;
    const tensors: tf.Tensor[] = [];
    const labels = tf.tensor1d(ok.map((p) => p.sample.label), 'int32');
    tensors.push(labels);
    const batch: Batch = {
      samples: ok.map((p) => p.sample),
      labels,
      dispose: () => {
        for (const t of tensors) t.dispose();
      },
    };
    if (needs.pixels) {
      const plane = 3 * side * side;
      const pixels = new Float32Array(n * plane);
      ok.forEach((p, i) => pixels.set(p.pixels!, i * plane));
      batch.pixels = tf.tensor4d(pixels, [n, 3, side, side]);
      tensors.push(batch.pixels);
    }
    if (needs.boxes) {
      const r = this.loader.config.regions.length;
      const boxes = new Float32Array(n * r * 4);
      ok.forEach((p, i) => boxes.set(p.boxes!, i * r * 4));
      batch.boxes = tf.tensor3d(boxes, [n, r, 4]);
      tensors.push(batch.boxes);
    }
    if (needs.extras.length > 0) {
      batch.extras = {};
      for (const key of needs.extras) {
        const shape = ok[0]!.extras[key]!.shape;
        const per = shape.reduce((a, b) => a * b, 1);
        const data = new Float32Array(n * per);
        ok.forEach((p, i) => data.set(p.extras[key]!.data, i * per));
        const tensor = tf.tensor(data, [n, ...shape]);
        batch.extras[key] = tensor;
        tensors.push(tensor);
      }
    }
    return batch;
  }

  /** Extras of one key must share a shape; samples whose shape differs from the first are skipped. */
  private consistentExtras(prepared: Prepared[]): Prepared[] {
    const keys = this.options.needs.extras;
    if (keys.length === 0 || prepared.length === 0) return prepared;
    const reference = Object.fromEntries(keys.map((k) => [k, prepared[0]!.extras[k]!.shape.join('x')]));
    return prepared.filter((p) => {
      for (const key of keys) {
        const shape = p.extras[key]!.shape.join('x');
        if (shape !== reference[key]) {
          this.loader.skip(p.sample, `extra '${key}' ${p.sample.extras?.[key]} has shape ${shape}, the batch has ${reference[key]}`);
          return false;
        }
      }
      return true;
    });
  }
}
