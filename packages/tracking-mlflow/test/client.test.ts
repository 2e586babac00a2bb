/**
 * The REST client against the real MLflow server (race-safe experiments, chunked log-batch within the
 * server's limits, long params, errors with the server's message, artifacts through the proxy), and its
 * retry and auth behaviour against a small local HTTP server that answers 503/429 on purpose.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MlflowClient, MlflowError, MlflowNetworkError, LIMITS, syncRunDir, type Experiment } from '@dfd/tracking-mlflow';
import { freePort } from '../../../test/support/mlflow-server.js';
import { HandRun, baseConfig, tempRunsDir } from './support/run-dir.js';
import { mlflowUri, testClient, unique } from './support/mlflow.js';

describe('MlflowClient (real server)', () => {
  it('get-or-create is safe when several processes race to create one experiment', async () => {
    const name = unique('race');
    const clients = Array.from({ length: 6 }, () => testClient());
    const experiments = await Promise.all(clients.map((c) => c.getOrCreateExperiment(name)));
    expect(new Set(experiments.map((e) => e.experiment_id)).size).toBe(1);
    const { runs } = await testClient().searchRuns({ experimentIds: [experiments[0]!.experiment_id] });
    expect(runs).toEqual([]);
  });

  it('branches on RESOURCE_ALREADY_EXISTS when another process creates the experiment between lookup and create', async () => {
    const name = unique('race-interleaved');
    const winner = testClient();
    // Deterministic interleaving: the loser's lookup says "absent", then the winner creates, then the loser creates.
    class Loser extends MlflowClient {
      lookups = 0;
      override async getExperimentByName(n: string): Promise<Experiment | undefined> {
        if (this.lookups++ === 0) {
          await winner.createExperiment(n);
          return undefined;
        }
        return super.getExperimentByName(n);
      }
    }
    const loser = new Loser({ trackingUri: mlflowUri(), env: {} });
    const experiment = await loser.getOrCreateExperiment(name);
    expect(loser.lookups).toBe(2);
    expect(experiment.experiment_id).toBe((await winner.getExperimentByName(name))!.experiment_id);
    const error = await winner.createExperiment(name).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MlflowError);
    expect((error as MlflowError).errorCode).toBe('RESOURCE_ALREADY_EXISTS');
    expect((error as MlflowError).status).toBe(400); // not 409: that is why we branch on the code
  });

  it('splits log-batch to the server limits (1000 metrics, 100 params, 100 tags, 1 MB) and loses nothing', async () => {
    const client = testClient();
    const experiment = await client.getOrCreateExperiment(unique('chunks'));
    const run = await client.createRun({ experimentId: experiment.experiment_id, runName: 'chunks' });
    const metrics = Array.from({ length: 2500 }, (_, i) => ({ key: `m${i % 5}`, value: i / 7, timestamp: 1_700_000_000_000 + i, step: Math.floor(i / 5) }));
    const params = Array.from({ length: 230 }, (_, i) => ({ key: `p${i}`, value: `${i}:`.padEnd(LIMITS.paramValue, 'x') }));
    const tags = Array.from({ length: 150 }, (_, i) => ({ key: `t${i}`, value: `${i}:`.padEnd(LIMITS.tagValue, 'y') }));
    const requests = await client.logBatch(run.run_id, { metrics, params, tags });
    // [100 params] [100 params] [30 params + 100 tags] [50 tags + 950 metrics] [1000 metrics] [550 metrics]:
    // 1000 entities at most, and each request under 1 MB (100 × 6 kB params = 600 kB).
    expect(requests).toBe(6);
    const back = await client.getRun(run.run_id);
    expect(back.data.params).toHaveLength(230);
    expect(back.data.params!.find((p) => p.key === 'p229')!.value).toBe(params[229]!.value);
    expect(back.data.tags!.filter((t) => t.key.startsWith('t'))).toHaveLength(150);
    for (let k = 0; k < 5; k++) {
      const history = await client.getMetricHistory(run.run_id, `m${k}`);
      expect(history.map((m) => Number(m.step))).toEqual(Array.from({ length: 500 }, (_, i) => i));
    }
  });

  it('surfaces other errors with the server message and code, without retrying', async () => {
    const client = testClient();
    const missing = await client.getRun('0123456789abcdef0123456789abcdef').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(MlflowError);
    expect((missing as MlflowError).errorCode).toBe('RESOURCE_DOES_NOT_EXIST');
    expect((missing as MlflowError).message).toMatch(/runs\/get failed \(404 RESOURCE_DOES_NOT_EXIST\): Run .*not found/);

    const experiment = await client.getOrCreateExperiment(unique('immutable'));
    const run = await client.createRun({ experimentId: experiment.experiment_id });
    await client.logBatch(run.run_id, { params: [{ key: 'lr', value: '0.1' }] });
    await client.logBatch(run.run_id, { params: [{ key: 'lr', value: '0.1' }] }); // same value: accepted
    const changed = await client.logBatch(run.run_id, { params: [{ key: 'lr', value: '0.2' }] }).catch((e: unknown) => e);
    expect((changed as MlflowError).errorCode).toBe('INVALID_PARAMETER_VALUE');
    expect((changed as MlflowError).message).toMatch(/lr/);
  });

  it('uploads artifacts through the mlflow-artifacts proxy and reads the bytes back', async () => {
    const client = testClient();
    const experiment = await client.getOrCreateExperiment(unique('artifacts'));
    const run = await client.createRun({ experimentId: experiment.experiment_id });
    expect(run.artifact_uri).toMatch(/^mlflow-artifacts:\//);
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256));
    await client.uploadArtifact(run.artifact_uri, 'deep/dir/blob with space.bin', { bytes });
    expect(await client.downloadArtifact(run.artifact_uri, 'deep/dir/blob with space.bin')).toEqual(bytes);
    expect((await client.listArtifacts(run.run_id, 'deep/dir')).map((f) => f.path)).toEqual(['deep/dir/blob with space.bin']);
    expect(() => client.artifactPath('s3://bucket/1/abc/artifacts', 'x')).toThrow(/--serve-artifacts/);
  });

  it('truncates long params with a hash suffix and keeps the full value as an artifact', async () => {
    const runsDir = tempRunsDir();
    const run = new HandRun(runsDir, unique('long-params'));
    const long = Array.from({ length: 900 }, (_, i) => `token${i}`).join(' '); // ~8 kB
    run.start({ config: { ...baseConfig(run.experiment), promptLearner: { use: 'coop', config: { ctxInit: long } } } });
    run.end('finished', 0);
    const synced = await syncRunDir(run.runDir, { trackingUri: mlflowUri(), env: {} });
    const client = testClient();
    const back = await client.getRun(synced.mlflowRunId!);
    const param = back.data.params!.find((p) => p.key === 'promptLearner.config.ctxInit')!.value;
    expect(param).toHaveLength(LIMITS.paramValue);
    expect(param).toMatch(/\.\.\.\[sha256:[0-9a-f]{8}\]$/);
    expect(long.startsWith(param.slice(0, 5900))).toBe(true);
    const full = JSON.parse((await client.downloadArtifact(back.info.artifact_uri, 'dfd/params_full.json')).toString());
    expect(full['promptLearner.config.ctxInit']).toBe(long);
    expect(JSON.parse((await client.downloadArtifact(back.info.artifact_uri, 'config.json')).toString())).toEqual(
      JSON.parse(readFileSync(join(run.runDir, 'config.json'), 'utf8')),
    );
  });
});

describe('MlflowClient retries and auth (local HTTP server)', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  async function serve(answers: Array<{ status: number; body?: unknown; headers?: Record<string, string> }>) {
    const seen: IncomingHttpHeaders[] = [];
    server = createServer((req, res) => {
      seen.push(req.headers);
      const answer = answers[Math.min(seen.length - 1, answers.length - 1)]!;
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      res.end(JSON.stringify(answer.body ?? {}));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return { uri: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, seen };
  }

  it('retries 503 and 429 (honouring Retry-After) with backoff, then succeeds', async () => {
    const { uri, seen } = await serve([
      { status: 503, body: { error_code: 'TEMPORARILY_UNAVAILABLE', message: 'busy' } },
      { status: 429, body: { error_code: 'REQUEST_LIMIT_EXCEEDED', message: 'slow down' }, headers: { 'retry-after': '0.3' } },
      { status: 200, body: { experiment: { experiment_id: '7', name: 'x' } } },
    ]);
    const waits: number[] = [];
    const client = new MlflowClient({ trackingUri: uri, env: {}, retry: { maxRetries: 3, backoffMs: 20, jitter: 1 }, onRetry: (i) => waits.push(i.waitMs) });
    const started = Date.now();
    expect((await client.getExperimentByName('x'))!.experiment_id).toBe('7');
    expect(seen).toHaveLength(3);
    expect(waits[0]).toBeGreaterThanOrEqual(20);
    expect(waits[0]).toBeLessThanOrEqual(40);
    expect(waits[1]).toBe(300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('gives up after maxRetries with the last server message, and never retries a 400', async () => {
    const { uri, seen } = await serve([{ status: 500, body: { error_code: 'INTERNAL_ERROR', message: 'database is locked' } }]);
    const client = new MlflowClient({ trackingUri: uri, env: {}, retry: { maxRetries: 2, backoffMs: 5 } });
    await expect(client.getRun('r')).rejects.toThrow(/500 INTERNAL_ERROR\): database is locked/);
    expect(seen).toHaveLength(3);
    const bad = await serve([{ status: 400, body: { error_code: 'INVALID_PARAMETER_VALUE', message: 'bad key' } }]);
    const client400 = new MlflowClient({ trackingUri: bad.uri, env: {}, retry: { maxRetries: 5, backoffMs: 5 } });
    await expect(client400.getRun('r')).rejects.toMatchObject({ errorCode: 'INVALID_PARAMETER_VALUE', status: 400 });
    expect(bad.seen).toHaveLength(1);
  });

  it('sends Basic auth from MLFLOW_TRACKING_USERNAME/PASSWORD, else Bearer from MLFLOW_TRACKING_TOKEN', async () => {
    const { uri, seen } = await serve([{ status: 200, body: { run: { info: { run_id: 'r' }, data: {} } } }]);
    await new MlflowClient({ env: { MLFLOW_TRACKING_URI: uri, MLFLOW_TRACKING_USERNAME: 'ann', MLFLOW_TRACKING_PASSWORD: 'pw', MLFLOW_TRACKING_TOKEN: 'tok' } }).getRun('r');
    await new MlflowClient({ env: { MLFLOW_TRACKING_URI: uri, MLFLOW_TRACKING_TOKEN: 'tok' } }).getRun('r');
    await new MlflowClient({ env: { MLFLOW_TRACKING_URI: uri } }).getRun('r');
    expect(seen.map((h) => h.authorization)).toEqual([`Basic ${Buffer.from('ann:pw').toString('base64')}`, 'Bearer tok', undefined]);
  });

  it('reports an unreachable server as a network error that was never delivered, and rejects non-http URIs', async () => {
    const client = new MlflowClient({ trackingUri: `http://127.0.0.1:${await freePort()}`, env: {}, retry: { maxRetries: 1, backoffMs: 5 } });
    const error = await client.getRun('r').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MlflowNetworkError);
    expect((error as MlflowNetworkError).maybeDelivered).toBe(false);
    expect((error as Error).message).toMatch(/cannot reach the MLflow server .*ECONNREFUSED/);
    expect(() => new MlflowClient({ trackingUri: 'sqlite:///mlflow.db', env: {} })).toThrow(/not http\(s\).*dfd sync/s);
    expect(() => new MlflowClient({ env: {} })).toThrow(/MLFLOW_TRACKING_URI/);
  });
});
