/**
 * The generic training loop over a Detector's trainable variables: optimizer, per-epoch lr schedule,
 * gradient-norm clipping, validation every N epochs/steps with best-on-validation selection (never test),
 * resumable checkpoints, and a typed event per step. It knows nothing about CLIP or DF40.
 */
import * as tf from '@tensorflow/tfjs';
import { dirname, join } from 'node:path';
import { continueHint, recordWriteError } from '../run/run-directory.js';
import { RunInterrupted } from '../run/interrupt.js';
import type { BatchSource, Detector, EvaluationReport } from '../contracts.js';
import type { RunEventBus } from '../events.js';
import type { TrainerConfig } from '../experiment.js';
import type { Rng } from '../rng.js';
import { clipGradientsByGlobalNorm, createOptimizer, type Optimizer } from './optimizers.js';
import { createSchedule, type LrSchedule } from './schedules.js';
import {
  restoreModel,
  saveCheckpoint,
  toTensors,
  type CheckpointState,
  type LoadedCheckpoint,
  type TrainingPosition,
} from './checkpoint.js';

/** Consecutive non-finite losses tolerated (each skipped and reported) before the run fails. */
export const MAX_CONSECUTIVE_NONFINITE_LOSSES = 5;

export interface TrainerOptions {
  detector: Detector;
  train: BatchSource;
  config: TrainerConfig;
  rng: Rng;
  bus: RunEventBus;
  checkpointsDir: string;
  /** Runs the detector on validation data; undefined when there is none. */
  validate?: () => Promise<EvaluationReport>;
  signal?: AbortSignal;
  resume?: LoadedCheckpoint;
  /**
   * Variables (by stable name) kept fixed: no gradient, no optimizer state, but saved and restored with
   * the checkpoints so the run is complete on its own (stage-2 runs over frozen stage-1 tensors).
   */
  frozen?: ReadonlySet<string>;
}

export interface TrainingOutcome {
  status: 'finished' | 'killed';
  step: number;
  best?: { value: number; step: number; metric: string; path: string };
  lastCheckpoint: string;
}

export class NonFiniteLossError extends Error {
  override name = 'NonFiniteLossError';
}

export class Trainer {
  private readonly optimizer: Optimizer;
  private readonly schedule: LrSchedule;
  /** Every variable of the detector: what the checkpoints hold. */
  private readonly variables: Record<string, tf.Variable>;
  /** The ones the optimizer updates (all but `frozen`). */
  private readonly trained: Record<string, tf.Variable>;
  private position: TrainingPosition = { step: 0, epoch: 0, batchInEpoch: 0 };
  private best: CheckpointState['best'];
  private nonFinite = 0;
  private pendingValidation: CheckpointState['pendingValidation'];
  readonly totalSteps: number;
  readonly lastPath: string;
  readonly bestPath: string;

  constructor(private readonly options: TrainerOptions) {
    const { config, detector, train } = options;
    this.variables = detector.trainableVariables();
    const frozen = options.frozen ?? new Set<string>();
    const unknownFrozen = [...frozen].filter((name) => !(name in this.variables));
    if (unknownFrozen.length) throw new Error(`frozen variable(s) ${unknownFrozen.join(', ')} are not variables of the detector (${Object.keys(this.variables).join(', ')})`);
    this.trained = Object.fromEntries(Object.entries(this.variables).filter(([name]) => !frozen.has(name)));
    if (Object.keys(this.trained).length === 0) {
      throw new Error(
        Object.keys(this.variables).length === 0
          ? 'the detector has no trainable variables: nothing to train (is every part frozen?)'
          : `every variable of the detector is frozen (${[...frozen].join(', ')}): nothing to train; set init.trainable or add trainable parts`,
      );
    }
    this.optimizer = createOptimizer(config.optimizer);
    this.schedule = createSchedule(config.schedule, config.optimizer.lr, config.epochs);
    const perEpoch = train.batchesPerEpoch;
    if (perEpoch === 0) throw new Error('the training split has no batches (no samples, or fewer than one batch with dropLast)');
    this.totalSteps = Math.min(config.maxSteps ?? Infinity, config.epochs * perEpoch);
    this.lastPath = join(options.checkpointsDir, 'last.safetensors');
    this.bestPath = join(options.checkpointsDir, 'best.safetensors');
    if (options.resume) this.restore(options.resume);
  }

  get step(): number {
    return this.position.step;
  }

  private restore(checkpoint: LoadedCheckpoint): void {
    const state = checkpoint.state;
    if ('weightsOnly' in state) throw new Error('cannot resume from a weights-only checkpoint (best.safetensors); use last.safetensors');
    restoreModel(this.options.detector, checkpoint, 'checkpoint');
    const slots = toTensors(checkpoint.optimizer);
    this.optimizer.loadState({ tensors: slots, scalars: state.optimizerScalars });
    for (const slot of Object.values(slots)) slot.dispose();
    this.schedule.loadState(state.schedule);
    this.options.rng.setState(state.rng);
    this.position = { ...state.position };
    this.best = state.best;
    this.nonFinite = state.nonFiniteLosses ?? 0;
    this.pendingValidation = state.pendingValidation;
  }

  async fit(): Promise<TrainingOutcome> {
    const { config, train, bus, signal } = this.options;
    const perEpoch = train.batchesPerEpoch;
    if (this.pendingValidation && !(await this.validateOrSuspend(this.pendingValidation.epoch))) return this.outcome('killed');
    while (this.position.step < this.totalSteps && this.position.epoch < config.epochs) {
      const epoch = this.position.epoch;
      const lr = this.schedule.lrAt(epoch);
      let lossSum = 0;
      let lossCount = 0;
      for await (const batch of train.batches(epoch, { startBatch: this.position.batchInEpoch })) {
        if (signal?.aborted) {
          batch.dispose();
          await this.saveLast();
          return this.outcome('killed');
        }
        const started = performance.now();
        const batchSize = batch.samples.length;
        const { loss, gradNorm } = this.trainStep(batch, lr);
        batch.dispose();
        this.position.step += 1;
        this.position.batchInEpoch += 1;
        if (Number.isFinite(loss)) {
          lossSum += loss;
          lossCount += 1;
        }
        const seconds = (performance.now() - started) / 1000;
        if (this.position.step % config.logEverySteps === 0 || this.position.step === this.totalSteps) {
          bus.emit({
            type: 'step',
            step: this.position.step,
            epoch,
            loss,
            lr,
            imagesPerSecond: batchSize / Math.max(seconds, 1e-9),
            totalSteps: this.totalSteps,
            metrics: gradNorm === undefined ? {} : { grad_norm: gradNorm },
          });
        }
        const epochDone = this.position.batchInEpoch >= perEpoch;
        if (config.evalEverySteps && this.position.step % config.evalEverySteps === 0 && !epochDone && !(await this.validateOrSuspend(epoch))) {
          return this.outcome('killed');
        }
        if (config.checkpointEverySteps && this.position.step % config.checkpointEverySteps === 0 && !epochDone) {
          await this.saveLast();
        }
        if (this.position.step >= this.totalSteps) break;
      }
      const finishedEpoch = this.position.batchInEpoch >= perEpoch;
      if (finishedEpoch) {
        this.position = { step: this.position.step, epoch: epoch + 1, batchInEpoch: 0 };
      }
      bus.emit({
        type: 'epoch',
        epoch,
        step: this.position.step,
        metrics: { loss: lossCount ? lossSum / lossCount : Number.NaN, lr },
      });
      const lastEpoch = this.position.epoch >= config.epochs || this.position.step >= this.totalSteps;
      const due = (finishedEpoch && (epoch + 1) % config.evalEveryEpochs === 0) || lastEpoch;
      if (due && !(await this.validateOrSuspend(epoch))) return this.outcome('killed');
      await this.saveLast();
      if (signal?.aborted && !lastEpoch) return this.outcome('killed');
    }
    return this.outcome('finished');
  }

  /** One optimizer step; returns the loss (NaN when skipped) and the gradient norm when clipping. */
  private trainStep(batch: Parameters<Detector['forward']>[0], lr: number): { loss: number; gradNorm?: number } {
    const { detector, config, bus } = this.options;
    const varList = Object.values(this.trained);
    const { value, grads } = tf.variableGrads(() => detector.loss(detector.forward(batch, true), batch.labels), varList);
    const loss = value.dataSync()[0]!;
    value.dispose();
    // variableGrads keys gradients by the tfjs variable name; map back to our stable names.
    let gradients: Record<string, tf.Tensor> = {};
    for (const [name, variable] of Object.entries(this.trained)) {
      const gradient = grads[variable.name];
      if (gradient) gradients[name] = gradient;
    }
    try {
      if (!Number.isFinite(loss)) {
        this.nonFinite += 1;
        bus.emit({
          type: 'warning',
          source: 'trainer',
          message: `non-finite loss (${loss}) at step ${this.position.step + 1}, epoch ${this.position.epoch + 1}, lr ${lr}: update skipped (${this.nonFinite}/${MAX_CONSECUTIVE_NONFINITE_LOSSES} in a row)`,
        });
        if (this.nonFinite >= MAX_CONSECUTIVE_NONFINITE_LOSSES) {
          throw new NonFiniteLossError(
            `the loss was non-finite for ${this.nonFinite} consecutive steps (last at step ${this.position.step + 1}, lr ${lr}). ` +
              `Lower the learning rate, add clipGradNorm, or check the inputs for NaN; the last good state is in ${this.lastPath}.`,
          );
        }
        return { loss };
      }
      this.nonFinite = 0;
      let gradNorm: number | undefined;
      if (config.clipGradNorm !== undefined) {
        const clipped = clipGradientsByGlobalNorm(gradients, config.clipGradNorm);
        gradients = clipped.gradients;
        gradNorm = clipped.norm;
      }
      this.optimizer.apply(this.trained, gradients, lr);
      return { loss, gradNorm };
    } finally {
      for (const gradient of Object.values(gradients)) gradient.dispose();
    }
  }

  /**
   * Validates, unless the run is being stopped: then the validation is recorded as pending in the `last`
   * checkpoint (a resume runs it first, so selection and schedule see the same values) and false is returned.
   */
  private async validateOrSuspend(epoch: number): Promise<boolean> {
    const suspend = async () => {
      this.pendingValidation = { epoch };
      await this.saveLast();
      return false;
    };
    if (this.options.validate && this.options.signal?.aborted) return suspend();
    try {
      await this.validate(epoch);
    } catch (error) {
      if (error instanceof RunInterrupted) return suspend();
      throw error;
    }
    this.pendingValidation = undefined;
    return true;
  }

  private async validate(epoch: number): Promise<void> {
    const { validate, config, bus } = this.options;
    if (!validate) return;
    const report = await validate();
    bus.emit({ type: 'eval', split: 'val', step: this.position.step, epoch, report });
    const value = report.overall[config.selectMetric];
    if (value === undefined || !Number.isFinite(value)) {
      bus.emit({
        type: 'warning',
        source: 'trainer',
        message: `validation metric '${config.selectMetric}' is ${value} at step ${this.position.step}; available: ${Object.keys(report.overall).join(', ')}`,
      });
      return;
    }
    this.schedule.observe(value);
    const improved =
      !this.best || (config.selectMode === 'max' ? value > this.best.value : value < this.best.value);
    if (improved) {
      this.best = { value, step: this.position.step, metric: config.selectMetric };
      await this.write(this.bestPath, () =>
        saveCheckpoint(this.bestPath, this.variables, {}, { weightsOnly: true, step: this.position.step, metric: { name: config.selectMetric, value } }, this.moduleState()),
      );
      bus.emit({
        type: 'checkpoint',
        step: this.position.step,
        epoch,
        path: this.bestPath,
        kind: 'best',
        selectedBy: { metric: config.selectMetric, value },
      });
    }
  }

  private async saveLast(): Promise<void> {
    const optimizerState = this.optimizer.state();
    const state: CheckpointState = {
      position: { ...this.position },
      rng: this.options.rng.getState(),
      schedule: this.schedule.state(),
      optimizerScalars: optimizerState.scalars,
      best: this.best,
      nonFiniteLosses: this.nonFinite,
      ...(this.pendingValidation ? { pendingValidation: this.pendingValidation } : {}),
    };
    await this.write(this.lastPath, () => saveCheckpoint(this.lastPath, this.variables, optimizerState.tensors, state, this.moduleState()));
    this.options.bus.emit({ type: 'checkpoint', step: this.position.step, epoch: this.position.epoch, path: this.lastPath, kind: 'last' });
  }

  /** A checkpoint that cannot be written fails the run, naming the file, the OS error and how to continue. */
  private async write(path: string, save: () => Promise<void>): Promise<void> {
    try {
      await save();
    } catch (error) {
      const runDir = dirname(this.options.checkpointsDir);
      throw recordWriteError('checkpoint', path, error, continueHint(runDir));
    }
  }

  /** The detector's non-trainable state tensors (running statistics ...), saved with every checkpoint. */
  private moduleState(): Record<string, tf.Tensor> {
    return this.options.detector.stateTensors?.() ?? {};
  }

  private outcome(status: TrainingOutcome['status']): TrainingOutcome {
    return {
      status,
      step: this.position.step,
      best: this.best ? { ...this.best, path: this.bestPath } : undefined,
      lastCheckpoint: this.lastPath,
    };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
