/**
 * The data path through core's real runner: the synthetic mini-DF40 listed by the `df40` dataset, batched
 * by the `images` loader (train augmentation, eval transform), a small pixel detector trained for two
 * epochs, and core's `df40` evaluator on the 8 test subsets.
 */
import { cpSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  definePlugin,
  inject,
  injectable,
  configToken,
  formatTestTable,
  IncompleteEvaluationError,
  readEvents,
  runExperiment,
  tf,
  TOKENS,
  uniqueVariableName,
  type Batch,
  type Detector,
  type Rng,
} from '@dfd/core';
import { DF40_TEST_SUBSETS, df40Plugin, generateMiniDf40 } from '@dfd/dataset-df40';
import { tempDir } from './helpers.js';

const PixelConfig = z.object({ size: z.number().int().default(16) });

/** Linear softmax on 4×4 average-pooled pixels: enough to exercise pixels, labels and gradients. */
@injectable()
class PooledPixelDetector implements Detector {
  readonly needs = { pixels: true, features: false, extras: [], boxes: true };
  private readonly weight: tf.Variable;
  private readonly bias: tf.Variable;
  private readonly dim: number;
  boxesSeen = 0;
  constructor(@inject(configToken('detector')) config: z.output<typeof PixelConfig>, @inject(TOKENS.Rng) rng: Rng) {
    this.dim = (config.size / 4) ** 2 * 3;
    this.weight = tf.variable(tf.tensor2d(rng.fork('w').normalArray(this.dim * 2, 0, 0.02), [this.dim, 2]), true, uniqueVariableName('pp.weight'));
    this.bias = tf.variable(tf.zeros([2]), true, uniqueVariableName('pp.bias'));
  }
  trainableVariables() {
    return { weight: this.weight, bias: this.bias };
  }
  forward(batch: Batch): tf.Tensor2D {
    if (!batch.boxes || batch.boxes.shape[0] !== batch.pixels!.shape[0]) throw new Error('boxes missing');
    this.boxesSeen += batch.boxes.shape[0];
    return tf.tidy(() => {
      const nhwc = tf.transpose(batch.pixels!, [0, 2, 3, 1]) as tf.Tensor4D;
      const pooled = tf.avgPool(nhwc, 4, 4, 'valid');
      const flat = tf.reshape(pooled, [-1, this.dim]) as tf.Tensor2D;
      return tf.add(tf.matMul(flat, this.weight), this.bias) as tf.Tensor2D;
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
  }
}

const testPlugin = definePlugin({
  name: 'df40-test-detector',
  register(r) {
    r.add({ kind: 'detector', name: 'pooled-pixels', config: PixelConfig, useClass: PooledPixelDetector });
  },
});

let base: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir: base, cleanup } = await tempDir());
  await generateMiniDf40({ out: join(base, 'mini'), videos: 4, frames: 2, size: 32, seed: 1 });
});
afterAll(() => cleanup());

function experiment(root: string, overrides: Record<string, unknown> = {}) {
  return {
    name: 'df40-runner',
    seed: 2,
    backend: 'cpu' as const,
    pluginObjects: [df40Plugin, testPlugin],
    dataset: { use: 'df40', config: { root, framesPerVideo: 2 } },
    loader: { use: 'images', preset: 'clip', config: { size: 16, train: { scale: [0.5, 1] as [number, number] } } },
    detector: { use: 'pooled-pixels', config: { size: 16 } },
    evaluator: { use: 'df40' },
    trainer: { epochs: 2, batchSize: 16, evalBatchSize: 32, optimizer: { type: 'sgd' as const, lr: 0.05, momentum: 0.9 } },
    runsDir: join(base, 'runs'),
    ...overrides,
  };
}

describe('df40 dataset + images loader in the runner', () => {
  it('states the test coverage: a missing video, an empty video and a corrupt frame are counted per subset and listed', async () => {
    const root = join(base, 'damaged');
    cpSync(join(base, 'mini'), root, { recursive: true });
    const fakes = (subset: string) => join(root, 'DF40', subset, 'fake', 'frames');
    const [missingVideo] = readdirSync(fakes('e4e')).sort();
    rmSync(join(fakes('e4e'), missingVideo!), { recursive: true }); // a video the JSON lists is gone
    const [emptyVideo] = readdirSync(fakes('styleclip')).sort();
    for (const frame of readdirSync(join(fakes('styleclip'), emptyVideo!))) rmSync(join(fakes('styleclip'), emptyVideo!, frame));
    const [video] = readdirSync(fakes('heygen')).sort();
    const corrupt = join(fakes('heygen'), video!, readdirSync(join(fakes('heygen'), video!)).sort()[0]!);
    writeFileSync(corrupt, 'not a png'); // a real corrupt frame: sharp cannot decode it

    const result = await runExperiment(experiment(root));
    expect(result.status).toBe('finished');
    const coverage = result.test!.coverage!;
    expect(coverage.complete).toBe(false);
    // Each test subset lists 4 fake + 4 real videos × 2 frames.
    expect(coverage.subsets.e4e).toEqual({
      frames: { listed: 16, scored: 14, dropped: { missing: 2, empty: 0, corrupt: 0, 'no-extras': 0 }, replaced: 0 },
      videos: { listed: 8, scored: 7 },
    });
    expect(coverage.subsets.styleclip!.frames).toMatchObject({ listed: 16, scored: 14, dropped: { empty: 2 } });
    expect(coverage.subsets.heygen).toEqual({
      frames: { listed: 16, scored: 15, dropped: { missing: 0, empty: 0, corrupt: 1, 'no-extras': 0 }, replaced: 0 },
      videos: { listed: 8, scored: 8 },
    });
    expect(coverage.subsets.stargan!.frames).toMatchObject({ listed: 16, scored: 16 });
    expect(coverage.overall.frames).toMatchObject({ listed: 128, scored: 123 });
    // `n` and coverage agree.
    expect(result.test!.subsets.e4e!.n).toBe(14);
    // The table `dfd run` prints shows frames scored/listed and says that coverage is below 100%.
    const table = formatTestTable(result.test!);
    expect(table).toMatch(/^e4e\s.*\s14\/16 !$/m);
    expect(table).toMatch(/^stargan\s.*\s16\/16$/m);
    expect(table).toContain('test coverage is below 100%');
    expect(table).toContain('  heygen: 15/16 frames (1 corrupt), 8/8 videos');

    const report = JSON.parse(readFileSync(join(result.runDir, 'report.json'), 'utf8'));
    expect(report.coverage.subsets.heygen.frames.dropped.corrupt).toBe(1);
    const html = readFileSync(join(result.runDir, 'report.html'), 'utf8');
    expect(html).toContain('Coverage below 100%');
    expect(html).toMatch(/<th scope="row">e4e<\/th><td>14 \(/);
    expect(html).toContain('14 / 16 frames · 7 / 8 videos<br><span class="dropped">dropped: 2 missing</span>');
    const dropped = readFileSync(join(result.runDir, 'test-dropped.csv'), 'utf8').trim().split('\n');
    expect(dropped[0]).toBe('path,subset,video,reason,frames,message');
    expect(dropped.slice(1).map((l) => l.split(',').slice(0, 5).join(','))).toEqual(
      expect.arrayContaining([
        `${join(fakes('e4e'), missingVideo!)},e4e,e4e/fake/${missingVideo},missing,2`,
        `${join(fakes('styleclip'), emptyVideo!)},styleclip,styleclip/fake/${emptyVideo},empty,2`,
        `${corrupt},heygen,heygen/fake/${video},corrupt,1`,
      ]),
    );
    expect(dropped).toHaveLength(4);
    // Trackers see it: the eval event's metrics carry the coverage, and the CSV is an artifact.
    const metrics = readFileSync(join(result.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.find((m) => m.key === 'test/coverage').value).toBeCloseTo(123 / 128, 12);
    expect(metrics.find((m) => m.key === 'test/e4e/frames_dropped').value).toBe(2);
    expect(metrics.find((m) => m.key === 'test/frames_dropped_corrupt').value).toBe(1);
    expect(readEvents(result.runDir).some((e) => e.type === 'artifact' && e.name === 'test-dropped.csv')).toBe(true);

    // evaluation.requireComplete turns any drop into an error that names the subsets.
    const strict = runExperiment(experiment(root, { name: 'df40-strict', evaluation: { requireComplete: true } }));
    await expect(strict).rejects.toThrow(IncompleteEvaluationError);
    await expect(strict).rejects.toThrow(/test evaluation is incomplete.*e4e: 14\/16 frames \(2 missing\), 7\/8 videos.*heygen: 15\/16 frames \(1 corrupt\)/);
  });

  it('trains on the synthetic train split and evaluates the 8 test subsets', async () => {
    const result = await runExperiment({
      name: 'df40-runner',
      seed: 2,
      backend: 'cpu',
      pluginObjects: [df40Plugin, testPlugin],
      dataset: { use: 'df40', config: { root: join(base, 'mini'), framesPerVideo: 2 } },
      loader: { use: 'images', preset: 'clip', config: { size: 16, train: { scale: [0.5, 1] } } },
      detector: { use: 'pooled-pixels', config: { size: 16 } },
      evaluator: { use: 'df40' },
      trainer: { epochs: 2, batchSize: 16, evalBatchSize: 32, optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 } },
      runsDir: join(base, 'runs'),
    });
    expect(result.status).toBe('finished');
    // 4 methods × 4 videos × 2 frames of fakes, and as many FF++ reals (listed by every method, used once)
    expect(result.steps).toBe(2 * Math.ceil(64 / 16));
    for (const subset of DF40_TEST_SUBSETS) expect(result.test!.subsets[subset], subset).toBeDefined();
    // The protocol the numbers were obtained under is on the report.
    expect(result.test!.protocol).toMatchObject({ dataset: 'df40', frames_per_video_eval: 2, frame_sampling: 'even', selection: 'val' });
    const rows = readFileSync(join(result.runDir, 'test-scores.csv'), 'utf8').trim().split('\n').slice(1);
    expect(rows).toHaveLength(8 * 2 * 4 * 2);
    expect(new Set(rows.map((r) => r.split(',')[2])).size).toBe(8 * 2 * 4);
  });
});
