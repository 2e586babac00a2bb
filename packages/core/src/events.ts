/**
 * The typed run-event stream. Training emits these; the run directory, the console progress display
 * and trackers (MLflow ...) all subscribe to the same stream. Every event carries `time` (ms since epoch).
 */
import { Subject, type Observable } from 'rxjs';
import type { CoverageCounts, EvaluationReport, MetricValues } from './contracts.js';

export type RunStatus = 'finished' | 'failed' | 'killed';

export interface RunStartEvent {
  type: 'run-start';
  time: number;
  runId: string;
  experiment: string;
  runName: string;
  runDir: string;
  /** The resolved (validated, defaulted) experiment configuration. */
  config: Record<string, unknown>;
  /** Tags to record on the run (backend, protocol, package versions, git commit ...). */
  tags: Record<string, string>;
  /** Datasets used, for lineage. */
  datasets: Array<{ name: string; digest: string; source: string; context: 'training' | 'validation' | 'testing' }>;
  totalSteps: number;
  resumedFromStep?: number;
  /**
   * A resume replays steps (resumedFromStep, replayedUntilStep] that the interrupted session had recorded:
   * events.jsonl keeps one copy (the replay), trackers that cannot replace a point skip those they have.
   */
  replayedUntilStep?: number;
  /** The parent run's id: the sweep, or the stage-1 run this run started from (`init`). */
  parentRunId?: string;
  /** The parent's run directory when it is not a sibling of this one (trackers look up its remote id there). */
  parentRunDir?: string;
}

export interface StepEvent {
  type: 'step';
  time: number;
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  imagesPerSecond: number;
  totalSteps: number;
  /** Extra scalar training metrics (gradient norm ...). */
  metrics?: MetricValues;
}

export interface EpochEvent {
  type: 'epoch';
  time: number;
  epoch: number;
  step: number;
  metrics: MetricValues;
}

export interface EvalEvent {
  type: 'eval';
  time: number;
  step: number;
  epoch: number;
  split: 'val' | 'test';
  report: EvaluationReport;
}

export interface CheckpointEvent {
  type: 'checkpoint';
  time: number;
  step: number;
  epoch: number;
  path: string;
  /** `last` is the resumable checkpoint; `best` the one selected on validation. */
  kind: 'last' | 'best';
  /** The validation metric that selected it, when `kind === 'best'`. */
  selectedBy?: { metric: string; value: number };
}

export interface ArtifactEvent {
  type: 'artifact';
  time: number;
  /** Absolute path on disk. */
  path: string;
  /** Path relative to the run directory; trackers upload it under this name. */
  name: string;
}

export interface WarningEvent {
  type: 'warning';
  time: number;
  source: string;
  message: string;
}

export interface RunEndEvent {
  type: 'end';
  time: number;
  status: RunStatus;
  step: number;
  error?: string;
}

export type RunEvent =
  | RunStartEvent
  | StepEvent
  | EpochEvent
  | EvalEvent
  | CheckpointEvent
  | ArtifactEvent
  | WarningEvent
  | RunEndEvent;

export type RunEventType = RunEvent['type'];

/** Distributive Omit, so `emit({ type: 'step', ... })` type-checks per event kind. */
export type EventInput<E extends RunEvent = RunEvent> = E extends RunEvent ? Omit<E, 'time'> & { time?: number } : never;

/** A small wrapper around a Subject that stamps events with a time and refuses events after `end`. */
export class RunEventBus {
  private readonly subject = new Subject<RunEvent>();
  private ended = false;
  readonly events$: Observable<RunEvent> = this.subject.asObservable();

  emit(event: EventInput): RunEvent {
    const stamped = { time: Date.now(), ...event } as RunEvent;
    if (this.ended) return stamped;
    if (stamped.type === 'end') this.ended = true;
    this.subject.next(stamped);
    if (stamped.type === 'end') this.subject.complete();
    return stamped;
  }

  get isEnded(): boolean {
    return this.ended;
  }
}

/** One metric value at a step, as recorded in `metrics.jsonl` and sent to trackers. */
export interface MetricPoint {
  key: string;
  value: number;
  step: number;
  timestamp: number;
}

/**
 * The metric points an event carries, with the names every sink uses: `train/loss`, `train/lr`,
 * `train/images_per_sec`, `train/<metric>`, `val/auc`, `val/<subset>/auc`, `test/<subset>/auc` ...
 * The run directory and trackers both call this, so local and remote names never drift apart.
 */
export function metricPointsOf(event: RunEvent): MetricPoint[] {
  const at = (key: string, value: number, step: number): MetricPoint => ({ key, value, step, timestamp: event.time });
  switch (event.type) {
    case 'step': {
      const points = [
        at('train/loss', event.loss, event.step),
        at('train/lr', event.lr, event.step),
        at('train/images_per_sec', event.imagesPerSecond, event.step),
      ];
      for (const [key, value] of Object.entries(event.metrics ?? {})) points.push(at(`train/${key}`, value, event.step));
      return points;
    }
    case 'epoch':
      return [
        at('train/epoch', event.epoch, event.step),
        ...Object.entries(event.metrics).map(([key, value]) => at(`train/epoch_${key}`, value, event.step)),
      ];
    case 'eval': {
      const points: MetricPoint[] = [];
      for (const [key, value] of Object.entries(event.report.overall)) points.push(at(`${event.split}/${key}`, value, event.step));
      for (const [subset, values] of Object.entries(event.report.subsets)) {
        for (const [key, value] of Object.entries(values)) points.push(at(`${event.split}/${subset}/${key}`, value, event.step));
      }
      for (const [group, values] of Object.entries(event.report.groups ?? {})) {
        for (const [key, value] of Object.entries(values)) points.push(at(`${event.split}/groups/${group}/${key}`, value, event.step));
      }
      points.push(...coveragePoints(event, at));
      return points;
    }
    default:
      return [];
  }
}

/**
 * Coverage as metrics: `test/coverage` (scored / listed frames), `test/frames_listed`, `test/frames_dropped`,
 * `test/frames_dropped_<reason>`, `test/videos_listed|scored`, and per subset `test/<subset>/coverage` and
 * `test/<subset>/frames_dropped`, so a tracker shows at a glance what the numbers stand on.
 */
function coveragePoints(event: EvalEvent, at: (key: string, value: number, step: number) => MetricPoint): MetricPoint[] {
  const coverage = event.report.coverage;
  if (!coverage) return [];
  const dropped = (c: CoverageCounts) => Object.values(c.frames.dropped).reduce((a, b) => a + b, 0);
  const ratio = (c: CoverageCounts) => (c.frames.listed ? c.frames.scored / c.frames.listed : 1);
  const s = event.split;
  const points = [
    at(`${s}/coverage`, ratio(coverage.overall), event.step),
    at(`${s}/frames_listed`, coverage.overall.frames.listed, event.step),
    at(`${s}/frames_scored`, coverage.overall.frames.scored, event.step),
    at(`${s}/frames_dropped`, dropped(coverage.overall), event.step),
    at(`${s}/videos_listed`, coverage.overall.videos.listed, event.step),
    at(`${s}/videos_scored`, coverage.overall.videos.scored, event.step),
  ];
  for (const [reason, count] of Object.entries(coverage.overall.frames.dropped)) {
    points.push(at(`${s}/frames_dropped_${reason.replace('-', '_')}`, count, event.step));
  }
  for (const [subset, counts] of Object.entries(coverage.subsets)) {
    points.push(at(`${s}/${subset}/coverage`, ratio(counts), event.step), at(`${s}/${subset}/frames_dropped`, dropped(counts), event.step));
  }
  return points;
}
