/**
 * @dfd/tracking-mlflow: a small, complete MLflow REST client, a tracker that mirrors a run's event stream
 * to MLflow live and loses nothing when the server is down, and `dfd sync` to replay local runs.
 */
import { definePlugin } from '@dfd/core';
import { syncCommand } from './cli.js';
import { MlflowTrackerConfigSchema, PACKAGE_VERSION } from './config.js';
import { MlflowTracker } from './tracker.js';
import { mlflowRunLocator } from './run-locator.js';

export { MlflowClient, type MlflowClientOptions, type CreateRunOptions } from './client.js';
export { authFromEnv, BasicAuthProvider, BearerTokenProvider, noAuth, type AuthProvider } from './auth.js';
export { MlflowError, MlflowNetworkError, isTransient, isFatalForRun, TRANSIENT_STATUSES } from './errors.js';
export { HttpTransport, DEFAULT_RETRY, backoffDelay, parseRetryAfter, type RetryOptions } from './http.js';
export { chunkBatch, DEFAULT_CHUNK_LIMITS, type ChunkLimits } from './batch.js';
export { LIMITS } from './limits.js';
export { flattenConfig, prepareParams, prepareTag, sanitizeKey, truncateValue, toWireValue, fromWireValue } from './values.js';
export { EventTranslator, datasetInputs, type Op, type NonFinitePolicy } from './translate.js';
export { MlflowRunWriter, FatalSyncError, type IndexedOps } from './writer.js';
export { SyncState, RunLock, STATE_FILE, LOCK_FILE, REJECTED_FILE, type TargetState } from './state.js';
export { readEventsFile, EVENTS_FILE } from './events-file.js';
export { SystemMetricsSampler } from './system-metrics.js';
export { MlflowTracker, type MlflowTrackerOptions, type TrackerState } from './tracker.js';
export { syncRunDir, findRunDirs, type SyncOptions, type SyncResult } from './sync.js';
export { syncCommand, parseSyncArgs } from './cli.js';
export { MlflowTrackerConfigSchema, PACKAGE_VERSION, type MlflowTrackerConfig, type MlflowTrackerConfigInput } from './config.js';
export { mlflowRunLocator, type MlflowRunLocatorOptions } from './run-locator.js';
export type * from './types.js';

export const mlflowPlugin = definePlugin({
  name: '@dfd/tracking-mlflow',
  version: PACKAGE_VERSION,
  register(registrar) {
    registrar.add({
      kind: 'tracker',
      name: 'mlflow',
      description: 'Mirrors the run to an MLflow tracking server (MLFLOW_TRACKING_URI); keeps what it cannot send for `dfd sync`',
      config: MlflowTrackerConfigSchema,
      useFactory: (config) => new MlflowTracker(config),
    });
    registrar.command(syncCommand);
    registrar.runLocator?.(mlflowRunLocator());
  },
});

export default mlflowPlugin;
