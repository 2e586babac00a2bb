/**
 * A run made by hand, in the exact format of core's runner: a run directory created by core, config.json
 * written before run-start (as the runner does), and core's `recordEvents` writing events.jsonl and
 * metrics.jsonl from a `RunEventBus`. Tests emit the
 * events a training run would emit (they need no model or dataset to exercise the tracker).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRunDirectory, recordEvents, RunEventBus, writeRecordJson, type EvaluationReport, type RunDirectory, type RunEvent, type RunStartEvent } from '@dfd/core';
import type { Subscription } from 'rxjs';

export const SUBSETS = ['heygen', 'MidJourney', 'whichfaceisreal', 'stargan'] as const;

const made: string[] = [];
// Registered in each test file that imports this module: its runs directories go when the file is done.
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function tempRunsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dfd-mlflow-runs-'));
  made.push(dir);
  return dir;
}

export const baseConfig = (experiment: string): Record<string, unknown> => ({
  name: experiment,
  description: 'CoOp on mini-DF40, tracked to MLflow',
  seed: 7,
  backend: 'wasm',
  dataset: { use: 'df40-synthetic', config: { root: '/data/mini-df40', frames: 8 } },
  promptLearner: { use: 'coop', preset: 'coop', config: { nCtx: 16, ctxInit: '', classNames: ['real', 'fake'] } },
  enhancers: [{ use: 'lare-egre', config: { channels: 4 } }],
  data: { train: { subsets: ['FF', 'heygen'] }, val: {}, test: {} },
  trainer: { epochs: 2, batchSize: 8, optimizer: { type: 'sgd', lr: 0.002, momentum: 0.9 } },
  tracking: [{ use: 'mlflow', config: {} }],
});

export function evalReport(step: number, subsets: readonly string[] = SUBSETS): EvaluationReport {
  const subsetMetrics: Record<string, Record<string, number>> = {};
  subsets.forEach((name, i) => {
    subsetMetrics[name] = { auc: 0.6 + 0.05 * i + step / 1000, ap: 0.55 + 0.05 * i, eer: 0.3 - 0.02 * i, acc: 0.7 };
  });
  return {
    overall: { auc: 0.8 + step / 1000, ap: 0.78, eer: 0.21, acc: 0.74 },
    subsets: subsetMetrics,
    protocol: { selection: 'val', frames_per_video: 8, sampling: 'even' },
  };
}

export class HandRun {
  readonly bus = new RunEventBus();
  readonly run: RunDirectory;
  private readonly recording: Subscription;
  readonly emitted: RunEvent[] = [];

  constructor(
    readonly runsDir: string,
    readonly experiment: string,
    runId?: string,
  ) {
    this.run = createRunDirectory(runsDir, experiment, runId);
    this.recording = recordEvents(this.bus.events$, this.run);
    this.bus.events$.subscribe((event) => this.emitted.push(event));
  }

  get runDir(): string {
    return this.run.dir;
  }

  get runId(): string {
    return this.run.runId;
  }

  start(extra: Partial<Omit<RunStartEvent, 'type' | 'time'>> = {}): void {
    writeRecordJson(this.run, 'config.json', extra.config ?? baseConfig(this.experiment));
    this.bus.emit({
      type: 'run-start',
      runId: this.run.runId,
      experiment: this.experiment,
      runName: `${this.experiment}-${this.run.runId}`,
      runDir: this.run.dir,
      config: baseConfig(this.experiment),
      tags: { 'mlflow.source.name': 'test', 'mlflow.user': 'tester', 'mlflow.source.git.commit': 'abc123def', 'dfd.backend': 'wasm', 'dfd.version.dfd/core': '0.1.0' },
      datasets: [
        { name: 'df40-synthetic:train', digest: 'a1b2c3d4e5f60718293a4b5c6d7e8f90aabbccddeeff', source: '{"root":"/data/mini-df40"}', context: 'training' },
        { name: 'df40-synthetic:test', digest: '0f9e8d7c', source: '{"root":"/data/mini-df40"}', context: 'testing' },
      ],
      totalSteps: 100,
      ...extra,
    });
  }

  /** Steps from..to inclusive, loss 1/(step+1), with a distinct timestamp per step. */
  steps(from: number, to: number, options: { epoch?: number; loss?: (step: number) => number } = {}): void {
    for (let step = from; step <= to; step++) {
      this.bus.emit({
        type: 'step',
        step,
        epoch: options.epoch ?? 0,
        loss: options.loss ? options.loss(step) : 1 / (step + 1),
        lr: 0.002,
        imagesPerSecond: 100 + step,
        totalSteps: 100,
        metrics: { grad_norm: 0.5 + step / 100 },
      });
    }
  }

  evalAt(step: number, split: 'val' | 'test' = 'val'): void {
    this.bus.emit({ type: 'eval', step, epoch: 0, split, report: evalReport(step) });
  }

  /** Writes a checkpoint file and emits the best-checkpoint event. */
  bestCheckpoint(step: number, bytes: Buffer): string {
    const path = join(this.run.checkpointsDir, 'best.safetensors');
    writeFileSync(path, bytes);
    this.bus.emit({ type: 'checkpoint', step, epoch: 0, path, kind: 'best', selectedBy: { metric: 'auc', value: 0.9 } });
    return path;
  }

  artifact(name: string, content: string | Buffer): string {
    const path = join(this.run.dir, name);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, content);
    this.bus.emit({ type: 'artifact', path, name });
    return path;
  }

  end(status: 'finished' | 'failed' | 'killed' = 'finished', step = 0, error?: string): void {
    this.bus.emit({ type: 'end', status, step, ...(error ? { error } : {}) });
    this.recording.unsubscribe();
  }
}
