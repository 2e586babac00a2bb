/**
 * A small but real plugin for core's tests: a dataset of Gaussian feature vectors whose class means
 * differ (so a linear detector can learn it), a loader that batches them as `features`, a linear
 * softmax detector, and an AUC evaluator built on core's metrics. No images: this tests the runner,
 * trainer and DI, not the image pipeline.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  definePlugin,
  inject,
  injectable,
  configToken,
  rngFor,
  rocAuc,
  tf,
  TOKENS,
  uniqueVariableName,
  type Batch,
  type BatchLoader,
  type BatchSource,
  type BatchSourceOptions,
  type Dataset,
  type Detector,
  type EvaluationReport,
  type Evaluator,
  type Rng,
  type Sample,
  type ScoredSet,
  type Split,
} from '@dfd/core';

const ToyDatasetConfig = z.object({
  /** Where the feature files are written (one little-endian float32 vector per `.f32` file). */
  root: z.string(),
  perSplit: z.object({ train: z.number().int(), val: z.number().int(), test: z.number().int() }).default({ train: 64, val: 32, test: 32 }),
  dim: z.number().int().positive().default(8),
  separation: z.number().default(1.5),
});
type ToyDatasetConfig = z.output<typeof ToyDatasetConfig>;

/** Reads one `.f32` vector; undefined when the file is not a whole vector of the expected size. */
function readVector(path: string, dim: number): Float32Array | undefined {
  const bytes = readFileSync(path);
  if (bytes.length !== dim * 4) return undefined;
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

@injectable()
class ToyDataset implements Dataset {
  readonly name = 'toy';
  constructor(@inject(configToken('dataset')) private readonly config: ToyDatasetConfig, @inject(TOKENS.Experiment) private readonly experiment: { seed: number }) {}
  async subsets(): Promise<string[]> {
    return ['a', 'b'];
  }
  async samples({ split }: { split: Split }): Promise<Sample[]> {
    // The data itself does not depend on the experiment seed: two seeds see the same dataset.
    const rng = rngFor(7, `toy/${split}`);
    const out: Sample[] = [];
    for (let i = 0; i < this.config.perSplit[split]; i++) {
      const label = (i % 2) as 0 | 1;
      const subset = i % 4 < 2 ? 'a' : 'b';
      const path = join(this.config.root, `${split}-${i}.f32`);
      const sample: Sample = { id: path, path, label, subset, split, videoId: `${subset}/${label}/${i}` };
      const vector = rng.normalArray(this.config.dim);
      vector[0]! += label ? this.config.separation : -this.config.separation;
      if (!existsSync(path)) {
        mkdirSync(this.config.root, { recursive: true });
        writeFileSync(path, Buffer.from(vector.buffer));
      }
      out.push(sample);
    }
    void this.experiment;
    return out;
  }
}

/** For the kill drills: after this many test batches, write `marker` and hang until killed. */
export interface ToyPause {
  testBatches: number;
  marker: string;
}

async function hangAfter(marker: string): Promise<never> {
  writeFileSync(marker, String(process.pid));
  setInterval(() => undefined, 1000); // keeps the process alive until the test kills it
  return new Promise<never>(() => undefined);
}

class ToySource implements BatchSource {
  readonly batchesPerEpoch: number;
  constructor(
    private readonly samples: Sample[],
    private readonly options: BatchSourceOptions,
    private readonly dim: number,
    private readonly skips: string[],
    private readonly pause?: ToyPause,
  ) {
    this.batchesPerEpoch = Math.ceil(samples.length / options.batchSize);
  }
  get size() {
    return this.samples.length;
  }
  get batchSize() {
    return this.options.batchSize;
  }
  async *batches(epoch: number, { startBatch = 0 } = {}): AsyncIterable<Batch> {
    const order = this.options.shuffle ? rngFor(this.options.seed, `epoch/${epoch}`).shuffle([...this.samples]) : this.samples;
    for (let b = startBatch; b < this.batchesPerEpoch; b++) {
      // Once only: the resumed run (same recorded config) must not pause again.
      if (this.pause && this.options.split === 'test' && b === this.pause.testBatches && !existsSync(this.pause.marker)) await hangAfter(this.pause.marker);
      const dim = this.dim;
      const chunk: Sample[] = [];
      const vectors: Float32Array[] = [];
      for (const sample of order.slice(b * this.options.batchSize, (b + 1) * this.options.batchSize)) {
        const vector = readVector(sample.path, dim);
        if (vector) {
          chunk.push(sample);
          vectors.push(vector);
        } else {
          this.skips.push(`${sample.path}: not a ${dim}-float vector`);
        }
      }
      if (!chunk.length) continue;
      const data = new Float32Array(chunk.length * dim);
      vectors.forEach((v, i) => data.set(v, i * dim));
      const labels = tf.tensor1d(chunk.map((s) => s.label), 'int32');
      const feats = tf.tensor2d(data, [chunk.length, dim]);
      yield { samples: chunk, labels, features: feats, dispose: () => { labels.dispose(); feats.dispose(); } };
    }
  }
}

class ToyLoader implements BatchLoader {
  private readonly skips: string[] = [];
  constructor(
    private readonly dim: number,
    private readonly pause?: ToyPause,
  ) {}
  create(samples: Sample[], options: BatchSourceOptions): BatchSource {
    return new ToySource(samples, options, this.dim, this.skips, this.pause);
  }
  skipped() {
    return { count: this.skips.length, messages: [...this.skips] };
  }
}

const ToyDetectorConfig = z.object({
  dim: z.number().int().default(8),
  nanAfterStep: z.number().int().optional(),
  /** A second, zero-initialised 2×2 head over the linear logits (a stand-in for what stage 2 adds). */
  head: z.boolean().optional(),
});

@injectable()
class ToyLinearDetector implements Detector {
  readonly needs = { pixels: false, features: true, extras: [], boxes: false };
  private readonly weight: tf.Variable;
  private readonly bias: tf.Variable;
  private readonly head?: tf.Variable;
  private calls = 0;
  constructor(@inject(configToken('detector')) private readonly config: z.output<typeof ToyDetectorConfig>, @inject(TOKENS.Rng) rng: Rng) {
    const init = rng.fork('toy-linear');
    this.weight = tf.variable(tf.tensor2d(init.normalArray(config.dim * 2, 0, 0.02), [config.dim, 2]), true, uniqueVariableName('toy.weight'));
    this.bias = tf.variable(tf.zeros([2]), true, uniqueVariableName('toy.bias'));
    if (config.head) this.head = tf.variable(tf.zeros([2, 2]), true, uniqueVariableName('toy.head.weight'));
  }
  trainableVariables() {
    return { weight: this.weight, bias: this.bias, ...(this.head ? { 'head.weight': this.head } : {}) };
  }
  forward(batch: Batch, training: boolean): tf.Tensor2D {
    if (training) this.calls += 1;
    const poisoned = this.config.nanAfterStep !== undefined && training && this.calls > this.config.nanAfterStep;
    return tf.tidy(() => {
      let logits = tf.add(tf.matMul(batch.features!, this.weight), this.bias) as tf.Tensor2D;
      if (this.head) logits = tf.add(logits, tf.matMul(logits, this.head)) as tf.Tensor2D;
      return poisoned ? (tf.mul(logits, Number.NaN) as tf.Tensor2D) : logits;
    });
  }
  loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
    return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 2), logits) as tf.Scalar;
  }
  probabilities(logits: tf.Tensor2D): tf.Tensor1D {
    return tf.tidy(() => tf.squeeze(tf.slice(tf.softmax(logits), [0, 1], [-1, 1]), [1]) as tf.Tensor1D);
  }
  dispose() {
    this.weight.dispose();
    this.bias.dispose();
    this.head?.dispose();
  }
}

class ToyEvaluator implements Evaluator {
  readonly name = 'toy-auc';
  evaluate(scored: ScoredSet, protocol: Record<string, string | number | boolean>): EvaluationReport {
    const subsets: Record<string, Record<string, number>> = {};
    for (const subset of new Set(scored.subsets)) {
      const idx = [...scored.subsets!.keys()].filter((i) => scored.subsets![i] === subset);
      subsets[subset] = { auc: rocAuc({ labels: idx.map((i) => scored.labels[i]!), scores: idx.map((i) => scored.scores[i]!) }) };
    }
    return { overall: { auc: rocAuc({ labels: scored.labels, scores: scored.scores }) }, subsets, protocol };
  }
}

export const toyPlugin = definePlugin({
  name: 'toy-plugin',
  version: '1.0.0',
  register(r) {
    r.add({ kind: 'dataset', name: 'toy', config: ToyDatasetConfig, useClass: ToyDataset });
    r.add({
      kind: 'loader',
      name: 'toy-features',
      config: z.object({ dim: z.number().int().default(8), pause: z.object({ testBatches: z.number().int(), marker: z.string() }).optional() }),
      useFactory: (config) => new ToyLoader(config.dim, config.pause),
    });
    r.add({ kind: 'detector', name: 'toy-linear', config: ToyDetectorConfig, useClass: ToyLinearDetector, presets: { wide: { dim: 8 } } });
    r.add({ kind: 'evaluator', name: 'toy-auc', config: z.object({}), useFactory: () => new ToyEvaluator() });
  },
});

/** A complete toy experiment; tests override fields. */
export function toyExperiment(runsDir: string, overrides: Record<string, unknown> = {}) {
  return {
    name: 'toy',
    seed: 3,
    backend: 'cpu' as const,
    pluginObjects: [toyPlugin],
    dataset: { use: 'toy', config: { root: join(runsDir, 'toy-data') } },
    loader: { use: 'toy-features' },
    detector: { use: 'toy-linear' },
    evaluator: { use: 'toy-auc' },
    trainer: { epochs: 3, batchSize: 16, evalBatchSize: 32, optimizer: { type: 'sgd' as const, lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } },
    runsDir,
    ...overrides,
  };
}
