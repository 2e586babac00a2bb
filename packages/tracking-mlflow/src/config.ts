/**
 * The tracker's config (the `tracking: [{ use: 'mlflow', config: {...} }]` entry of an experiment). It is
 * logged with the run, so it never holds secrets: credentials come from MLFLOW_TRACKING_USERNAME/PASSWORD
 * or MLFLOW_TRACKING_TOKEN, or from an `auth` provider passed in code.
 */
import { createRequire } from 'node:module';
import { z } from 'zod';

export const MlflowTrackerConfigSchema = z
  .object({
    /** `http(s)://host:port`; default MLFLOW_TRACKING_URI. Without either the run is kept locally for `dfd sync`. */
    trackingUri: z.string().url().optional(),
    /** Default MLFLOW_EXPERIMENT_NAME, else the dfd experiment name. */
    experimentName: z.string().min(1).max(500).optional(),
    /** Metrics are batched and sent at least this often. */
    flushIntervalMs: z.number().int().positive().default(2000),
    /** CPU and memory under MLflow's `system/` names. */
    systemMetrics: z.boolean().default(false),
    systemMetricsIntervalMs: z.number().int().positive().default(10_000),
    /** Upload artifact events' files (report.html, ROC PNGs, config ...) at the end. */
    uploadArtifacts: z.boolean().default(true),
    /** Upload the best checkpoint at the end. */
    uploadCheckpoint: z.boolean().default(true),
    /** NaN/±Inf metric values: `send` as MLflow's "NaN"/"Infinity" (sqlite stores ±Inf as ±1.8e308), or `drop`. Counted either way in `dfd/nonfinite_values`. */
    nonFinite: z.enum(['send', 'drop']).default('send'),
    /** Per request. */
    timeoutMs: z.number().int().positive().default(120_000),
    /** HTTP retries per request on network errors, 408, 429, 5xx. */
    maxRetries: z.number().int().min(0).default(3),
    retryBackoffMs: z.number().int().positive().default(500),
    /** While the server is unreachable: first wait before trying again (doubles up to `offlineMaxRetryMs`). */
    offlineRetryMs: z.number().int().positive().default(5000),
    offlineMaxRetryMs: z.number().int().positive().default(60_000),
    /** How long `close()` keeps trying to send what is left before leaving it for `dfd sync`. */
    closeTimeoutMs: z.number().int().min(0).default(30_000),
  })
  .strict();

export type MlflowTrackerConfig = z.output<typeof MlflowTrackerConfigSchema>;
export type MlflowTrackerConfigInput = z.input<typeof MlflowTrackerConfigSchema>;

const require = createRequire(import.meta.url);
/** This package's version (src/ and dist/ both sit next to package.json). */
export const PACKAGE_VERSION: string = (require('../package.json') as { version: string }).version;
