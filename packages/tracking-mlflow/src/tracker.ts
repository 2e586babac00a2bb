/**
 * The live tracker: subscribes to a run's event stream and mirrors it to MLflow while training goes on.
 *
 * Events are translated on arrival and queued; a background flush sends the queue in order at least every
 * `flushIntervalMs` (immediately for run-start and end). Nothing here can throw into training: when the
 * server is unreachable the queue is kept (and events.jsonl holds it on disk), the tracker retries with
 * backoff, and when the server answers again everything goes out in order. What is still unsent at
 * `close()` stays in the run directory for `dfd sync`.
 */
import type { Observable, Subscription } from 'rxjs';
import type { RunEvent, RunInfo, Tracker } from '@dfd/core';
import type { AuthProvider } from './auth.js';
import { MlflowClient } from './client.js';
import { isTransient } from './errors.js';
import { MlflowTrackerConfigSchema, PACKAGE_VERSION, type MlflowTrackerConfig, type MlflowTrackerConfigInput } from './config.js';
import { readEventsFile } from './events-file.js';
import { RunLock, SyncState } from './state.js';
import { SystemMetricsSampler } from './system-metrics.js';
import { EventTranslator } from './translate.js';
import type { Metric } from './types.js';
import { FatalSyncError, MlflowRunWriter, type IndexedOps, type Logger } from './writer.js';

export interface MlflowTrackerOptions extends MlflowTrackerConfigInput {
  /** Credentials in code (default: from MLFLOW_TRACKING_* variables). */
  auth?: AuthProvider;
  /** Environment for MLFLOW_* variables (default process.env). */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
}

export type TrackerState = 'idle' | 'online' | 'offline' | 'detached' | 'closed';

export class MlflowTracker implements Tracker {
  readonly name = 'mlflow';
  readonly config: MlflowTrackerConfig;
  private readonly log: Logger;
  private writer: MlflowRunWriter | undefined;
  private translator: EventTranslator | undefined;
  private lock: RunLock | undefined;
  private subscription: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sampler: SystemMetricsSampler | undefined;
  private queue: IndexedOps[] = [];
  private extras: Metric[] = [];
  private nextIndex = 0;
  private flushing: Promise<void> | undefined;
  private again = false;
  private failures = 0;
  private nextTryAt = 0;
  private sawEnd = false;
  private streamError: unknown;
  private runDir = '';
  state: TrackerState = 'idle';
  /** The last error that kept events from being sent (for status lines and tests). */
  lastError: Error | undefined;

  constructor(private readonly options: MlflowTrackerOptions = {}) {
    const { auth: _auth, env: _env, logger: _logger, ...config } = options;
    this.config = MlflowTrackerConfigSchema.parse(config);
    this.log = options.logger ?? ((message) => process.stderr.write(`[mlflow] ${message}\n`));
  }

  /** The MLflow run page, once the run exists on the server. */
  get runUrl(): string | undefined {
    return this.writer?.runUrl;
  }

  get mlflowRunId(): string | undefined {
    return this.writer?.target.runId;
  }

  /** Events received but not yet applied on the server. */
  get pendingEvents(): number {
    return this.queue.length;
  }

  get stats(): MlflowRunWriter['stats'] | undefined {
    return this.writer?.stats;
  }

  attach(events: Observable<RunEvent>, run: RunInfo): void {
    try {
      const env = this.options.env ?? process.env;
      const trackingUri = this.config.trackingUri ?? env.MLFLOW_TRACKING_URI;
      if (!trackingUri) {
        this.log(`no MLflow tracking URI (set MLFLOW_TRACKING_URI); the run is kept in ${run.runDir} — send it later with \`dfd sync ${run.runDir} --to URI\``);
        this.state = 'detached';
        return;
      }
      this.runDir = run.runDir;
      const client = new MlflowClient({
        trackingUri,
        auth: this.options.auth,
        env,
        timeoutMs: this.config.timeoutMs,
        retry: { maxRetries: this.config.maxRetries, backoffMs: this.config.retryBackoffMs, maxBackoffMs: Math.max(this.config.retryBackoffMs, 10_000) },
      });
      this.lock = RunLock.acquire(run.runDir, 'live MLflow tracker');
      const state = new SyncState(run.runDir);
      this.writer = new MlflowRunWriter(client, state, {
        runDir: run.runDir,
        experimentName: this.config.experimentName ?? env.MLFLOW_EXPERIMENT_NAME,
        logger: this.log,
      });
      this.translator = new EventTranslator({
        runDir: run.runDir,
        nonFinite: this.config.nonFinite,
        uploadArtifacts: this.config.uploadArtifacts,
        uploadCheckpoint: this.config.uploadCheckpoint,
        trackerVersion: PACKAGE_VERSION,
      });
      // A resumed run appends to the same events.jsonl: replay what is there through the translator (its
      // state spans the whole run) and queue whatever an earlier session could not send.
      const earlier = readEventsFile(run.runDir);
      this.writer.checkContinuity(earlier[this.writer.target.sentEvents - 1]);
      for (const [index, event] of earlier.entries()) this.enqueue(event, index);
      this.nextIndex = earlier.length;
      this.subscription = events.subscribe({
        next: (event) => this.onEvent(event),
        error: (error: unknown) => {
          this.streamError = error;
          this.kick();
        },
      });
      this.timer = setInterval(() => this.kick(), this.config.flushIntervalMs);
      this.timer.unref();
      if (this.config.systemMetrics) {
        this.sampler = new SystemMetricsSampler(this.config.systemMetricsIntervalMs, (metrics) => {
          // Bounded while offline: system metrics are not in events.jsonl and are the first thing to go.
          this.extras.push(...metrics);
          if (this.extras.length > 30_000) this.extras.splice(0, this.extras.length - 30_000);
        });
        this.sampler.start();
      }
      if (this.queue.length) this.kick();
    } catch (error) {
      this.detach(`MLflow tracker not attached: ${(error as Error).message}`);
    }
  }

  private enqueue(event: RunEvent, index: number): void {
    const ops = this.translator!.translate(event);
    if (index < this.writer!.target.sentEvents) return;
    this.queue.push({ index, event: { type: event.type, time: event.time }, ops });
  }

  private onEvent(event: RunEvent): void {
    try {
      if (this.state === 'detached' || this.state === 'closed') return;
      this.enqueue(event, this.nextIndex++);
      if (event.type === 'end') this.sawEnd = true;
      // The run appears at once; the end is sent without waiting for the timer.
      if (event.type === 'run-start' || event.type === 'end') this.kick();
    } catch (error) {
      this.detach(`MLflow tracker stopped: ${(error as Error).message}`);
    }
  }

  private detach(message: string): void {
    this.log(message);
    this.state = 'detached';
    this.stopTimers();
  }

  private stopTimers(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sampler?.stop();
  }

  /** Starts a flush unless one is running (then one more follows it). */
  private kick(force = false): Promise<void> {
    if (force) this.nextTryAt = 0;
    if (this.flushing) {
      this.again = true;
      return this.flushing;
    }
    this.flushing = (async () => {
      try {
        do {
          this.again = false;
          await this.flushOnce();
        } while (this.again && this.state === 'online');
      } finally {
        this.flushing = undefined;
      }
    })();
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    const writer = this.writer;
    if (!writer || this.state === 'detached') return;
    if (this.queue.length === 0 && this.extras.length === 0) return;
    if (Date.now() < this.nextTryAt) return;
    try {
      const items = this.queue.slice();
      await writer.apply(items);
      this.queue = this.queue.filter((item) => item.index >= writer.target.sentEvents);
      if (this.extras.length && writer.target.runId) {
        const extras = this.extras;
        this.extras = [];
        try {
          await writer.sendExtraMetrics(extras);
        } catch (error) {
          this.extras = extras.concat(this.extras);
          throw error;
        }
      }
      if (this.state === 'offline') this.log(`MLflow server reachable again; sent everything kept during the outage`);
      this.state = 'online';
      this.failures = 0;
      this.lastError = undefined;
    } catch (error) {
      this.queue = this.queue.filter((item) => item.index >= writer.target.sentEvents);
      this.lastError = error as Error;
      if (error instanceof FatalSyncError || (error instanceof Error && !isTransient(error))) {
        // The server answered and said no (auth, a deleted run, a request it will never accept): retrying
        // cannot help. What is unsent stays on disk for `dfd sync` once the cause is fixed.
        this.detach(`MLflow refused the run (${(error as Error).message}); ${this.queue.length} events kept in ${this.runDir}/events.jsonl for \`dfd sync\``);
        return;
      }
      if (this.state !== 'offline') {
        this.log(`cannot send to MLflow (${(error as Error).message}); training goes on, events are kept and retried`);
      }
      this.state = 'offline';
      this.failures++;
      const base = Math.min(this.config.offlineMaxRetryMs, this.config.offlineRetryMs * 2 ** (this.failures - 1));
      this.nextTryAt = Date.now() + base * (0.5 + Math.random() * 0.5);
    }
  }

  /**
   * Sends what is left (trying for up to `closeTimeoutMs`), then releases the run directory. Never throws.
   * A stream that ended without an `end` event (a crash) leaves the run marked FAILED.
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.stopTimers();
    this.subscription?.unsubscribe();
    const writer = this.writer;
    try {
      if (writer && this.state !== 'detached') {
        const deadline = Date.now() + this.config.closeTimeoutMs;
        await this.kick(true);
        while ((this.queue.length || this.extras.length) && (this.state as TrackerState) !== 'detached' && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, Math.min(this.config.offlineRetryMs, Math.max(0, deadline - Date.now()))));
          await this.kick(true);
        }
        if (!this.sawEnd && writer.target.runId && !writer.target.ended && this.queue.length === 0) {
          // No end event came (the stream errored or the process is going down): do not leave it RUNNING.
          const status = this.streamError ? 'FAILED' : 'KILLED';
          await writer.client.terminateRun(writer.target.runId, status).catch(() => undefined);
        }
      }
      if (this.queue.length) {
        this.log(
          `${this.queue.length} events could not be sent to MLflow (${this.lastError?.message ?? 'not sent'}); ` +
            `they are kept in ${this.runDir}/events.jsonl: run \`dfd sync ${this.runDir}\` once the server is back (and accepts the run)`,
        );
      }
    } catch (error) {
      this.log(`closing the MLflow tracker: ${(error as Error).message}`);
    } finally {
      this.lock?.release();
      this.lock = undefined;
      this.state = 'closed';
    }
  }
}
