/**
 * The live tracker against the real MLflow server of the global setup: a run emitted through core's
 * RunEventBus (and recorded by core's recordEvents) is read back through the REST API.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MlflowTracker, fromWireValue, mlflowPlugin, syncRunDir, type Run } from '@dfd/tracking-mlflow';
import { PluginRegistry } from '@dfd/core';
import { HandRun, SUBSETS, tempRunsDir } from './support/run-dir.js';
import { mlflowUri, testClient, unique } from './support/mlflow.js';

const quick = { flushIntervalMs: 100, offlineRetryMs: 200, retryBackoffMs: 50, maxRetries: 1, closeTimeoutMs: 10_000 };

function tags(run: Run): Record<string, string> {
  return Object.fromEntries((run.data.tags ?? []).map((t) => [t.key, t.value]));
}
function params(run: Run): Record<string, string> {
  return Object.fromEntries((run.data.params ?? []).map((t) => [t.key, t.value]));
}

async function trackedRun(experiment: string, body: (run: HandRun) => void | Promise<void>, options = {}) {
  const run = new HandRun(tempRunsDir(), experiment);
  const logs: string[] = [];
  const tracker = new MlflowTracker({ trackingUri: mlflowUri(), ...quick, ...options, logger: (m) => logs.push(m) });
  tracker.attach(run.bus.events$, { runId: run.runId, experiment, runDir: run.runDir });
  await body(run);
  await tracker.close();
  return { run, tracker, logs };
}

describe('MlflowTracker (live, real server)', () => {
  it('mirrors a whole run: params, every metric point with its step, tags, inputs, artifacts, FINISHED', async () => {
    const experiment = unique('tracker-full');
    const checkpoint = randomBytes(300_000);
    const { run, tracker, logs } = await trackedRun(experiment, (r) => {
      r.start();
      r.steps(1, 40);
      r.evalAt(20, 'val');
      r.bestCheckpoint(20, checkpoint);
      r.steps(41, 60);
      r.evalAt(60, 'test');
      r.artifact('report.html', '<html><body>report</body></html>');
      r.artifact('roc/heygen.png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
      r.bus.emit({ type: 'warning', source: 'loader', message: '2 images skipped' });
      r.end('finished', 60);
    });
    expect(logs).toEqual([]);
    expect(tracker.pendingEvents).toBe(0);
    const client = testClient();
    const mlflowRun = await client.getRun(tracker.mlflowRunId!);
    expect(mlflowRun.info.status).toBe('FINISHED');
    expect(mlflowRun.info.end_time).toBe(run.emitted.at(-1)!.time);

    // Params: the flattened resolved config.
    const p = params(mlflowRun);
    expect(p['seed']).toBe('7');
    expect(p['trainer.optimizer.lr']).toBe('0.002');
    expect(p['promptLearner.config.nCtx']).toBe('16');
    expect(p['enhancers.0.use']).toBe('lare-egre');
    expect(p['data.train.subsets']).toBe('["FF","heygen"]');
    expect(p['dataset.config.root']).toBe('/data/mini-df40');

    // Tags: MLflow's system tags and ours.
    const t = tags(mlflowRun);
    expect(t['mlflow.runName']).toBe(`${experiment}-${run.runId}`);
    expect(t['mlflow.source.name']).toBe('test');
    expect(t['mlflow.source.git.commit']).toBe('abc123def');
    expect(t['mlflow.user']).toBe('tester');
    expect(t['mlflow.note.content']).toBe('CoOp on mini-DF40, tracked to MLflow');
    expect(t['dfd.runId']).toBe(run.runId);
    expect(t['dfd.backend']).toBe('wasm');
    expect(t['dfd.version.dfd/core']).toBe('0.1.0');
    expect(t['dfd.tracker']).toMatch(/^@dfd\/tracking-mlflow@\d/);
    expect(t['dfd.protocol.test.selection']).toBe('val');
    expect(t['dfd.checkpoint.best.step']).toBe('20');
    expect(t['dfd.status']).toBe('finished');

    // Every training point, with its step and timestamp, exactly once.
    const loss = await client.getMetricHistory(tracker.mlflowRunId!, 'train/loss');
    expect(loss.map((m) => Number(m.step))).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    const stepEvents = run.emitted.filter((e) => e.type === 'step');
    expect(loss.map((m) => Number(m.timestamp))).toEqual(stepEvents.map((e) => e.time));
    expect(loss.map((m) => fromWireValue(m.value))).toEqual(stepEvents.map((e) => (e.type === 'step' ? e.loss : NaN)));
    expect((await client.getMetricHistory(tracker.mlflowRunId!, 'train/grad_norm')).length).toBe(60);
    // Evaluation per subset, `test/heygen/auc` style.
    for (const subset of SUBSETS) {
      const history = await client.getMetricHistory(tracker.mlflowRunId!, `test/${subset}/auc`);
      expect(history).toHaveLength(1);
      expect(Number(history[0]!.step)).toBe(60);
    }
    expect((await client.getMetricHistory(tracker.mlflowRunId!, 'val/auc')).map((m) => Number(m.step))).toEqual([20]);
    expect((await client.getMetricHistory(tracker.mlflowRunId!, 'dfd/warnings')).map((m) => fromWireValue(m.value))).toEqual([1]);

    // Dataset inputs with their context.
    const inputs = mlflowRun.inputs?.dataset_inputs ?? [];
    expect(inputs.map((i) => i.dataset.name).sort()).toEqual(['df40-synthetic:test', 'df40-synthetic:train']);
    const train = inputs.find((i) => i.dataset.name === 'df40-synthetic:train')!;
    expect(train.dataset.digest).toBe('a1b2c3d4e5f60718293a4b5c6d7e8f90aabb'); // cut to MLflow's 36
    expect(train.tags).toContainEqual({ key: 'mlflow.data.context', value: 'training' });

    // Artifacts, byte for byte.
    const uri = mlflowRun.info.artifact_uri;
    expect(await client.downloadArtifact(uri, 'checkpoints/best.safetensors')).toEqual(checkpoint);
    expect((await client.downloadArtifact(uri, 'report.html')).toString()).toBe('<html><body>report</body></html>');
    expect(await client.downloadArtifact(uri, 'roc/heygen.png')).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
    expect(JSON.parse((await client.downloadArtifact(uri, 'config.json')).toString())).toEqual(
      JSON.parse(readFileSync(`${run.runDir}/config.json`, 'utf8')),
    );
    expect((await client.downloadArtifact(uri, 'dfd/warnings.txt')).toString()).toContain('[loader] 2 images skipped');
    const top = (await client.listArtifacts(tracker.mlflowRunId!)).map((f) => f.path).sort();
    expect(top).toEqual(['checkpoints', 'config.json', 'dfd', 'report.html', 'roc']);
  });

  it('ends the MLflow run as KILLED (Ctrl-C) and FAILED (with the error) as the run ended', async () => {
    const experiment = unique('tracker-status');
    const killed = await trackedRun(experiment, (r) => {
      r.start();
      r.steps(1, 5);
      r.end('killed', 5);
    });
    const failed = await trackedRun(experiment, (r) => {
      r.start();
      r.steps(1, 3);
      r.end('failed', 3, 'NaN loss at step 3');
    });
    const client = testClient();
    expect((await client.getRun(killed.tracker.mlflowRunId!)).info.status).toBe('KILLED');
    const failedRun = await client.getRun(failed.tracker.mlflowRunId!);
    expect(failedRun.info.status).toBe('FAILED');
    expect(tags(failedRun)['dfd.error']).toBe('NaN loss at step 3');
  });

  it('logs a sweep as one parent run with child runs', async () => {
    const experiment = unique('tracker-sweep');
    const sweepId = unique('sweep');
    const children = [];
    for (const lr of [0.001, 0.002]) {
      children.push(
        await trackedRun(experiment, (r) => {
          r.start({ parentRunId: sweepId, runName: `lr=${lr}` });
          r.steps(1, 3);
          r.end('finished', 3);
        }),
      );
    }
    const client = testClient();
    const experimentId = (await client.getExperimentByName(experiment))!.experiment_id;
    const parents = await client.findRunsByTag(experimentId, 'dfd.runId', sweepId);
    expect(parents).toHaveLength(1);
    const parentId = parents[0]!.info.run_id;
    expect(parents[0]!.info.status).toBe('FINISHED');
    const childRuns = await client.findRunsByTag(experimentId, 'mlflow.parentRunId', parentId);
    expect(childRuns.map((r) => r.info.run_id).sort()).toEqual(children.map((c) => c.tracker.mlflowRunId).sort());

    // The sweep's own run, sent afterwards, becomes that parent rather than a second one.
    const sweepRun = new HandRun(tempRunsDir(), experiment, sweepId);
    sweepRun.start({ runName: 'sweep lr' });
    sweepRun.end('finished', 0);
    const synced = await syncRunDir(sweepRun.runDir, { trackingUri: mlflowUri(), env: {} });
    expect(synced.mlflowRunId).toBe(parentId);
    const parent = await client.getRun(parentId);
    expect(tags(parent)['dfd.sweepParent']).toBe('run');
    expect(tags(parent)['mlflow.runName']).toBe('sweep lr');
    expect((await client.searchRuns({ experimentIds: [experimentId] })).runs).toHaveLength(3);
  });

  it('sends NaN and ±Inf the way MLflow accepts them, and counts them', async () => {
    const experiment = unique('tracker-nan');
    const values = [0.5, NaN, Infinity, -Infinity, 0.25];
    const { tracker } = await trackedRun(experiment, (r) => {
      r.start();
      r.steps(0, 4, { loss: (step) => values[step]! });
      r.end('finished', 4);
    });
    const client = testClient();
    const loss = await client.getMetricHistory(tracker.mlflowRunId!, 'train/loss');
    // sqlite stores ±Inf as ±Number.MAX_VALUE (mlflow#22826); NaN comes back as NaN.
    expect(loss.map((m) => fromWireValue(m.value))).toEqual([0.5, NaN, Number.MAX_VALUE, -Number.MAX_VALUE, 0.25]);
    const counted = await client.getMetricHistory(tracker.mlflowRunId!, 'dfd/nonfinite_values');
    expect(counted.map((m) => fromWireValue(m.value))).toEqual([1, 2, 3]);
  });

  it('drops non-finite values when asked, still counting them', async () => {
    const experiment = unique('tracker-nan-drop');
    const { tracker } = await trackedRun(
      experiment,
      (r) => {
        r.start();
        r.steps(0, 2, { loss: (step) => (step === 1 ? NaN : step) });
        r.end('finished', 2);
      },
      { nonFinite: 'drop' },
    );
    const client = testClient();
    const loss = await client.getMetricHistory(tracker.mlflowRunId!, 'train/loss');
    expect(loss.map((m) => [Number(m.step), fromWireValue(m.value)])).toEqual([[0, 0], [2, 2]]);
    expect((await client.getMetricHistory(tracker.mlflowRunId!, 'dfd/nonfinite_values')).map((m) => fromWireValue(m.value))).toEqual([1]);
  });

  it('samples system metrics under MLflow system/ names when enabled', async () => {
    const experiment = unique('tracker-system');
    const { tracker } = await trackedRun(
      experiment,
      async (r) => {
        r.start();
        r.steps(1, 2);
        await new Promise((resolve) => setTimeout(resolve, 700));
        r.end('finished', 2);
      },
      { systemMetrics: true, systemMetricsIntervalMs: 200 },
    );
    const client = testClient();
    const cpu = await client.getMetricHistory(tracker.mlflowRunId!, 'system/cpu_utilization_percentage');
    const memory = await client.getMetricHistory(tracker.mlflowRunId!, 'system/system_memory_usage_megabytes');
    expect(cpu.length).toBeGreaterThanOrEqual(2);
    expect(cpu.map((m) => Number(m.step))).toEqual(cpu.map((_, i) => i));
    for (const point of cpu) expect(fromWireValue(point.value)).toBeGreaterThanOrEqual(0);
    expect(fromWireValue(memory[0]!.value)).toBeGreaterThan(10);
  });

  it('detaches, keeping the run for dfd sync, when the server refuses it (401), without touching training', async () => {
    const refused: string[] = [];
    const server = createServer((req, res) => {
      refused.push(req.url ?? '');
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error_code: 'UNAUTHENTICATED', message: 'You are not authenticated' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const run = new HandRun(tempRunsDir(), unique('refused'));
      const logs: string[] = [];
      const tracker = new MlflowTracker({ trackingUri: uri, ...quick, logger: (m) => logs.push(m) });
      tracker.attach(run.bus.events$, { runId: run.runId, experiment: run.experiment, runDir: run.runDir });
      run.start();
      run.steps(1, 20);
      run.end('finished', 20);
      await tracker.close();
      expect(tracker.state).toBe('closed');
      expect(refused).toHaveLength(1); // no retry loop against a server that said no
      expect(logs.join('\n')).toMatch(/MLflow refused the run .*UNAUTHENTICATED.*22 events kept .*dfd sync/s);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('is the plugin component tracker:mlflow with a validated config', () => {
    const registry = new PluginRegistry([mlflowPlugin]);
    expect(registry.namesOf('tracker')).toEqual(['mlflow']);
    expect(registry.commands().map((c) => c.name)).toEqual(['sync']);
    const config = registry.resolveConfig('tracker', 'mlflow', { flushIntervalMs: 500 });
    expect(config).toMatchObject({ flushIntervalMs: 500, nonFinite: 'send', systemMetrics: false });
    expect(() => registry.resolveConfig('tracker', 'mlflow', { password: 'x' })).toThrow(/unknown key 'password'/);
    const tracker = registry.get('tracker', 'mlflow').useFactory!(config, { resolve: () => undefined as never, isRegistered: () => false });
    expect(tracker).toBeInstanceOf(MlflowTracker);
  });
});
