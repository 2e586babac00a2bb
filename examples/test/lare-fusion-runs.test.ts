/**
 * Runs of the CLaRE example's stage-2 model — tiny CLIP + CoOp + `lare-egre` + `attention` fusion, both with
 * dropout 0.1 — on the mini-DF40 with the LaRE maps of the committed tiny SD (examples/src/lare-maps.ts):
 * killed after step 3 and resumed, the run ends with the same bits as an uninterrupted one, because each
 * dropout's masks are a function of (seed, module, its call counter) and the counters are checkpointed.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { currentBackend, readSafetensors, resumeRun, runExperiment, type ExperimentInCode, type Tracker } from '@dfd/core';
import { CLARE_PLUGINS, ENHANCERS, FUSERS, stage2Experiment } from '../src/clare.js';
import { ensureLareMaps } from '../src/lare-maps.js';
import { miniDf40 } from './support.js';

let root: string;
let runsDir: string;
beforeAll(async () => {
  root = await miniDf40();
  await ensureLareMaps(root);
  runsDir = mkdtempSync(join(tmpdir(), 'dfd-lare-fusion-runs-'));
}, 600_000);

/** Stage 2 of the CLaRE example trained from scratch (no stage-1 init): every dropout is at 0.1. */
function fusionExperiment(name: string, trainer: Record<string, unknown>): ExperimentInCode {
  const { init: _init, ...experiment } = stage2Experiment({ root, seed: 3, runsDir, cacheDir: join(runsDir, 'cache'), variant: { enhancers: [ENHANCERS['lare-egre']], fuser: FUSERS.attention } });
  expect(ENHANCERS['lare-egre'].config.dropout).toBeGreaterThan(0);
  expect(FUSERS.attention.config.dropout).toBeGreaterThan(0);
  return { ...experiment, name, trainer: { ...experiment.trainer, ...trainer } } as ExperimentInCode;
}

async function checkpointTensors(runDir: string): Promise<Record<string, number[]>> {
  const { tensors } = await readSafetensors(join(runDir, 'checkpoints/last.safetensors'));
  return Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name, Array.from(t.data as Float32Array)]));
}

describe('lare-egre + attention fusion with dropout on the mini-DF40 (LaRE maps of the tiny SD)', () => {
  test('killed after step 3 and resumed, it ends bit-identical to an uninterrupted run (dropout masks included)', async () => {
    const trainer = { epochs: 1, maxSteps: 6, checkpointEverySteps: 1 };
    const straight = await runExperiment(fusionExperiment('straight', trainer));
    expect(straight).toMatchObject({ status: 'finished', steps: 6 });
    const controller = new AbortController();
    const killer: Tracker = {
      name: 'killer',
      attach(events) {
        events.subscribe((e) => {
          if (e.type === 'step' && e.step === 3) controller.abort();
        });
      },
      async close() {},
    };
    const killed = await runExperiment(fusionExperiment('killed', trainer), { signal: controller.signal, trackers: [killer] });
    expect(killed).toMatchObject({ status: 'killed', steps: 3 });
    const counters = Object.entries(await checkpointTensors(killed.runDir)).filter(([name]) => name.endsWith('dropout_calls'));
    // Both dropouts of the enhancer and of the fuser, each called once per training step so far.
    expect(counters.map(([name]) => name).sort()).toEqual([
      'state/enhancer0.dropout.attention.dropout_calls',
      'state/enhancer0.dropout.output.dropout_calls',
      'state/fuser.dropout.attention.dropout_calls',
      'state/fuser.dropout.output.dropout_calls',
    ]);
    for (const [name, value] of counters) expect(value[0], name).toBeGreaterThanOrEqual(3);

    const resumed = await resumeRun(killed.runDir, { plugins: CLARE_PLUGINS });
    expect(resumed).toMatchObject({ status: 'finished', steps: 6 });
    const a = await checkpointTensors(straight.runDir);
    const b = await checkpointTensors(resumed.runDir);
    expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
    expect(Object.keys(a).filter((name) => name.startsWith('model/enhancer0.') || name.startsWith('model/fuser.')).length).toBeGreaterThan(4);
    for (const name of Object.keys(a)) expect(b[name], `${name} on ${currentBackend()?.name}`).toEqual(a[name]); // exact
    expect(resumed.test).toEqual(straight.test);
  }, 600_000);
});
