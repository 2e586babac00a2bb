/**
 * Pipelines: experiments run in order, a later stage starting from an earlier one's learned tensors
 * (`init: { from: 'stage:<name>', variables: [...] }`). Every stage is an ordinary run with its own run
 * directory, resumable on its own (`dfd resume <stage run dir>`); a stage with `init` records the stage it
 * started from as its parent (parent.json, the `dfd.parent.*` tags, MLflow's parent/child runs).
 *
 * Stages share the pipeline's experiment name unless they set their own, so their run directories are
 * siblings (`runs/<pipeline>/<run-id>`) and trackers file them under one experiment; the stage name is
 * recorded (`stage` in config.json, tag `dfd.stage`) and is part of the run name.
 */
import type { ExperimentInCode } from '../experiment.js';
import { runExperiment, type RunOptions, type RunResult } from './runner.js';

/** A stage's experiment: the pipeline supplies `name` when it is left out. */
export type StageExperiment = Omit<ExperimentInCode, 'name'> & { name?: string };

export interface PipelineStage {
  /** Unique within the pipeline; `stage:<name>` in a later stage's `init.from` refers to it. */
  name: string;
  experiment: StageExperiment;
}

export interface PipelineDefinition {
  name: string;
  description?: string;
  stages: PipelineStage[];
}

export interface StageResult extends RunResult {
  stage: string;
}

export interface PipelineResult {
  name: string;
  status: RunResult['status'];
  stages: StageResult[];
}

export class PipelineError extends Error {
  override name = 'PipelineError';
}

/** Identity with types: `export default definePipeline({ name, stages: [...] })`. */
export function definePipeline<T extends PipelineDefinition>(pipeline: T): T {
  return pipeline;
}

export function isPipeline(value: unknown): value is PipelineDefinition {
  return typeof value === 'object' && value !== null && Array.isArray((value as PipelineDefinition).stages);
}

const STAGE_PREFIX = 'stage:';

/** Checks names and stage references before anything runs (a typo fails in a second, not after stage 1). */
export function validatePipeline(pipeline: PipelineDefinition): void {
  if (!pipeline.name) throw new PipelineError('a pipeline needs a name');
  if (!pipeline.stages.length) throw new PipelineError(`pipeline ${pipeline.name} has no stages`);
  const seen: string[] = [];
  for (const stage of pipeline.stages) {
    if (!/^[\w.\-]+$/.test(stage.name ?? '')) throw new PipelineError(`pipeline ${pipeline.name}: stage name '${stage.name}' must be letters, digits, _ . -`);
    if (seen.includes(stage.name)) throw new PipelineError(`pipeline ${pipeline.name}: two stages are named '${stage.name}'`);
    const from = stage.experiment.init?.from;
    if (from?.startsWith(STAGE_PREFIX)) {
      const target = from.slice(STAGE_PREFIX.length);
      if (!seen.includes(target)) {
        throw new PipelineError(
          `pipeline ${pipeline.name}: stage '${stage.name}' starts from '${from}', which is not an earlier stage (earlier: ${seen.join(', ') || 'none'})`,
        );
      }
    }
    seen.push(stage.name);
  }
}

/** The experiment a stage runs: the pipeline's name unless it has its own, its stage name, `stage:` resolved. */
export function stageExperiment(pipeline: PipelineDefinition, stage: PipelineStage, finished: ReadonlyMap<string, RunResult>): ExperimentInCode {
  const experiment = { ...stage.experiment, name: stage.experiment.name ?? pipeline.name, stage: stage.name } as ExperimentInCode;
  const from = experiment.init?.from;
  if (from?.startsWith(STAGE_PREFIX)) {
    const source = finished.get(from.slice(STAGE_PREFIX.length));
    if (!source) throw new PipelineError(`stage '${stage.name}': '${from}' has not run`);
    experiment.init = { ...experiment.init!, from: source.runDir };
  }
  return experiment;
}

/**
 * Runs the stages in order. A stage that does not finish (killed, failed) stops the pipeline: the result
 * says which, and that stage's run directory resumes with `dfd resume`.
 */
export async function runPipeline(pipeline: PipelineDefinition, options: RunOptions & { onStage?: (stage: string, index: number) => void } = {}): Promise<PipelineResult> {
  validatePipeline(pipeline);
  const finished = new Map<string, RunResult>();
  const stages: StageResult[] = [];
  for (const [index, stage] of pipeline.stages.entries()) {
    options.onStage?.(stage.name, index);
    const result = await runExperiment(stageExperiment(pipeline, stage, finished), options);
    stages.push({ ...result, stage: stage.name });
    if (result.status !== 'finished') return { name: pipeline.name, status: result.status, stages };
    finished.set(stage.name, result);
  }
  return { name: pipeline.name, status: 'finished', stages };
}
