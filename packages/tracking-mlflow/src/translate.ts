/**
 * RunEvents → MLflow operations. Pure and deterministic: the live tracker and `dfd sync` feed the same
 * events through it and get the same operations, which is what makes a replay line up with a live run.
 *
 * Names: metric points come from core's `metricPointsOf` (`train/loss`, `val/auc`, `test/heygen/auc` ...),
 * the same names as the run directory's metrics.jsonl. Params are the flattened resolved config. Artifacts
 * are collected during the run and uploaded at the end (reports and checkpoints are rewritten while training).
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { metricPointsOf, type RunEvent, type RunStartEvent } from '@dfd/core';
import { LIMITS } from './limits.js';
import type { DatasetInput, KeyValue, Metric, MlflowRunStatus } from './types.js';
import { flattenConfig, prepareParams, prepareTag, sanitizeKey, toWireValue, truncateValue } from './values.js';

export type NonFinitePolicy = 'send' | 'drop';

export type Op =
  | {
      kind: 'start';
      /** Our run id (`dfd.runId` tag): how an existing MLflow run is found again. */
      dfdRunId: string;
      experiment: string;
      runName: string;
      startTime: number;
      tags: KeyValue[];
      parentRunId?: string;
      /** The parent's run directory, when it is not a sibling (a stage-2 run's stage-1 run elsewhere). */
      parentRunDir?: string;
      /** A resumed run (a later run-start in the same run directory): reopen, do not create. */
      resumed: boolean;
    }
  /** `replayed`: a resumed run re-logging steps an interrupted session may already have sent (see `replayedUntilStep`). */
  | { kind: 'log'; params: KeyValue[]; tags: KeyValue[]; metrics: Metric[]; replayed?: boolean }
  | { kind: 'inputs'; datasets: DatasetInput[] }
  | { kind: 'upload'; name: string; file?: string; bytes?: string }
  | { kind: 'end'; status: Exclude<MlflowRunStatus, 'RUNNING' | 'SCHEDULED'>; endTime: number };

export interface TranslatorOptions {
  /** Run directory, for `config.json` and relative artifact paths. */
  runDir: string;
  /** What to do with NaN/±Inf metric values: send them as MLflow's "NaN"/"Infinity" strings, or drop them. */
  nonFinite?: NonFinitePolicy;
  /** Upload the best checkpoint at the end (default true). */
  uploadCheckpoint?: boolean;
  /** Upload artifact events' files at the end (default true). */
  uploadArtifacts?: boolean;
  /** Our own version, recorded as `dfd.tracker`. */
  trackerVersion?: string;
}

const STATUS: Record<string, Exclude<MlflowRunStatus, 'RUNNING' | 'SCHEDULED'>> = {
  finished: 'FINISHED',
  failed: 'FAILED',
  killed: 'KILLED',
};

/** Tags a run-start carries that are not already MLflow or dfd names are recorded under `dfd.`. */
function runTagKey(key: string): string {
  return key.startsWith('mlflow.') || key.startsWith('dfd.') ? key : `dfd.${key}`;
}

export function datasetInputs(event: RunStartEvent): DatasetInput[] {
  return event.datasets.map((d) => ({
    dataset: {
      name: truncateValue(d.name, LIMITS.datasetName).value,
      digest: (d.digest || 'unknown').slice(0, LIMITS.datasetDigest),
      source_type: /^https?:\/\//.test(d.source) ? 'http' : 'local',
      source: truncateValue(JSON.stringify({ uri: d.source }), LIMITS.datasetSource).value,
    },
    tags: [{ key: 'mlflow.data.context', value: d.context }],
  }));
}

export class EventTranslator {
  private started = false;
  private lastStep = 0;
  private replayedUntilStep: number | undefined;
  private nonFiniteCount = 0;
  private warnings: string[] = [];
  /** name → absolute path, in the order first seen (later events with the same name win). */
  private readonly artifacts = new Map<string, string>();
  private bestCheckpoint: string | undefined;
  private config: Record<string, unknown> | undefined;
  private readonly protocolTags = new Map<string, string>();

  constructor(private readonly options: TranslatorOptions) {}

  /** Non-finite metric values seen so far. */
  get nonFiniteValues(): number {
    return this.nonFiniteCount;
  }

  translate(event: RunEvent): Op[] {
    switch (event.type) {
      case 'run-start':
        return this.start(event);
      case 'step':
        this.lastStep = event.step;
        return this.metrics(event);
      case 'epoch':
        this.lastStep = event.step;
        return this.metrics(event);
      case 'eval': {
        this.lastStep = event.step;
        const ops = this.metrics(event);
        // The evaluation protocol (selection split, frames per video ...) is recorded as tags: the numbers
        // mean little without it.
        const tags: KeyValue[] = [];
        for (const [key, value] of Object.entries(event.report.protocol)) {
          const tag = prepareTag(`dfd.protocol.${event.split}.${key}`, String(value));
          if (this.protocolTags.get(tag.key) === tag.value) continue;
          this.protocolTags.set(tag.key, tag.value);
          tags.push(tag);
        }
        if (tags.length) ops.push({ kind: 'log', params: [], tags, metrics: [] });
        return ops;
      }
      case 'checkpoint': {
        this.lastStep = event.step;
        if (event.kind !== 'best') return [];
        this.bestCheckpoint = event.path;
        const tags = [prepareTag('dfd.checkpoint.best.step', String(event.step))];
        if (event.selectedBy) tags.push(prepareTag('dfd.checkpoint.best.selected_by', `${event.selectedBy.metric}=${event.selectedBy.value}`));
        return [{ kind: 'log', params: [], tags, metrics: [] }];
      }
      case 'artifact':
        this.artifacts.set(event.name, event.path);
        return [];
      case 'warning': {
        this.warnings.push(`${new Date(event.time).toISOString()} [${event.source}] ${event.message}`);
        return [
          {
            kind: 'log',
            params: [],
            tags: [],
            metrics: [{ key: 'dfd/warnings', value: this.warnings.length, timestamp: event.time, step: this.lastStep }],
          },
        ];
      }
      case 'end':
        return this.end(event);
      default:
        return [];
    }
  }

  private start(event: RunStartEvent): Op[] {
    const resumed = this.started;
    this.started = true;
    this.config = event.config;
    if (event.resumedFromStep !== undefined) this.lastStep = event.resumedFromStep;
    this.replayedUntilStep = event.replayedUntilStep;
    const tagMap = new Map<string, string>();
    for (const [key, value] of Object.entries(event.tags)) tagMap.set(runTagKey(key), value);
    tagMap.set('mlflow.runName', event.runName);
    tagMap.set('dfd.runId', event.runId);
    tagMap.set('dfd.experiment', event.experiment);
    tagMap.set('dfd.runDir', event.runDir);
    if (!tagMap.has('mlflow.source.type')) tagMap.set('mlflow.source.type', 'LOCAL');
    if (!tagMap.has('mlflow.source.name')) tagMap.set('mlflow.source.name', 'dfd');
    const description = event.config.description;
    if (typeof description === 'string' && description) tagMap.set('mlflow.note.content', description);
    if (this.options.trackerVersion) tagMap.set('dfd.tracker', `@dfd/tracking-mlflow@${this.options.trackerVersion}`);
    if (event.resumedFromStep !== undefined) tagMap.set('dfd.resumedFromStep', String(event.resumedFromStep));
    const tags = [...tagMap].map(([key, value]) => prepareTag(key, value));

    const { params, truncated } = prepareParams(flattenConfig(event.config));
    const ops: Op[] = [
      {
        kind: 'start',
        dfdRunId: event.runId,
        experiment: event.experiment,
        runName: event.runName,
        startTime: event.time,
        tags,
        parentRunId: event.parentRunId,
        ...(event.parentRunDir ? { parentRunDir: event.parentRunDir } : {}),
        resumed,
      },
      { kind: 'log', params, tags: [], metrics: [] },
    ];
    if (Object.keys(truncated).length) {
      // MLflow caps param values at 6000 characters; the full values live in this artifact.
      ops.push({ kind: 'upload', name: 'dfd/params_full.json', bytes: `${JSON.stringify(truncated, null, 2)}\n` });
    }
    if (event.datasets.length) ops.push({ kind: 'inputs', datasets: datasetInputs(event) });
    return ops;
  }

  private metrics(event: RunEvent): Op[] {
    const metrics: Metric[] = [];
    let dropped = false;
    for (const point of metricPointsOf(event)) {
      const finite = Number.isFinite(point.value);
      if (!finite) {
        this.nonFiniteCount++;
        dropped = true;
        if (this.options.nonFinite === 'drop') continue;
      }
      metrics.push({ key: sanitizeKey(point.key), value: toWireValue(point.value), timestamp: Math.round(point.timestamp), step: point.step });
    }
    if (dropped) {
      // A running count, so a NaN loss is visible on the run page even where the UI skips NaN points.
      metrics.push({ key: 'dfd/nonfinite_values', value: this.nonFiniteCount, timestamp: Math.round(event.time), step: this.lastStep });
    }
    if (!metrics.length) return [];
    return [{ kind: 'log', params: [], tags: [], metrics, ...(this.isReplay(event) ? { replayed: true } : {}) }];
  }

  /** An event of a resumed run at a step the interrupted session had already recorded (a step, an evaluation ...). */
  private isReplay(event: RunEvent): boolean {
    if (this.replayedUntilStep === undefined) return false;
    const step = event.type === 'step' || event.type === 'epoch' || event.type === 'eval' ? event.step : undefined;
    return step !== undefined && step <= this.replayedUntilStep;
  }

  private end(event: Extract<RunEvent, { type: 'end' }>): Op[] {
    const ops: Op[] = [];
    const tags: KeyValue[] = [prepareTag('dfd.status', event.status)];
    if (event.error) tags.push(prepareTag('dfd.error', event.error));
    ops.push({ kind: 'log', params: [], tags, metrics: [] });
    if (this.options.uploadArtifacts !== false) {
      const names = new Set(this.artifacts.keys());
      if (!names.has('config.json')) {
        const onDisk = join(this.options.runDir, 'config.json');
        if (existsSync(onDisk)) ops.push({ kind: 'upload', name: 'config.json', file: onDisk });
        else if (this.config) ops.push({ kind: 'upload', name: 'config.json', bytes: `${JSON.stringify(this.config, null, 2)}\n` });
      }
      for (const [name, path] of this.artifacts) {
        if (this.options.uploadCheckpoint === false && name.startsWith('checkpoints/')) continue;
        ops.push({ kind: 'upload', name, file: path });
      }
      const best = this.bestCheckpoint;
      if (best && this.options.uploadCheckpoint !== false && ![...this.artifacts.values()].includes(best)) {
        ops.push({ kind: 'upload', name: `checkpoints/${basename(best)}`, file: best });
      }
      if (this.warnings.length) ops.push({ kind: 'upload', name: 'dfd/warnings.txt', bytes: `${this.warnings.join('\n')}\n` });
    }
    ops.push({ kind: 'end', status: STATUS[event.status] ?? 'FAILED', endTime: event.time });
    return ops;
  }
}
