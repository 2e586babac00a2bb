/** Helpers of the examples' tests: a shared mini-DF40, and re-scoring a finished run from its directory. */
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { currentBackend, loadRun, type Plugin } from '@dfd/core';
import { generateMiniDf40 } from '@dfd/dataset-df40';

/**
 * The default synthetic mini-DF40 (seed 0, 64 px), generated once per machine for the tests. Test files run
 * in parallel workers, so it is written to a private folder and renamed into place: a reader never sees a
 * half-written tree, and the loser of a race just uses the winner's (identical) copy.
 */
export async function miniDf40(): Promise<string> {
  const root = join(tmpdir(), 'dfd-examples-mini-df40-v2');
  if (existsSync(join(root, 'synth.json'))) return root;
  const staging = `${root}.${process.pid}-${Date.now()}`;
  await generateMiniDf40({ out: staging, overwrite: true });
  try {
    renameSync(staging, root);
  } catch {
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(join(root, 'synth.json'))) throw new Error(`could not create ${root}; remove it and run the tests again`);
  }
  return root;
}

/** The scores test-scores.csv recorded, by image path. */
export function recordedScores(runDir: string): Map<string, number> {
  const lines = readFileSync(join(runDir, 'test-scores.csv'), 'utf8').trim().split('\n').slice(1);
  return new Map(
    lines.map((line) => {
      const fields = line.split(',');
      return [fields[0]!, Number(fields.at(-1))];
    }),
  );
}

/**
 * Save → load → predict: `loadRun` rebuilds the experiment from the run's config.json in a fresh
 * container, loads the selected checkpoint and scores the given images again.
 */
export async function rescoreRun(runDir: string, plugins: Plugin[], paths: string[]): Promise<Map<string, number>> {
  const loaded = await loadRun(runDir, { plugins });
  try {
    const scores = await loaded.predict(paths);
    return new Map(paths.map((path, i) => [path, scores[i]!]));
  } finally {
    loaded.dispose();
  }
}

/** `dfd predict --json` as a user runs it: the built `dfd` binary in its own process. */
export function predictWithCli(runDir: string, paths: string[]): Map<string, number> {
  const bin = fileURLToPath(new URL('../../packages/core/bin/dfd.js', import.meta.url));
  const out = execFileSync('node', [bin, 'predict', '--run', runDir, '--json', ...paths], { encoding: 'utf8' });
  return new Map(out.trim().split('\n').map((line) => {
    const row = JSON.parse(line) as { path: string; p_fake: number };
    return [row.path, row.p_fake];
  }));
}

/**
 * A re-scored image has the recorded P(fake): the same bits on wasm and cpu; on tensorflow within a float32
 * rounding step, since its exp/sigmoid/softmax round a value differently with its position in the batch
 * (the run records `backend_batch_invariant: false`).
 */
export function expectSameScore(actual: number | undefined, recorded: number | undefined, label: string): void {
  if (currentBackend()?.name !== 'tensorflow') {
    expect(actual, label).toBe(recorded);
    return;
  }
  expect(actual, label).toBeTypeOf('number');
  expect(Math.abs(actual! - recorded!), `${label}: ${actual} vs recorded ${recorded}`).toBeLessThanOrEqual(1e-6 * Math.abs(recorded!));
}
