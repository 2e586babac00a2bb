/**
 * Nothing lost: the tracker's own MLflow server is stopped mid-run and started again; training never
 * waits, and afterwards every metric point is on the server exactly once. Also: a server that is down at
 * the end (the rest goes out with `dfd sync`) and one that was never up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MlflowTracker, STATE_FILE, syncRunDir, fromWireValue } from '@dfd/tracking-mlflow';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MlflowServer, freePort } from '../../../test/support/mlflow-server.js';
import { HandRun, tempRunsDir } from './support/run-dir.js';
import { testClient, unique } from './support/mlflow.js';

let server: MlflowServer;

beforeAll(async () => {
  server = await MlflowServer.start();
});
afterAll(async () => {
  await server?.dispose();
});

const offlineQuick = {
  flushIntervalMs: 100,
  offlineRetryMs: 300,
  offlineMaxRetryMs: 1000,
  maxRetries: 0,
  retryBackoffMs: 50,
  timeoutMs: 5000,
};

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function expectExactlyOnce(trackingUri: string, runId: string, key: string, steps: number[]): Promise<void> {
  const history = await testClient(trackingUri).getMetricHistory(runId, key);
  expect(history.map((m) => Number(m.step)).sort((a, b) => a - b)).toEqual(steps);
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('nothing lost when the MLflow server goes away', () => {
  it('keeps training through an outage mid-run and sends every point exactly once when the server is back', async () => {
    const experiment = unique('outage');
    const run = new HandRun(tempRunsDir(), experiment);
    const logs: string[] = [];
    const tracker = new MlflowTracker({ trackingUri: server.uri, ...offlineQuick, closeTimeoutMs: 60_000, logger: (m) => logs.push(m) });
    tracker.attach(run.bus.events$, { runId: run.runId, experiment, runDir: run.runDir });
    run.start();
    run.steps(1, 30);
    await until(() => tracker.pendingEvents === 0 && tracker.state === 'online', 'the first 30 steps to be sent');

    await server.stop('SIGKILL');
    // Training goes on while the server is down: emitting never blocks or throws.
    for (let step = 31; step <= 60; step += 5) {
      run.steps(step, step + 4);
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    run.evalAt(60, 'val');
    await until(() => tracker.state === 'offline', 'the tracker to notice the outage');
    expect(tracker.pendingEvents).toBeGreaterThanOrEqual(31);
    expect(logs.some((m) => m.includes('training goes on'))).toBe(true);

    await server.restart();
    run.steps(61, 80);
    run.evalAt(80, 'test');
    run.end('finished', 80);
    await tracker.close();

    expect(tracker.pendingEvents).toBe(0);
    const runId = tracker.mlflowRunId!;
    await expectExactlyOnce(server.uri, runId, 'train/loss', range(1, 80));
    await expectExactlyOnce(server.uri, runId, 'train/lr', range(1, 80));
    await expectExactlyOnce(server.uri, runId, 'val/auc', [60]);
    await expectExactlyOnce(server.uri, runId, 'test/heygen/auc', [80]);
    expect((await testClient(server.uri).getRun(runId)).info.status).toBe('FINISHED');
    const state = JSON.parse(readFileSync(join(run.runDir, STATE_FILE), 'utf8'));
    expect(state.targets[server.uri].sentEvents).toBe(run.emitted.length);
  });

  it('leaves what it could not send in the run directory when the server is down at the end; dfd sync sends it once', async () => {
    const experiment = unique('outage-end');
    const run = new HandRun(tempRunsDir(), experiment);
    const logs: string[] = [];
    const tracker = new MlflowTracker({ trackingUri: server.uri, ...offlineQuick, closeTimeoutMs: 1000, logger: (m) => logs.push(m) });
    tracker.attach(run.bus.events$, { runId: run.runId, experiment, runDir: run.runDir });
    run.start();
    run.steps(1, 10);
    await until(() => tracker.pendingEvents === 0 && tracker.state === 'online', 'the first steps to be sent');
    await server.stop('SIGKILL');
    try {
      run.steps(11, 25);
      run.artifact('report.html', '<p>late report</p>');
      run.end('finished', 25);
      await tracker.close();
      expect(tracker.pendingEvents).toBe(17); // 15 steps, the artifact and the end
      expect(logs.at(-1)).toMatch(/17 events could not be sent.*dfd sync/);
      expect(existsSync(join(run.runDir, 'mlflow-sync.lock'))).toBe(false);
    } finally {
      await server.restart();
    }
    const runId = tracker.mlflowRunId!;
    expect((await testClient(server.uri).getRun(runId)).info.status).toBe('RUNNING');
    const first = await syncRunDir(run.runDir, { trackingUri: server.uri, env: {} });
    expect(first.mlflowRunId).toBe(runId);
    expect(first.sentEvents).toBe(17);
    const second = await syncRunDir(run.runDir, { trackingUri: server.uri, env: {} });
    expect(second.sentEvents).toBe(0);
    await expectExactlyOnce(server.uri, runId, 'train/loss', range(1, 25));
    const finished = await testClient(server.uri).getRun(runId);
    expect(finished.info.status).toBe('FINISHED');
    expect((await testClient(server.uri).downloadArtifact(finished.info.artifact_uri, 'report.html')).toString()).toBe('<p>late report</p>');
  });

  it('never blocks a run whose server is unreachable from the start', async () => {
    const experiment = unique('never-up');
    const deadUri = `http://127.0.0.1:${await freePort()}`;
    const run = new HandRun(tempRunsDir(), experiment);
    const tracker = new MlflowTracker({ trackingUri: deadUri, ...offlineQuick, closeTimeoutMs: 300, logger: () => {} });
    tracker.attach(run.bus.events$, { runId: run.runId, experiment, runDir: run.runDir });
    const started = Date.now();
    run.start();
    run.steps(1, 200);
    run.end('finished', 200);
    expect(Date.now() - started).toBeLessThan(1000); // emitting is synchronous and cheap
    await tracker.close();
    expect(tracker.mlflowRunId).toBeUndefined();
    expect(tracker.pendingEvents).toBe(202);
    const synced = await syncRunDir(run.runDir, { trackingUri: server.uri, env: {} });
    await expectExactlyOnce(server.uri, synced.mlflowRunId!, 'train/loss', range(1, 200));
    const loss = await testClient(server.uri).getMetricHistory(synced.mlflowRunId!, 'train/loss');
    expect(fromWireValue(loss.find((m) => Number(m.step) === 1)!.value)).toBe(0.5);
  });
});
