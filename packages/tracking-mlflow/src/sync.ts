/**
 * Replays a run directory's events.jsonl to an MLflow server: runs recorded with no tracking, runs whose
 * server was down, runs already partly sent. Idempotent: the cursor in mlflow-sync.json, the dfd.runId tag
 * and metric reconciliation make a second sync send nothing twice.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AuthProvider } from './auth.js';
import { MlflowClient, type MlflowClientOptions } from './client.js';
import { PACKAGE_VERSION } from './config.js';
import { EVENTS_FILE, readEventsFile } from './events-file.js';
import { RunLock, SyncState } from './state.js';
import { EventTranslator, type NonFinitePolicy } from './translate.js';
import { MlflowRunWriter, type Logger } from './writer.js';

export interface SyncOptions {
  /** Default MLFLOW_TRACKING_URI. */
  trackingUri?: string;
  /** Default MLFLOW_EXPERIMENT_NAME, else the experiment the run already went to, else the dfd experiment name. */
  experimentName?: string;
  auth?: AuthProvider;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  nonFinite?: NonFinitePolicy;
  uploadArtifacts?: boolean;
  uploadCheckpoint?: boolean;
  client?: MlflowClient;
  clientOptions?: Omit<MlflowClientOptions, 'trackingUri' | 'auth' | 'env'>;
}

export interface SyncResult {
  runDir: string;
  runUrl?: string;
  mlflowRunId?: string;
  experimentId?: string;
  /** Events in events.jsonl. */
  totalEvents: number;
  /** Events applied by this sync (0 when it was already up to date). */
  sentEvents: number;
  metricPoints: number;
  /** Points found already on the server and not sent again. */
  reconciledPoints: number;
  uploads: number;
  /** True when the run has an `end` event and its status was set. */
  ended: boolean;
}

export async function syncRunDir(runDir: string, options: SyncOptions = {}): Promise<SyncResult> {
  const env = options.env ?? process.env;
  const events = readEventsFile(runDir, { required: true });
  if (events.length === 0) throw new Error(`${join(runDir, EVENTS_FILE)} is empty: the run never started; nothing to sync`);
  if (events[0]!.type !== 'run-start') {
    throw new Error(`${join(runDir, EVENTS_FILE)} does not begin with a run-start event (found '${events[0]!.type}'); it is not a dfd run record`);
  }
  const client =
    options.client ??
    new MlflowClient({ ...options.clientOptions, trackingUri: options.trackingUri, auth: options.auth, env });
  const lock = RunLock.acquire(runDir, 'dfd sync');
  try {
    const state = new SyncState(runDir);
    const writer = new MlflowRunWriter(client, state, {
      runDir,
      experimentName: options.experimentName ?? env.MLFLOW_EXPERIMENT_NAME,
      logger: options.logger,
    });
    writer.checkContinuity(events[writer.target.sentEvents - 1]);
    const translator = new EventTranslator({
      runDir,
      nonFinite: options.nonFinite ?? 'send',
      uploadArtifacts: options.uploadArtifacts,
      uploadCheckpoint: options.uploadCheckpoint,
      trackerVersion: PACKAGE_VERSION,
    });
    const items = events.map((event, index) => ({ index, event: { type: event.type, time: event.time }, ops: translator.translate(event) }));
    await writer.apply(items);
    return {
      runDir,
      runUrl: writer.runUrl,
      mlflowRunId: writer.target.runId,
      experimentId: writer.target.experimentId,
      totalEvents: events.length,
      sentEvents: writer.stats.events,
      metricPoints: writer.stats.metricPoints,
      reconciledPoints: writer.stats.reconciledPoints,
      uploads: writer.stats.uploads,
      ended: Boolean(writer.target.ended),
    };
  } finally {
    lock.release();
  }
}

/**
 * Run directories named by a path: the run directory itself, or an experiment folder (or the runs root)
 * whose run directories are found below it, oldest first by name.
 */
export function findRunDirs(path: string, depth = 2): string[] {
  const dir = resolve(path);
  if (!existsSync(dir)) throw new Error(`${path} does not exist`);
  if (existsSync(join(dir, EVENTS_FILE))) return [dir];
  if (depth === 0 || !statSync(dir).isDirectory()) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort()
    .flatMap((name) => findRunDirs(join(dir, name), depth - 1));
}
