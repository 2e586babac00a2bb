/**
 * Exact resume with a real model: CoOp on the mini-DF40 (tiny CLIP text tower, feature cache, AdamW),
 * killed after step 3 and resumed, ends with the same bits as an uninterrupted run — on whichever backend
 * the suite runs (`npm test`: wasm; `npm run test:tensorflow`: tensorflow, whose CPU kernels are
 * deterministic for a fixed thread count).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { stopWhen, atStep } from '../../test/support/stop-when.js';
import { currentBackend, readSafetensors, resumeRun, runExperiment } from '@dfd/core';
import { coopExperiment } from '../src/coop.js';
import { PLUGINS } from '../src/setup.js';
import { miniDf40 } from './support.js';

let root: string;
beforeAll(async () => {
  root = await miniDf40();
});

async function checkpointTensors(runDir: string): Promise<Record<string, number[]>> {
  const { tensors } = await readSafetensors(join(runDir, 'checkpoints/last.safetensors'));
  return Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name, Array.from(t.data as Float32Array)]));
}

test('CoOp killed after step 3 and resumed ends bit-identical to an uninterrupted run', async () => {
  const runsDir = mkdtempSync(join(tmpdir(), 'dfd-examples-resume-'));
  const experiment = (name: string) => {
    const base = coopExperiment({ root, seed: 4, runsDir, cacheDir: join(runsDir, 'cache') });
    return { ...base, name, trainer: { ...base.trainer, epochs: 1, maxSteps: 6, checkpointEverySteps: 1 } };
  };
  const straight = await runExperiment(experiment('straight'));
  expect(straight).toMatchObject({ status: 'finished', steps: 6 });

  const { signal, tracker: killer } = stopWhen(atStep(3));
  const killed = await runExperiment(experiment('killed'), { signal, trackers: [killer] });
  expect(killed).toMatchObject({ status: 'killed', steps: 3 });
  const resumed = await resumeRun(killed.runDir, { plugins: PLUGINS });
  expect(resumed).toMatchObject({ status: 'finished', steps: 6 });

  const a = await checkpointTensors(straight.runDir);
  const b = await checkpointTensors(resumed.runDir);
  expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
  expect(Object.keys(a).some((name) => name.includes('ctx')), Object.keys(a).join(', ')).toBe(true);
  for (const name of Object.keys(a)) expect(b[name], `${name} on ${currentBackend()?.name}`).toEqual(a[name]); // exact
  expect(resumed.test).toEqual(straight.test);
}, 300_000);
