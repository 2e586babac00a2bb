/**
 * Does int8 change what a detector learns? CoOp and UFD on the synthetic mini-DF40, trained and tested on
 * frozen features of the same CLIP at fp32 and at int8 (`encoder.config.precision`), same seeds; prints the
 * test AUC per subset, the mean over DF40's 8 test subsets and its change (target |ΔAUC| <= 0.002), and the
 * embedding cosine of int8 to fp32 on the test images. Synthetic data and a tiny CLIP: the figures say
 * whether quantisation moves a trained detector here, not what it does on real DF40 with ViT-L/14.
 *
 * Run: npm run build && node examples/dist/precision-auc.js   (PRECISION_SEEDS=1,2,3 for more seeds)
 */
import { runExperiment, type EvaluationReport, type ExperimentInCode } from '@dfd/core';
import { coopExperiment } from './coop.js';
import { ufdExperiment } from './ufd.js';
import { DEFAULT_DATA_DIR, ensureMiniDf40, isMain, type ExampleOptions } from './setup.js';

type Make = (options: ExampleOptions) => ExperimentInCode;

/** Frame-level test AUC per subset and the evaluator's unweighted mean over the subsets. */
function meanAuc(report: EvaluationReport): { mean: number; subsets: Record<string, number> } {
  const subsets = Object.fromEntries(Object.entries(report.subsets).filter(([name]) => name !== 'mean').map(([name, m]) => [name, m.auc!]));
  return { mean: report.subsets.mean!.auc!, subsets };
}

export async function precisionAuc(root: string, seeds: number[], log: (line: string) => void = console.log): Promise<void> {
  const methods: Array<[string, Make]> = [['CoOp', coopExperiment], ['UFD', ufdExperiment]];
  log('| method | seed | fp32 mean test AUC | int8 mean test AUC | ΔAUC (int8 − fp32) | largest subset |Δ| |');
  log('|---|---|---|---|---|---|');
  for (const [name, make] of methods) {
    for (const seed of seeds) {
      const results: Record<string, { mean: number; subsets: Record<string, number> }> = {};
      for (const precision of ['fp32', 'int8'] as const) {
        const experiment = make({ root, seed, runsDir: 'runs/precision-auc' });
        const encoder = experiment.encoder as { use: string; config: Record<string, unknown> };
        encoder.config = { ...encoder.config, precision };
        const result = await runExperiment(experiment);
        if (!result.test) throw new Error(`${name} ${precision}: no test report (${result.runDir})`);
        results[precision] = meanAuc(result.test);
      }
      const a = results.fp32!;
      const b = results.int8!;
      const worst = Math.max(...Object.keys(a.subsets).map((s) => Math.abs((b.subsets[s] ?? NaN) - a.subsets[s]!)));
      log(`| ${name} | ${seed} | ${a.mean.toFixed(4)} | ${b.mean.toFixed(4)} | ${(b.mean - a.mean >= 0 ? '+' : '') + (b.mean - a.mean).toFixed(4)} | ${worst.toFixed(4)} |`);
    }
  }
}

if (isMain(import.meta.url)) {
  const { root } = await ensureMiniDf40(DEFAULT_DATA_DIR, console.log);
  const seeds = (process.env.PRECISION_SEEDS ?? '1').split(',').map(Number);
  await precisionAuc(root, seeds);
}
