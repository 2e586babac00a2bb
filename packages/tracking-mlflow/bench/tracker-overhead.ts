/**
 * What the MLflow tracker costs the training loop: the synchronous work done per event on the emitting
 * thread (translation and queueing; sending happens later, off the step). Baseline in the same run: the
 * run directory recorder alone (core's recordEvents, an fs append per event).
 *
 *   npm run bench -w @dfd/tracking-mlflow        (MLFLOW_TRACKING_URI=http://... to also time a live server)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRunDirectory, recordEvents, RunEventBus } from '@dfd/core';
import { MlflowTracker } from '@dfd/tracking-mlflow';

const STEPS = Number(process.env.BENCH_STEPS ?? 20_000);

async function deadUri(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

async function timeRun(label: string, trackingUri: string | undefined): Promise<number> {
  const root = mkdtempSync(join(tmpdir(), 'dfd-bench-'));
  try {
    const run = createRunDirectory(root, 'bench');
    const bus = new RunEventBus();
    const recording = recordEvents(bus.events$, run);
    const tracker = trackingUri ? new MlflowTracker({ trackingUri, closeTimeoutMs: 0, logger: () => {} }) : undefined;
    tracker?.attach(bus.events$, { runId: run.runId, experiment: 'bench', runDir: run.dir });
    const started = process.hrtime.bigint();
    bus.emit({ type: 'run-start', runId: run.runId, experiment: 'bench', runName: 'bench', runDir: run.dir, config: { a: 1 }, tags: {}, datasets: [], totalSteps: STEPS });
    for (let step = 1; step <= STEPS; step++) {
      bus.emit({ type: 'step', step, epoch: 0, loss: 1 / step, lr: 0.002, imagesPerSecond: 100, totalSteps: STEPS, metrics: { grad_norm: 0.5 } });
    }
    const emitNs = Number(process.hrtime.bigint() - started);
    bus.emit({ type: 'end', status: 'finished', step: STEPS });
    recording.unsubscribe();
    const closeStarted = process.hrtime.bigint();
    await tracker?.close();
    const closeMs = Number(process.hrtime.bigint() - closeStarted) / 1e6;
    const perStepUs = emitNs / STEPS / 1000;
    console.log(`${label.padEnd(34)} ${perStepUs.toFixed(2).padStart(7)} µs/step on the training thread${tracker ? `, close ${closeMs.toFixed(0)} ms` : ''}`);
    return perStepUs;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await timeRun('warm-up', undefined);
const baseline = await timeRun('run directory only (baseline)', undefined);
const offline = await timeRun('+ MLflow tracker, server down', await deadUri());
console.log(`ratio offline/baseline: ${(offline / baseline).toFixed(2)}×`);
if (process.env.MLFLOW_TRACKING_URI) {
  const live = await timeRun('+ MLflow tracker, live server', process.env.MLFLOW_TRACKING_URI);
  console.log(`ratio live/baseline: ${(live / baseline).toFixed(2)}×`);
}
