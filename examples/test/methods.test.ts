/**
 * Each method trained end to end on the synthetic mini-DF40 with the real parts (tiny CLIP, sharp image
 * pipeline, feature cache, trainer, df40 evaluator), over 3 seeds, evaluated on DF40's 8 unknown test
 * sets — generators never seen in training. The margins below were established from these runs (see the
 * package READMEs for the measured AUCs); chance is 0.5.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { runExperiment, type ExperimentInCode } from '@dfd/core';
import { cocoopExperiment } from '../src/cocoop.js';
import { coopExperiment } from '../src/coop.js';
import { PLUGINS, TEST_SUBSETS, type ExampleOptions } from '../src/setup.js';
import { ufdExperiment } from '../src/ufd.js';
import { expectSameScore, miniDf40, predictWithCli, recordedScores, rescoreRun } from './support.js';

let root: string;
let cacheDir: string;
const runsDir = mkdtempSync(join(tmpdir(), 'dfd-examples-runs-'));

beforeAll(async () => {
  root = await miniDf40();
  cacheDir = mkdtempSync(join(tmpdir(), 'dfd-examples-cache-'));
});

const methods: Array<[string, (o: ExampleOptions) => ExperimentInCode, number]> = [
  // [name, experiment, minimum mean AUC over the 8 unknown sets required of every seed]
  ['CoOp', coopExperiment, 0.75],
  ['CoCoOp', cocoopExperiment, 0.7],
  ['UFD', ufdExperiment, 0.62],
];

describe.each(methods)('%s on the mini-DF40', (name, experiment, margin) => {
  test(`beats chance on the 8 unknown test sets by a clear margin for 3 seeds (mean AUC ≥ ${margin}); save → load → predict is identical`, async () => {
    const means: number[] = [];
    for (const seed of [1, 2, 3]) {
      const result = await runExperiment(experiment({ root, seed, runsDir, cacheDir }));
      expect(result.status).toBe('finished');
      expect(result.selected?.by).toBe('val');
      const report = result.test!;
      expect(Object.keys(report.subsets).filter((s) => s !== 'mean')).toEqual(TEST_SUBSETS);
      const mean = report.subsets.mean!.auc!;
      means.push(mean);
      expect(mean, `${name} seed ${seed}: mean test AUC ${mean}`).toBeGreaterThanOrEqual(margin);
      if (seed === 1) {
        const recorded = recordedScores(result.runDir);
        const again = await rescoreRun(result.runDir, PLUGINS, [...recorded.keys()]);
        expect(again.size).toBe(recorded.size);
        expect(recorded.size).toBe(8 * 64);
        for (const [path, score] of recorded) expectSameScore(again.get(path), score, path);
        // Single-image inference from the command line gives the same P(fake).
        const some = [...recorded.keys()].filter((_, i) => i % 97 === 0);
        const cli = predictWithCli(result.runDir, some);
        for (const path of some) expectSameScore(cli.get(path), recorded.get(path), path);
      }
    }
    console.log(`${name}: mean AUC over the 8 unknown sets, seeds 1-3: ${means.map((m) => m.toFixed(3)).join(', ')}`);
  }, 300_000);
});
