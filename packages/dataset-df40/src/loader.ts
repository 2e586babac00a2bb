/**
 * The `images` BatchLoader: listed samples → `Batch`es of NCHW pixels, int32 labels, boxes and extras.
 *
 * - Deterministic: the order comes from rngFor(seed, `shuffle/<epoch>`) and each image's augmentation from
 *   rngFor(seed, `aug/<epoch>/<sample id>`), so concurrency and prefetch never change the bytes.
 * - Concurrent: up to `concurrency` images decode at once on sharp's (libuv) threads, and `prefetch`
 *   batches are prepared while the consumer trains on the current one.
 * - Robust: an image that does not decode (or an extra that does not load) is counted, logged with its
 *   path and left out of its batch; the epoch goes on.
 */
import { ensureBackend, rngFor, tf, type Batch, type BatchLoader, type BatchSource, type BatchSourceOptions, type FaceBox, type Sample } from '@dfd/core';
import { boxesToArray, templateBoxes } from './boxes.js';
import { loadExtra, type ExtraArray } from './extras.js';
import { hwcToChw, normalizationOf } from './image/normalize.js';
import { transformImage } from './image/pipeline.js';
import { TransformSpecSchema, transformBoxes, type TransformSpec } from './image/transform.js';
import { IssueLog } from './issues.js';
import { EVAL_DEFAULTS, LoaderConfigSchema, TRAIN_DEFAULTS, type LoaderConfig, type LoaderConfigInput } from './loader-config.js';
import { Limiter } from './pool.js';

export type SkipListener = (message: string, sample: Sample) => void;

export class ImageBatchLoader implements BatchLoader {
  readonly config: LoaderConfig;
  readonly trainSpec: TransformSpec;
  readonly evalSpec: TransformSpec;
  private readonly log: IssueLog;
  private readonly limiter: Limiter;
  private readonly listeners: SkipListener[] = [];

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
    return new ImageBatchSource(this, samples, options);
  }

  skipped(): { count: number; messages: string[] } {
    return { count: this.log.corrupt, messages: this.log.messages };
  }

  /** @internal */
  skip(sample: Sample, message: string): void {
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
    try {
      if (needs.pixels) {
        const rng = rngFor(this.options.seed, `${this.options.augment ? 'aug' : 'eval'}/${epoch}/${sample.id}`);
        const image = await this.loader.run(() => transformImage(sample.path, this.spec, rng));
        prepared.pixels = hwcToChw(image.data, image.width, image.height, 3, normalizationOf(this.spec.normalize), image.plan.flip);
        if (needs.boxes) {
          const source: readonly FaceBox[] = sample.boxes ?? templateBoxes(image.plan.source.width, image.plan.source.height);
          const template = templateBoxes(image.plan.source.width, image.plan.source.height);
          prepared.boxes = boxesToArray(transformBoxes(source, image.plan), this.loader.config.regions, transformBoxes(template, image.plan));
        }
      }
    } catch (error) {
      this.loader.skip(sample, `${(error as Error).message}; the image is left out (re-extract or delete the file)`);
      return undefined;
    }
    for (const key of needs.extras) {
      const path = sample.extras?.[key];
      if (!path) {
        this.loader.skip(sample, `sample ${sample.id} has no '${key}' extra; configure the dataset's extras.${key}`);
        return undefined;
      }
      try {
        prepared.extras[key] = await this.loader.run(() => loadExtra(path, key, sample.path));
      } catch (error) {
        this.loader.skip(sample, `extra '${key}' ${path}: ${(error as Error).message}`);
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
      if (needs.boxes) {
        const r = this.loader.config.regions.length;
        const boxes = new Float32Array(n * r * 4);
        ok.forEach((p, i) => boxes.set(p.boxes!, i * r * 4));
        batch.boxes = tf.tensor3d(boxes, [n, r, 4]);
        tensors.push(batch.boxes);
      }
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
