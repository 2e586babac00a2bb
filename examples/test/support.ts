/** Helpers of the examples' tests: a shared mini-DF40, and re-scoring a finished run from its directory. */
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assemble,
  assignWeights,
  buildRegistry,
  definitionFromRecorded,
  ensureBackend,
  loadCheckpoint,
  resolveSlots,
  scoreSource,
  type Plugin,
} from '@dfd/core';
import { generateMiniDf40 } from '@dfd/dataset-df40';

/**
 * The default synthetic mini-DF40 (seed 0, 64 px), generated once per machine for the tests. Test files run
 * in parallel workers, so it is written to a private folder and renamed into place: a reader never sees a
 * half-written tree, and the loser of a race just uses the winner's (identical) copy.
 */
export async function miniDf40(): Promise<string> {
  const root = join(tmpdir(), 'dfd-examples-mini-df40-v1');
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
 * Save → load → predict: rebuilds the experiment from the run's config.json in a fresh container, loads
 * the selected checkpoint and scores the test split again.
 */
export async function rescoreRun(runDir: string, plugins: Plugin[]): Promise<Map<string, number>> {
  const recorded = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const experiment = definitionFromRecorded(recorded);
  await ensureBackend(experiment.backend);
  const registry = buildRegistry(plugins);
  const assembled = assemble(experiment, registry, resolveSlots(experiment, registry), { seed: experiment.seed });
  try {
    const selected = JSON.parse(readFileSync(join(runDir, 'selected.json'), 'utf8')) as { checkpoint: string };
    const checkpoint = await loadCheckpoint(join(runDir, 'checkpoints', selected.checkpoint));
    assignWeights(assembled.detector.trainableVariables(), checkpoint.model, selected.checkpoint);
    const samples = await assembled.dataset.samples({ split: 'test', subsets: experiment.data.test.subsets });
    const source = assembled.loader.create(samples, {
      split: 'test',
      batchSize: experiment.trainer.evalBatchSize,
      shuffle: false,
      augment: false,
      seed: experiment.seed,
      needs: assembled.detector.needs,
    });
    const scored = await scoreSource(assembled.detector, source);
    return new Map(scored.paths.map((path, i) => [path, Number(scored.scores[i])]));
  } finally {
    assembled.dispose();
  }
}
