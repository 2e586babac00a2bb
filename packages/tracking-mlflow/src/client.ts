/**
 * A small, complete MLflow tracking client over REST (no maintained Node client exists). It covers what a
 * training run needs: experiments (race-safe get-or-create), runs, chunked log-batch, dataset inputs, tags,
 * read-back, and artifacts through the server's `mlflow-artifacts` proxy.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { authFromEnv, type AuthProvider } from './auth.js';
import { chunkBatch, DEFAULT_CHUNK_LIMITS, type ChunkLimits } from './batch.js';
import { MlflowError } from './errors.js';
import { DEFAULT_RETRY, HttpTransport, type RetryOptions, type TransportOptions } from './http.js';
import { LIMITS } from './limits.js';
import type { DatasetInput, Experiment, FileInfo, KeyValue, LogBatchPayload, Metric, MlflowRunStatus, Run, RunInfo } from './types.js';

const API = 'api/2.0/mlflow';
const ARTIFACTS_API = 'api/2.0/mlflow-artifacts/artifacts';

export interface MlflowClientOptions {
  /** `http(s)://host[:port][/prefix]`; default `MLFLOW_TRACKING_URI`. */
  trackingUri?: string;
  /** Default: Basic from MLFLOW_TRACKING_USERNAME/PASSWORD, else Bearer from MLFLOW_TRACKING_TOKEN. */
  auth?: AuthProvider;
  /** Per request; default 120 s (as the Python client). */
  timeoutMs?: number;
  retry?: Partial<RetryOptions>;
  onRetry?: TransportOptions['onRetry'];
  /** Where to read MLFLOW_* variables; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Request-size limits (tests shrink them to exercise chunking). */
  chunkLimits?: Partial<ChunkLimits>;
}

export interface CreateRunOptions {
  experimentId: string;
  runName?: string;
  /** ms since epoch; default now. */
  startTime?: number;
  tags?: KeyValue[];
  /**
   * Retry on transient errors (default true). runs/create is not idempotent: a retry after a lost answer
   * makes a second run, so callers that can find the run again by a tag turn this off and look first.
   */
  retry?: boolean;
}

export class MlflowClient {
  readonly http: HttpTransport;
  readonly trackingUri: string;
  private readonly chunkLimits: ChunkLimits;

  constructor(options: MlflowClientOptions = {}) {
    const env = options.env ?? process.env;
    const trackingUri = options.trackingUri ?? env.MLFLOW_TRACKING_URI;
    if (!trackingUri) {
      throw new Error('No MLflow tracking URI: set MLFLOW_TRACKING_URI=http://host:port or pass { trackingUri }.');
    }
    this.http = new HttpTransport({
      trackingUri,
      auth: options.auth ?? authFromEnv(env),
      timeoutMs: options.timeoutMs ?? 120_000,
      retry: { ...DEFAULT_RETRY, ...options.retry },
      onRetry: options.onRetry,
    });
    this.trackingUri = this.http.baseUrl;
    this.chunkLimits = { ...DEFAULT_CHUNK_LIMITS, ...options.chunkLimits };
  }

  /** True when the server answers `/health` (one try, short timeout). */
  async ping(timeoutMs = 5000): Promise<boolean> {
    try {
      const response = await fetch(this.http.url('health'), { signal: AbortSignal.timeout(timeoutMs) });
      await response.body?.cancel();
      return response.ok;
    } catch {
      return false;
    }
  }

  // ----------------------------------------------------------------------------------------- experiments

  async getExperimentByName(name: string): Promise<Experiment | undefined> {
    try {
      const { experiment } = await this.http.json<{ experiment: Experiment }>('GET', `${API}/experiments/get-by-name`, {
        query: { experiment_name: name },
      });
      return experiment;
    } catch (error) {
      if (error instanceof MlflowError && error.errorCode === 'RESOURCE_DOES_NOT_EXIST') return undefined;
      throw error;
    }
  }

  async getExperiment(experimentId: string): Promise<Experiment> {
    const { experiment } = await this.http.json<{ experiment: Experiment }>('GET', `${API}/experiments/get`, {
      query: { experiment_id: experimentId },
    });
    return experiment;
  }

  async createExperiment(name: string, tags: KeyValue[] = []): Promise<string> {
    const { experiment_id } = await this.http.json<{ experiment_id: string }>('POST', `${API}/experiments/create`, {
      json: { name, tags },
    });
    return experiment_id;
  }

  /**
   * Get-or-create, safe when processes race: get-by-name; if absent, create; if create says
   * `RESOURCE_ALREADY_EXISTS` (HTTP 400, so branch on the code) another process won, so get-by-name again.
   * A deleted experiment with the name is restored rather than shadowed. `tags` are set only on creation.
   */
  async getOrCreateExperiment(name: string, tags: KeyValue[] = []): Promise<Experiment> {
    if (!name || name.length > LIMITS.experimentName) {
      throw new Error(`MLflow experiment name must be 1-${LIMITS.experimentName} characters, got ${name.length}`);
    }
    const existing = await this.getExperimentByName(name);
    if (existing) {
      if (existing.lifecycle_stage === 'deleted') {
        await this.http.json('POST', `${API}/experiments/restore`, { json: { experiment_id: existing.experiment_id } });
        return { ...existing, lifecycle_stage: 'active' };
      }
      return existing;
    }
    try {
      const id = await this.createExperiment(name, tags);
      return this.getExperiment(id);
    } catch (error) {
      if (error instanceof MlflowError && (error.errorCode === 'RESOURCE_ALREADY_EXISTS' || error.errorCode === 'ALREADY_EXISTS')) {
        const winner = await this.getExperimentByName(name);
        if (winner) return winner;
      }
      throw error;
    }
  }

  // ----------------------------------------------------------------------------------------------- runs

  async createRun(options: CreateRunOptions): Promise<RunInfo> {
    const { run } = await this.http.json<{ run: Run }>('POST', `${API}/runs/create`, {
      json: {
        experiment_id: options.experimentId,
        run_name: options.runName,
        start_time: Math.round(options.startTime ?? Date.now()),
        tags: options.tags ?? [],
      },
      retry: options.retry,
    });
    return run.info;
  }

  async updateRun(runId: string, update: { status?: MlflowRunStatus; endTime?: number; runName?: string }): Promise<RunInfo> {
    const { run_info } = await this.http.json<{ run_info: RunInfo }>('POST', `${API}/runs/update`, {
      json: {
        run_id: runId,
        status: update.status,
        end_time: update.endTime === undefined ? undefined : Math.round(update.endTime),
        run_name: update.runName,
      },
    });
    return run_info;
  }

  /** Ends a run with FINISHED, FAILED or KILLED. */
  terminateRun(runId: string, status: Exclude<MlflowRunStatus, 'RUNNING' | 'SCHEDULED'> = 'FINISHED', endTime = Date.now()): Promise<RunInfo> {
    return this.updateRun(runId, { status, endTime });
  }

  async getRun(runId: string): Promise<Run> {
    const { run } = await this.http.json<{ run: Run }>('GET', `${API}/runs/get`, { query: { run_id: runId } });
    return run;
  }

  async searchRuns(options: {
    experimentIds: string[];
    filter?: string;
    maxResults?: number;
    orderBy?: string[];
    pageToken?: string;
  }): Promise<{ runs: Run[]; nextPageToken?: string }> {
    const response = await this.http.json<{ runs?: Run[]; next_page_token?: string }>('POST', `${API}/runs/search`, {
      json: {
        experiment_ids: options.experimentIds,
        filter: options.filter ?? '',
        max_results: options.maxResults ?? 1000,
        order_by: options.orderBy ?? [],
        page_token: options.pageToken,
      },
    });
    return { runs: response.runs ?? [], nextPageToken: response.next_page_token || undefined };
  }

  /** Active runs of an experiment whose tag `key` equals `value` (oldest first). */
  async findRunsByTag(experimentId: string, key: string, value: string): Promise<Run[]> {
    const quote = (s: string) => s.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
    const { runs } = await this.searchRuns({
      experimentIds: [experimentId],
      filter: `tags.\`${key}\` = '${quote(value)}'`,
      orderBy: ['attributes.start_time ASC'],
    });
    return runs;
  }

  async setTag(runId: string, key: string, value: string): Promise<void> {
    await this.http.json('POST', `${API}/runs/set-tag`, { json: { run_id: runId, key, value } });
  }

  async setExperimentTag(experimentId: string, key: string, value: string): Promise<void> {
    await this.http.json('POST', `${API}/experiments/set-experiment-tag`, { json: { experiment_id: experimentId, key, value } });
  }

  /**
   * Logs metrics, params and tags, split into requests within the server's limits; returns the number of
   * requests sent. Requests go in order, so metric points keep their order.
   */
  async logBatch(runId: string, batch: LogBatchPayload): Promise<number> {
    const chunks = chunkBatch(batch, this.chunkLimits);
    for (const chunk of chunks) {
      await this.http.json('POST', `${API}/runs/log-batch`, { json: { run_id: runId, ...chunk } });
    }
    return chunks.length;
  }

  async logMetric(runId: string, metric: Metric): Promise<void> {
    await this.logBatch(runId, { metrics: [metric] });
  }

  async logInputs(runId: string, datasets: DatasetInput[]): Promise<void> {
    if (datasets.length === 0) return;
    await this.http.json('POST', `${API}/runs/log-inputs`, { json: { run_id: runId, datasets } });
  }

  /** Every point of one metric, in server order (pages through `metrics/get-history`). */
  async getMetricHistory(runId: string, key: string): Promise<Metric[]> {
    const points: Metric[] = [];
    let pageToken: string | undefined;
    do {
      const response = await this.http.json<{ metrics?: Metric[]; next_page_token?: string }>('GET', `${API}/metrics/get-history`, {
        query: { run_id: runId, metric_key: key, max_results: 25_000, page_token: pageToken },
      });
      points.push(...(response.metrics ?? []));
      pageToken = response.next_page_token || undefined;
    } while (pageToken);
    return points;
  }

  // ------------------------------------------------------------------------------------------ artifacts

  /**
   * The proxy path of an artifact. The server must proxy artifacts (`mlflow server --serve-artifacts`):
   * its runs then have `mlflow-artifacts:/<exp>/<run>/artifacts` URIs. Other stores need direct storage
   * access, which this client does not have.
   */
  artifactPath(artifactUri: string, relativePath: string): string {
    const match = /^mlflow-artifacts:(?:\/\/[^/]*)?\/*(.*)$/.exec(artifactUri);
    if (!match) {
      throw new Error(
        `the run's artifact URI '${artifactUri}' is not served by the tracking server, so it cannot be uploaded over REST. ` +
          `Start the server with \`mlflow server --serve-artifacts\` (and no --default-artifact-root pointing at storage) ` +
          `so runs get mlflow-artifacts:/ URIs.`,
      );
    }
    const base = (match[1] ?? '').replace(/\/+$/, '');
    const rel = relativePath.split(/[\\/]+/).filter(Boolean).map(encodeURIComponent).join('/');
    return `${ARTIFACTS_API}/${base.split('/').map(encodeURIComponent).join('/')}/${rel}`;
  }

  /** Uploads a file (streamed from disk) or bytes to `<run artifacts>/<relativePath>`. */
  async uploadArtifact(artifactUri: string, relativePath: string, source: { file: string } | { bytes: Uint8Array | string }): Promise<void> {
    const path = this.artifactPath(artifactUri, relativePath);
    if ('file' in source) {
      const { size } = await stat(source.file);
      await this.http.send('PUT', path, {
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body: () => Readable.toWeb(createReadStream(source.file)) as unknown as ReadableStream,
      });
    } else {
      const bytes = typeof source.bytes === 'string' ? Buffer.from(source.bytes, 'utf8') : source.bytes;
      await this.http.send('PUT', path, { headers: { 'content-type': 'application/octet-stream' }, body: () => bytes });
    }
  }

  async downloadArtifact(artifactUri: string, relativePath: string): Promise<Buffer> {
    const response = await this.http.send('GET', this.artifactPath(artifactUri, relativePath));
    return Buffer.from(await response.arrayBuffer());
  }

  /** Lists a run's artifacts under `path` (one level) through the tracking API. */
  async listArtifacts(runId: string, path?: string): Promise<FileInfo[]> {
    const { files } = await this.http.json<{ files?: FileInfo[] }>('GET', `${API}/artifacts/list`, {
      query: { run_id: runId, path },
    });
    return files ?? [];
  }

  /** A link to the run in the MLflow UI. */
  runUrl(experimentId: string, runId: string): string {
    return `${this.trackingUri}/#/experiments/${experimentId}/runs/${runId}`;
  }
}
