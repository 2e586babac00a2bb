/**
 * Runs of the CLaRE example's stage-2 model — tiny CLIP + CoOp + `lare-egre` + `attention` fusion, both with
 * dropout 0.1 — on the mini-DF40 with the LaRE maps of the committed tiny SD (examples/src/lare-maps.ts):
 * killed after step 3 and resumed, the run ends with the same bits as an uninterrupted one, because each
 * dropout's masks are a function of (seed, module, its call counter) and the counters are checkpointed; and
 * `dfd predict` (the built binary) scores test images with the recorded P(fake), whether their maps come from
 * the dataset's map folder, from `--extra lare=PATH`, or — for an image with no map — from plugin-lare's extra
 * provider running the tiny SD with the settings the maps recorded.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, test } from 'vitest';
import { stopWhen, atStep } from '../../test/support/stop-when.js';
import { currentBackend, loadRun, readSafetensors, resumeRun, runExperiment, type ExperimentInCode, type RunResult } from '@dfd/core';
import { CLARE_PLUGINS, ENHANCERS, FUSERS, stage2Experiment } from '../src/clare.js';
import { ensureLareMaps, MAPS_DIR } from '../src/lare-maps.js';
import { expectSameScore, miniDf40, recordedScores } from './support.js';

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

const trainer = { epochs: 1, maxSteps: 6, checkpointEverySteps: 1 };
let straightRun: Promise<RunResult> | undefined;
/** The uninterrupted run, shared by the tests (trained once). */
function straight(): Promise<RunResult> {
  straightRun ??= runExperiment(fusionExperiment('straight', trainer));
  return straightRun;
}

const DFD = fileURLToPath(new URL('../../packages/core/bin/dfd.js', import.meta.url));

/** `dfd predict --json` as a user runs it (the built binary, its own process), with extra arguments. */
function predictCli(runDir: string, images: string[], args: string[], cache: string): Map<string, number> {
  const out = execFileSync('node', [DFD, 'predict', '--run', runDir, '--json', '--extras-cache', cache, ...args, ...images], { encoding: 'utf8' });
  return new Map(out.trim().split('\n').map((line) => {
    const row = JSON.parse(line) as { path: string; p_fake: number };
    return [row.path, row.p_fake];
  }));
}

describe('lare-egre + attention fusion with dropout on the mini-DF40 (LaRE maps of the tiny SD)', () => {
  test('killed after step 3 and resumed, it ends bit-identical to an uninterrupted run (dropout masks included)', async () => {
    const straightResult = await straight();
    expect(straightResult).toMatchObject({ status: 'finished', steps: 6 });
    const { signal, tracker: killer } = stopWhen(atStep(3));
    const killed = await runExperiment(fusionExperiment('killed', trainer), { signal, trackers: [killer] });
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
    const a = await checkpointTensors(straightResult.runDir);
    const b = await checkpointTensors(resumed.runDir);
    expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
    expect(Object.keys(a).filter((name) => name.startsWith('model/enhancer0.') || name.startsWith('model/fuser.')).length).toBeGreaterThan(4);
    for (const name of Object.keys(a)) expect(b[name], `${name} on ${currentBackend()?.name}`).toEqual(a[name]); // exact
    expect(resumed.test).toEqual(straightResult.test);
  }, 600_000);

  test('dfd predict gives the recorded P(fake): maps from the dataset, from --extra, or computed for an image without one', async () => {
    const { runDir } = await straight();
    const recorded = recordedScores(runDir);
    // Two real and two fake test images (recorded paths are absolute).
    const all = [...recorded.keys()];
    const picked = [...all.filter((p) => p.includes('/real/')).slice(0, 2), ...all.filter((p) => p.includes('/fake/')).slice(0, 2)];
    expect(picked).toHaveLength(4);
    const mapOf = (image: string) => join(root, MAPS_DIR, relative(root, image)).replace(/\.(png|jpg)$/, '.safetensors');
    const cache = mkdtempSync(join(tmpdir(), 'dfd-predict-extras-'));

    // 1. Images of the dataset: their maps from the run's dataset extras config.
    const fromDataset = predictCli(runDir, picked, [], cache);
    for (const image of picked) expectSameScore(fromDataset.get(image), recorded.get(image), `dataset map: ${image}`);
    expect(readdirSync(cache)).toEqual([]); // nothing computed

    // 2. The same images copied outside the dataset (no map there): maps given with --extra, once per image.
    const outside = mkdtempSync(join(tmpdir(), 'dfd-predict-new-'));
    const copies = picked.map((image, i) => {
      const copy = join(outside, `new-${i}${image.slice(image.lastIndexOf('.'))}`);
      copyFileSync(image, copy);
      return copy;
    });
    const given = predictCli(runDir, copies, picked.flatMap((image) => ['--extra', `lare=${mapOf(image)}`]), cache);
    copies.forEach((copy, i) => expectSameScore(given.get(copy), recorded.get(picked[i]!), `--extra: ${picked[i]}`));

    // 3. No map anywhere: plugin-lare's provider computes it with the tiny SD and the recorded recipe —
    //    the same bits as the dataset's map (seeded by image content), hence the recorded score.
    const computed = predictCli(runDir, copies, [], cache);
    copies.forEach((copy, i) => expectSameScore(computed.get(copy), recorded.get(picked[i]!), `computed map: ${picked[i]}`));
    const written = readdirSync(join(cache, 'lare')).filter((n) => n.endsWith('.safetensors'));
    expect(written).toHaveLength(4);
    for (const [i, image] of picked.entries()) {
      const stored = (await readSafetensors(mapOf(image))).tensors;
      const hash = written.find((n) => readFileSync(join(cache, 'lare', n)).includes(Buffer.from(copies[i]!)));
      expect(hash, `a computed map for ${copies[i]}`).toBeDefined();
      const made = (await readSafetensors(join(cache, 'lare', hash!))).tensors;
      expect(Array.from(made.lare!.data as Float32Array), image).toEqual(Array.from(Object.values(stored)[0]!.data as Float32Array));
    }

    // 4. A run whose config says nothing about computing maps: a clear error with the fixes.
    const bare = join(mkdtempSync(join(tmpdir(), 'dfd-predict-bare-')), 'run');
    cpSync(runDir, bare, { recursive: true });
    const config = JSON.parse(readFileSync(join(bare, 'config.json'), 'utf8')) as Record<string, unknown>;
    delete config.predict;
    writeFileSync(join(bare, 'config.json'), JSON.stringify(config));
    const loaded = await loadRun(bare, { plugins: CLARE_PLUGINS });
    try {
      await expect(loaded.predict([copies[0]!], { extrasCacheDir: join(cache, 'unused') })).rejects.toThrow(/no 'lare' extra for .*new-0.*--extra lare=PATH.*predict\.extras\.lare/);
    } finally {
      loaded.dispose();
    }
    rmSync(outside, { recursive: true, force: true });
  }, 600_000);
});
