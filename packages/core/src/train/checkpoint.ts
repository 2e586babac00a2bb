/**
 * Checkpoints: every trainable variable, the modules' non-trainable state tensors (`Module.stateTensors`,
 * e.g. running statistics), optimizer slots and scalars, schedule state, RNG state and the position (step,
 * epoch, batch within the epoch), in one safetensors file with the non-tensor state as JSON metadata.
 * Loading restores all of it, so a killed run resumes to bit-identical weights and state.
 *
 * Tensor names in the file: `model/<name>` (trainable), `state/<name>` (module state), `optim/<name>`.
 */
import * as tf from '@tensorflow/tfjs';
import { readSafetensors, writeSafetensors, type NamedTensor } from '../safetensors.js';
import type { RngState } from '../rng.js';
import type { ScheduleState } from './schedules.js';

export const CHECKPOINT_FORMAT = 'dfd-checkpoint/1';

export interface TrainingPosition {
  step: number;
  /** Epoch the next batch belongs to. */
  epoch: number;
  /** Index of the next batch within `epoch`. */
  batchInEpoch: number;
}

export interface CheckpointState {
  position: TrainingPosition;
  rng: RngState;
  schedule: ScheduleState;
  optimizerScalars: Record<string, number>;
  /** Best validation value so far and the step it was reached at. */
  best?: { value: number; step: number; metric: string };
  /** Consecutive non-finite losses (carried so a resume does not reset the guard). */
  nonFiniteLosses?: number;
  /** A validation that was due at this position but was interrupted: a resume runs it first. */
  pendingValidation?: { epoch: number };
}

export async function saveCheckpoint(
  path: string,
  model: Record<string, tf.Tensor>,
  optimizerTensors: Record<string, tf.Tensor>,
  state: CheckpointState | { weightsOnly: true; step: number; metric?: { name: string; value: number } },
  moduleState: Record<string, tf.Tensor> = {},
): Promise<void> {
  const tensors: Record<string, { shape: number[]; data: Float32Array | Int32Array }> = {};
  for (const [name, tensor] of Object.entries(model)) {
    tensors[`model/${name}`] = { shape: tensor.shape, data: (await tensor.data()) as Float32Array };
  }
  for (const [name, tensor] of Object.entries(moduleState)) {
    tensors[`state/${name}`] = { shape: tensor.shape, data: (await tensor.data()) as Float32Array | Int32Array };
  }
  for (const [name, tensor] of Object.entries(optimizerTensors)) {
    tensors[`optim/${name}`] = { shape: tensor.shape, data: (await tensor.data()) as Float32Array };
  }
  await writeSafetensors(path, tensors, { format: CHECKPOINT_FORMAT, state: JSON.stringify(state) });
}

export interface LoadedCheckpoint {
  model: Record<string, NamedTensor>;
  /** The modules' non-trainable state tensors (`Module.stateTensors`). */
  moduleState: Record<string, NamedTensor>;
  optimizer: Record<string, NamedTensor>;
  state: CheckpointState | { weightsOnly: true; step: number; metric?: { name: string; value: number } };
}

export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new Error(`${path} is not a @dfd checkpoint (format '${metadata.format ?? 'missing'}', expected ${CHECKPOINT_FORMAT})`);
  }
  const model: Record<string, NamedTensor> = {};
  const optimizer: Record<string, NamedTensor> = {};
  const moduleState: Record<string, NamedTensor> = {};
  for (const [name, tensor] of Object.entries(tensors)) {
    if (name.startsWith('model/')) model[name.slice(6)] = tensor;
    else if (name.startsWith('optim/')) optimizer[name.slice(6)] = tensor;
    else if (name.startsWith('state/')) moduleState[name.slice(6)] = tensor;
  }
  return { model, optimizer, moduleState, state: JSON.parse(metadata.state ?? '{}') };
}

/**
 * Assigns checkpoint weights to variables. Every variable must be present with its exact shape: a
 * mismatch names the variable, both shapes and the file, rather than training from a half-loaded model.
 */
export function assignWeights(variables: Record<string, tf.Variable>, weights: Record<string, NamedTensor>, source: string, what = 'weights'): void {
  const missing = Object.keys(variables).filter((name) => !(name in weights));
  if (missing.length) {
    throw new Error(
      `${source} lacks ${what} for ${missing.join(', ')}; it holds ${Object.keys(weights).join(', ') || 'nothing'}. ` +
        `Was it saved by a different model configuration?`,
    );
  }
  for (const [name, variable] of Object.entries(variables)) {
    const weight = weights[name]!;
    if (weight.shape.join(',') !== variable.shape.join(',')) {
      throw new Error(
        `${source}: weight ${name} has shape [${weight.shape.join(', ')}] but the model expects [${variable.shape.join(', ')}]`,
      );
    }
    tf.tidy(() => variable.assign(tf.tensor(weight.data as Float32Array, weight.shape, variable.dtype)));
  }
}

/** A model's weights and non-trainable state, as the trainer saves them and resume/predict load them. */
export interface ModelState {
  trainableVariables(): Record<string, tf.Variable>;
  stateTensors?(): Record<string, tf.Variable>;
}

/** Restores trainable weights and module state tensors from a loaded checkpoint (every one must be present). */
export function restoreModel(model: ModelState, checkpoint: Pick<LoadedCheckpoint, 'model' | 'moduleState'>, source: string): void {
  assignWeights(model.trainableVariables(), checkpoint.model, source);
  const state = model.stateTensors?.() ?? {};
  if (Object.keys(state).length) assignWeights(state, checkpoint.moduleState ?? {}, source, 'state tensors');
}

export function toTensors(weights: Record<string, NamedTensor>): Record<string, tf.Tensor> {
  return Object.fromEntries(Object.entries(weights).map(([name, w]) => [name, tf.tensor(w.data as Float32Array, w.shape)]));
}
