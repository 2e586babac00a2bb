/**
 * Applies translated operations to one MLflow server, in event order, and moves the cursor in
 * `mlflow-sync.json` after each step. Every operation is safe to repeat (runs are found again by their
 * `dfd.runId` tag, params and tags re-log the same values, inputs are de-duplicated by the server, uploads
 * overwrite); metric points, which append, are reconciled with the server's history whenever an earlier
 * write may have landed unseen. Together: each event is applied exactly once, however often we resume.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { MlflowClient } from './client.js';
import { MlflowError, isFatalForRun, isTransient } from './errors.js';
import { REJECTED_FILE, STATE_FILE, type SyncState, type TargetState } from './state.js';
import type { Op } from './translate.js';
import type { KeyValue, LogBatchPayload, Metric } from './types.js';
import { fromWireValue } from './values.js';

export interface IndexedOps {
  /** Line index of the event in events.jsonl. */
  index: number;
  event: { type: string; time: number };
  ops: Op[];
}

export type Logger = (message: string) => void;

/** The events (line indices) an operation belongs to. */
interface EventRange {
  first: number;
  last: number;
}

export interface WriterOptions {
  /** MLflow experiment; default: the dfd experiment name of the run. */
  experimentName?: string;
  runDir: string;
  logger?: Logger;
  /** Most metric points merged into one logical log-batch (then chunked to the server's limits). */
  maxPointsPerSend?: number;
}

/** The one thing a caller must stop for: the server said no to the whole run (auth, deleted run ...). */
export class FatalSyncError extends Error {
  override name = 'FatalSyncError';
}

const placeholderParents = new Map<string, Promise<string>>();

const isLogOnly = (item: IndexedOps) => item.ops.every((op) => op.kind === 'log');
const isReplay = (item: IndexedOps) => item.ops.some((op) => op.kind === 'log' && op.replayed === true);

/** The identity of a metric point on the server (sqlite clamps ±Inf to ±Number.MAX_VALUE). */
function pointKey(key: string, step: number, timestamp: number, value: unknown): string {
  let v = fromWireValue(value);
  if (v === Infinity) v = Number.MAX_VALUE;
  if (v === -Infinity) v = -Number.MAX_VALUE;
  return `${key}\u0000${step}\u0000${timestamp}\u0000${Number.isNaN(v) ? 'NaN' : v}`;
}

export class MlflowRunWriter {
  readonly target: TargetState;
  private readonly log: Logger;
  /** Counters for reports. */
  readonly stats = { events: 0, metricPoints: 0, reconciledPoints: 0, uploads: 0, missingFiles: 0, rejected: 0 };

  constructor(
    readonly client: MlflowClient,
    private readonly state: SyncState,
    private readonly options: WriterOptions,
  ) {
    this.target = state.target(client.trackingUri);
    this.log = options.logger ?? ((message) => process.stderr.write(`[mlflow] ${message}\n`));
  }

  get runUrl(): string | undefined {
    const { experimentId, runId } = this.target;
    return experimentId && runId ? this.client.runUrl(experimentId, runId) : undefined;
  }

  /**
   * Checks that the events we are about to apply continue the ones already applied. If events.jsonl was
   * rewritten (the fingerprint of the last applied event differs), start over in reconcile mode.
   */
  checkContinuity(previous: { type: string; time: number } | undefined): void {
    const last = this.target.lastEvent;
    if (this.target.sentEvents === 0 || !last) return;
    if (!previous || previous.type !== last.type || previous.time !== last.time) {
      this.log(
        `${join(this.options.runDir, STATE_FILE)} does not match events.jsonl (event ${this.target.sentEvents - 1} changed); ` +
          'replaying every event and skipping metric points the server already has',
      );
      this.target.sentEvents = 0;
      this.target.lastEvent = undefined;
      this.target.uncertainUntil = Number.MAX_SAFE_INTEGER;
    }
  }

  /** Applies items in order (items already applied are skipped). Throws on the first failure; progress is saved. */
  async apply(items: IndexedOps[]): Promise<void> {
    this.knownEvents = Math.max(this.knownEvents, ...items.map((item) => item.index + 1));
    let i = 0;
    while (i < items.length) {
      const item = items[i]!;
      if (item.index < this.target.sentEvents) {
        i++;
        continue;
      }
      if (item.index > this.target.sentEvents) {
        throw new Error(`internal: event ${item.index} given before event ${this.target.sentEvents} was applied`);
      }
      if (isLogOnly(item)) {
        // Merge consecutive metric-only events into one request (chunked by the client).
        const segment = [item];
        let points = item.ops.reduce((n, op) => n + (op.kind === 'log' ? op.metrics.length : 0), 0);
        let j = i + 1;
        const max = this.options.maxPointsPerSend ?? 10_000;
        // Replayed steps (after a resume) are sent apart: they are checked against the server by step.
        while (j < items.length && isLogOnly(items[j]!) && isReplay(items[j]!) === isReplay(item) && points < max) {
          points += items[j]!.ops.reduce((n, op) => n + (op.kind === 'log' ? op.metrics.length : 0), 0);
          segment.push(items[j]!);
          j++;
        }
        if (!this.target.runId) {
          throw new Error(`internal: metrics at event ${item.index} before the run was created (events.jsonl must start with run-start)`);
        }
        await this.sendLog(mergeLogs(segment.flatMap((s) => s.ops)), { first: item.index, last: segment[segment.length - 1]!.index }, isReplay(item));
        this.advance(segment[segment.length - 1]!, segment.length);
        i = j;
      } else {
        for (const op of item.ops) await this.applyOp(op, { first: item.index, last: item.index });
        this.advance(item);
        i++;
      }
    }
  }

  /** Metric points that belong to no event (system metrics): sent once, reconciled after a failed send. */
  async sendExtraMetrics(metrics: Metric[]): Promise<void> {
    if (!metrics.length || !this.target.runId) return;
    await this.sendLog({ params: [], tags: [], metrics }, 'extras');
  }

  /** Events handed to `apply` so far (a run adopted mid-stream may have any of them already). */
  private knownEvents = 0;
  private extrasUncertain = false;

  private advance(item: IndexedOps, count = 1): void {
    this.target.sentEvents = item.index + 1;
    this.target.lastEvent = { type: item.event.type, time: item.event.time };
    this.target.updatedAt = new Date().toISOString();
    this.stats.events += count;
    this.state.save();
  }

  private async applyOp(op: Op, range: EventRange): Promise<void> {
    switch (op.kind) {
      case 'start':
        return this.start(op, range);
      case 'log':
        return this.sendLog(op, range, op.replayed === true);
      case 'inputs':
        await this.guard(() => this.client.logInputs(this.runId(), op.datasets), { inputs: op.datasets });
        return;
      case 'upload':
        return this.upload(op);
      case 'end':
        await this.call(() => this.client.terminateRun(this.runId(), op.status, op.endTime));
        this.target.ended = true;
        await this.touchPlaceholderParent('FINISHED', op.endTime);
        return;
    }
  }

  private runId(): string {
    if (!this.target.runId) throw new Error('internal: no MLflow run yet');
    return this.target.runId;
  }

  private async start(op: Extract<Op, { kind: 'start' }>, range: EventRange): Promise<void> {
    const name = this.options.experimentName ?? this.target.experimentName ?? op.experiment;
    if (!this.target.experimentId) {
      // MLflow 3's UI shows an experiment as GenAI unless told it is model training.
      const experiment = await this.call(() =>
        this.client.getOrCreateExperiment(name, [{ key: 'mlflow.experimentKind', value: 'custom_model_development' }]),
      );
      this.target.experimentId = experiment.experiment_id;
      this.target.experimentName = experiment.name;
      this.state.save();
    }
    const experimentId = this.target.experimentId;
    const parentId = op.parentRunId ? await this.resolveParent(op.parentRunId, experimentId, op.startTime, op.parentRunDir) : undefined;
    if (!this.target.runId) {
      // runs/create is not idempotent: look for a run a lost answer (or an earlier sync) already made.
      const existing = (await this.call(() => this.client.findRunsByTag(experimentId, 'dfd.runId', op.dfdRunId))).filter(
        (run) => run.info.lifecycle_stage !== 'deleted',
      );
      const found = existing[0];
      if (found) {
        this.target.runId = found.info.run_id;
        this.target.artifactUri = found.info.artifact_uri;
        if (found.data.tags?.some((t) => t.key === 'dfd.sweepParent' && t.value === 'placeholder')) {
          // A sweep's children made this parent before the sweep's own run was sent: it is real now.
          await this.call(() => this.client.setTag(found.info.run_id, 'dfd.sweepParent', 'run'));
        }
        // We do not know which of its points arrived: reconcile metrics with the server's history.
        this.target.uncertainUntil = Math.max(this.target.uncertainUntil ?? 0, this.knownEvents);
        this.log(`found MLflow run ${found.info.run_id} for ${op.dfdRunId}; continuing it`);
      } else {
        const tags: KeyValue[] = [{ key: 'dfd.runId', value: op.dfdRunId }];
        if (parentId) tags.push({ key: 'mlflow.parentRunId', value: parentId });
        for (const tag of op.tags) if (tag.key === 'mlflow.user' || tag.key === 'mlflow.runName') tags.push(tag);
        const info = await this.call(() =>
          this.client.createRun({ experimentId, runName: op.runName, startTime: op.startTime, tags, retry: false }),
        );
        this.target.runId = info.run_id;
        this.target.artifactUri = info.artifact_uri;
      }
      this.state.save();
    } else if (op.resumed || this.target.ended) {
      await this.call(() => this.client.updateRun(this.runId(), { status: 'RUNNING' }));
      this.target.ended = false;
    }
    const tags = [...op.tags];
    if (parentId) tags.push({ key: 'mlflow.parentRunId', value: parentId });
    await this.sendLog({ params: [], tags, metrics: [] }, range);
    await this.touchPlaceholderParent('RUNNING');
  }

  /**
   * The MLflow run id of a sweep's parent: from the parent's own run directory (a sibling) if it was
   * synced, else the run tagged with its dfd.runId, else a placeholder parent run we create (once per process).
   */
  private async resolveParent(parentDfdId: string, experimentId: string, startTime: number, parentRunDir?: string): Promise<string> {
    const stateFiles = [...(parentRunDir ? [join(parentRunDir, STATE_FILE)] : []), join(dirname(this.options.runDir), parentDfdId, STATE_FILE)];
    for (const stateFile of stateFiles.filter((file) => existsSync(file))) {
      try {
        const parsed = JSON.parse(readFileSync(stateFile, 'utf8')) as { targets?: Record<string, TargetState> };
        const runId = parsed.targets?.[this.client.trackingUri]?.runId;
        if (runId) {
          this.parentRunId = runId;
          return runId;
        }
      } catch {
        // unreadable state: try the next, then the tag lookup
      }
    }
    const key = `${this.client.trackingUri}|${experimentId}|${parentDfdId}`;
    let pending = placeholderParents.get(key);
    if (!pending) {
      pending = (async () => {
        const runs = await this.call(() => this.client.findRunsByTag(experimentId, 'dfd.runId', parentDfdId));
        const found = runs.find((run) => run.info.lifecycle_stage !== 'deleted');
        if (found) return found.info.run_id;
        const info = await this.call(() =>
          this.client.createRun({
            experimentId,
            runName: parentDfdId,
            startTime,
            tags: [
              { key: 'dfd.runId', value: parentDfdId },
              { key: 'dfd.sweepParent', value: 'placeholder' },
            ],
            retry: false,
          }),
        );
        return info.run_id;
      })();
      placeholderParents.set(key, pending);
      pending.catch(() => placeholderParents.delete(key));
    }
    this.parentRunId = await pending;
    return this.parentRunId;
  }

  private parentRunId: string | undefined;

  /** A placeholder parent (no run directory of its own) follows its children: RUNNING while one runs. */
  private async touchPlaceholderParent(status: 'RUNNING' | 'FINISHED', endTime?: number): Promise<void> {
    if (!this.parentRunId) return;
    const parent = await this.call(() => this.client.getRun(this.parentRunId!));
    if (parent.data.tags?.find((t) => t.key === 'dfd.sweepParent')?.value !== 'placeholder') return;
    await this.call(() => this.client.updateRun(this.parentRunId!, status === 'FINISHED' ? { status, endTime } : { status }));
  }

  private async upload(op: Extract<Op, { kind: 'upload' }>): Promise<void> {
    const artifactUri = this.target.artifactUri;
    if (!artifactUri) throw new Error('internal: upload before the run was created');
    if (op.file !== undefined && !existsSync(op.file)) {
      this.stats.missingFiles++;
      this.log(`artifact ${op.name}: ${op.file} no longer exists; skipped (the run directory was changed after the run)`);
      return;
    }
    const source = op.file !== undefined ? { file: op.file } : { bytes: op.bytes ?? '' };
    await this.call(() => this.client.uploadArtifact(artifactUri, op.name, source));
    this.stats.uploads++;
  }

  private async sendLog(batch: LogBatchPayload, range: EventRange | 'extras', replayed = false): Promise<void> {
    const runId = this.runId();
    let metrics = batch.metrics ?? [];
    const uncertain = range === 'extras' ? this.extrasUncertain : range.first < (this.target.uncertainUntil ?? 0);
    if (replayed && metrics.length) metrics = await this.withoutLoggedSteps(runId, metrics);
    else if (uncertain && metrics.length) metrics = await this.reconcile(runId, metrics);
    const payload: LogBatchPayload = { params: batch.params ?? [], tags: batch.tags ?? [], metrics };
    if (!payload.params!.length && !payload.tags!.length && !metrics.length) return;
    try {
      await this.client.logBatch(runId, payload);
    } catch (error) {
      if (metrics.length && !(error instanceof MlflowError && error.status < 500 && error.status !== 408 && error.status !== 429)) {
        // Some chunks may have landed (or the server applied the request and the answer was lost).
        if (range === 'extras') this.extrasUncertain = true;
        else {
          this.target.uncertainUntil = Math.max(this.target.uncertainUntil ?? 0, range.last + 1);
          this.state.save();
        }
      }
      if (isTransient(error)) throw error;
      if (isFatalForRun(error)) throw new FatalSyncError((error as Error).message);
      // A permanent 400: usually one param (immutable on the server) that differs from an earlier value.
      // Send the rest without the params, then each param alone, and keep whatever is refused on disk.
      await this.sendPiecewise(runId, payload, error as Error);
    }
    if (range === 'extras') this.extrasUncertain = false;
    this.stats.metricPoints += metrics.length;
    this.target.sentMetricPoints += metrics.length;
  }

  private async sendPiecewise(runId: string, payload: LogBatchPayload, first: Error): Promise<void> {
    const params = payload.params ?? [];
    try {
      await this.client.logBatch(runId, { tags: payload.tags, metrics: payload.metrics });
    } catch (error) {
      if (isTransient(error)) throw error;
      if (isFatalForRun(error)) throw new FatalSyncError((error as Error).message);
      this.reject({ tags: payload.tags, metrics: payload.metrics }, error as Error);
    }
    for (const param of params) {
      try {
        await this.client.logBatch(runId, { params: [param] });
      } catch (error) {
        if (isTransient(error)) throw error;
        if (isFatalForRun(error)) throw new FatalSyncError((error as Error).message);
        this.reject({ params: [param] }, error as Error);
      }
    }
    if (params.length === 0) this.log(`log-batch refused: ${first.message}`);
  }

  private reject(payload: unknown, error: Error): void {
    this.stats.rejected++;
    appendFileSync(join(this.options.runDir, REJECTED_FILE), `${JSON.stringify({ time: Date.now(), error: error.message, payload })}\n`);
    this.log(`the server refused part of a batch (${error.message}); kept in ${REJECTED_FILE}`);
  }

  private async guard(fn: () => Promise<void>, payload: unknown): Promise<void> {
    try {
      await fn();
    } catch (error) {
      if (isTransient(error)) throw error;
      if (isFatalForRun(error)) throw new FatalSyncError((error as Error).message);
      this.reject(payload, error as Error);
    }
  }

  /**
   * A resumed run replays the steps after its checkpoint; the interrupted session may have sent them already
   * (with other timestamps). MLflow cannot replace a point, so a replayed point is sent only when the server
   * has none for that key and step: each step appears once.
   */
  private async withoutLoggedSteps(runId: string, metrics: Metric[]): Promise<Metric[]> {
    const logged = new Set<string>();
    for (const key of new Set(metrics.map((m) => m.key))) {
      for (const point of await this.call(() => this.client.getMetricHistory(runId, key))) logged.add(`${point.key}\u0000${Number(point.step)}`);
    }
    const missing = metrics.filter((m) => !logged.has(`${m.key}\u0000${m.step}`));
    this.stats.reconciledPoints += metrics.length - missing.length;
    return missing;
  }

  /** Drops the points the server already has (as a multiset: a point logged twice on purpose stays twice). */
  private async reconcile(runId: string, metrics: Metric[]): Promise<Metric[]> {
    const keys = [...new Set(metrics.map((m) => m.key))];
    const have = new Map<string, number>();
    for (const key of keys) {
      for (const point of await this.call(() => this.client.getMetricHistory(runId, key))) {
        const id = pointKey(point.key, Number(point.step), Number(point.timestamp), point.value);
        have.set(id, (have.get(id) ?? 0) + 1);
      }
    }
    const missing: Metric[] = [];
    for (const metric of metrics) {
      const id = pointKey(metric.key, metric.step, metric.timestamp, metric.value);
      const count = have.get(id) ?? 0;
      if (count > 0) {
        have.set(id, count - 1);
        this.stats.reconciledPoints++;
      } else {
        missing.push(metric);
      }
    }
    return missing;
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (isFatalForRun(error)) throw new FatalSyncError((error as Error).message);
      throw error;
    }
  }
}

export function mergeLogs(ops: Op[]): { params: KeyValue[]; tags: KeyValue[]; metrics: Metric[] } {
  const merged = { params: [] as KeyValue[], tags: [] as KeyValue[], metrics: [] as Metric[] };
  const tagIndex = new Map<string, number>();
  const paramKeys = new Set<string>();
  for (const op of ops) {
    if (op.kind !== 'log') continue;
    for (const param of op.params) {
      // Duplicate param keys in one batch are refused by the server; the first value wins.
      if (paramKeys.has(param.key)) continue;
      paramKeys.add(param.key);
      merged.params.push(param);
    }
    for (const tag of op.tags) {
      // Tags are last-write-wins: keep only the last value of each key.
      const at = tagIndex.get(tag.key);
      if (at === undefined) {
        tagIndex.set(tag.key, merged.tags.length);
        merged.tags.push(tag);
      } else merged.tags[at] = tag;
    }
    merged.metrics.push(...op.metrics);
  }
  return merged;
}
