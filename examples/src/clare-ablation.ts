/**
 * The CLaRE ablation on the synthetic mini-DF40, over 3 seeds (synthetic data: the numbers say what these
 * parts do on this benchmark, not on DF40):
 *
 *   CoOp                                   stage 1 alone
 *   CoOp + lare-mlp / lare-egre / lare-egre + lare-roi      (concat fusion)
 *   CoOp + lare-egre with sum / attention fusion
 *   CoCoOp + the best of those             (best by mean validation AUC, run as it is: CoCoOp's meta-net is
 *                                            conditioned on the fused feature, whatever its width, as CLaRE's)
 *   LaRE alone                             a linear head on the pooled maps (no CLIP)
 *
 * Every run selects its checkpoint on validation; each CoOp stage 1 is trained once per seed and every
 * stage-2 variant of that seed starts from it (its parent). Writes `ablation.md` and `ablation.json` into
 * `runs/clare-ablation/<id>/` and links them (`ablation.json`, `ablation.md` symlinks) from every run directory.
 *
 * Run: npm run build && node examples/dist/clare-ablation.js [--seeds 1,2,3] [--stage1-epochs N] [--stage2-epochs N]
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { newRunId, runExperiment, type EvaluationReport, type ExperimentInCode, type RunResult } from '@dfd/core';
import { CLARE_PLUGINS, ENHANCERS, FUSERS, stage1Experiment, stage2Experiment, type ClareOptions, type ClareVariant } from './clare.js';
import { ensureLareMaps, lareExtras } from './lare-maps.js';
import { DEFAULT_DATA_DIR, ensureMiniDf40, isMain, TEST_SUBSETS } from './setup.js';

export interface AblationRun {
  seed: number;
  runDir: string;
  parentRunDir?: string;
  /** The validation AUC of the selected checkpoint (selection is on validation only). */
  valAuc?: number;
  test: Record<string, number>;
}

export interface AblationRow {
  name: string;
  runs: AblationRun[];
}

const STAGE2_VARIANTS: Array<{ name: string; variant: ClareVariant }> = [
  { name: 'CoOp + lare-mlp (concat)', variant: { enhancers: [ENHANCERS['lare-mlp']], fuser: FUSERS.concat } },
  { name: 'CoOp + lare-egre (concat)', variant: { enhancers: [ENHANCERS['lare-egre']], fuser: FUSERS.concat } },
  { name: 'CoOp + lare-egre + lare-roi (concat)', variant: { enhancers: [ENHANCERS['lare-egre'], ENHANCERS['lare-roi']], fuser: FUSERS.concat } },
  { name: 'CoOp + lare-egre (sum)', variant: { enhancers: [ENHANCERS['lare-egre']], fuser: FUSERS.sum } },
  { name: 'CoOp + lare-egre (attention)', variant: { enhancers: [ENHANCERS['lare-egre']], fuser: FUSERS.attention } },
];

/** The test numbers one row keeps per run: frame AUC per subset, their mean, the group means. */
function testNumbers(report: EvaluationReport): Record<string, number> {
  const out: Record<string, number> = {};
  for (const subset of TEST_SUBSETS) out[subset] = report.subsets[subset]!.auc!;
  out.mean = report.subsets.mean!.auc!;
  for (const [group, values] of Object.entries(report.groups ?? {})) out[group] = values.auc!;
  return out;
}

function asRun(result: RunResult, seed: number, parentRunDir?: string): AblationRun {
  if (result.status !== 'finished' || !result.test) throw new Error(`${result.runDir} ended ${result.status}: ${result.error?.message ?? ''}`);
  return { seed, runDir: result.runDir, ...(parentRunDir ? { parentRunDir } : {}), valAuc: result.selected?.value, test: testNumbers(result.test) };
}

/** LaRE alone: the maps through a linear head; no encoder, no prompt. */
function lareAloneExperiment(options: ClareOptions): ExperimentInCode {
  const root = options.root ?? DEFAULT_DATA_DIR;
  return {
    name: 'clare-ablation.lare-alone',
    seed: options.seed ?? 1,
    pluginObjects: CLARE_PLUGINS,
    dataset: { use: 'df40', config: { root, extras: lareExtras(root) } },
    loader: { use: 'images', config: { size: 64 } },
    detector: { use: 'lare-linear', config: { poolSize: 4 } },
    evaluator: { use: 'df40' },
    data: { test: { subsets: TEST_SUBSETS } },
    trainer: { epochs: options.stage2Epochs ?? 10, batchSize: 32, optimizer: { type: 'adamw', lr: 0.01, weightDecay: 0 }, select: 'val' },
    runsDir: options.runsDir ?? 'runs',
  };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Sample standard deviation (n − 1), 0 for one run. */
const sd = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));

export function summarise(rows: AblationRow[]) {
  return rows.map((row) => {
    const keys = Object.keys(row.runs[0]!.test);
    const stats = Object.fromEntries(keys.map((k) => {
      const xs = row.runs.map((r) => r.test[k]!);
      return [k, { mean: mean(xs), sd: sd(xs) }];
    }));
    const vals = row.runs.map((r) => r.valAuc).filter((v): v is number => v !== undefined);
    return { name: row.name, seeds: row.runs.map((r) => r.seed), val_auc: vals.length ? { mean: mean(vals), sd: sd(vals) } : undefined, test_auc: stats };
  });
}

export function ablationMarkdown(rows: AblationRow[], settings: Record<string, unknown>): string {
  const summary = summarise(rows);
  const cols = [...TEST_SUBSETS, 'mean', 'seen-family', 'unseen-family'];
  const cell = (s?: { mean: number; sd: number }) => (s ? `${s.mean.toFixed(3)} ± ${s.sd.toFixed(3)}` : '—');
  const lines = [
    '# CLaRE ablation on the synthetic mini-DF40 (synthetic data)',
    '',
    `Frame-level test AUC, mean ± sd over seeds ${summary[0]?.seeds.join(', ')}; every run selected on validation (val AUC column).`,
    'seen-family / unseen-family: mean over the 5 test sets whose artefact family the training methods show / the 3 whose family they do not.',
    '',
    `| variant | val AUC | ${cols.join(' | ')} |`,
    `|---|---|${cols.map(() => '---').join('|')}|`,
    ...summary.map((s) => `| ${s.name} | ${cell(s.val_auc)} | ${cols.map((c) => cell(s.test_auc[c])).join(' | ')} |`),
    '',
    `Settings: \`${JSON.stringify(settings)}\``,
    '',
  ];
  return lines.join('\n');
}

export interface AblationOptions extends ClareOptions {
  seeds?: number[];
  log?: (line: string) => void;
}

export async function runAblation(options: AblationOptions): Promise<{ dir: string; rows: AblationRow[] }> {
  const log = options.log ?? (() => {});
  const seeds = options.seeds ?? [1, 2, 3];
  const rows: AblationRow[] = [{ name: 'CoOp', runs: [] }, ...STAGE2_VARIANTS.map((v) => ({ name: v.name, runs: [] }))];
  const stage1Dirs = new Map<number, string>();
  for (const seed of seeds) {
    const base = { ...options, seed };
    log(`seed ${seed}: CoOp (stage 1)`);
    const first = await runExperiment({ ...stage1Experiment(base), name: 'clare-ablation.coop', stage: 'coop' } as ExperimentInCode);
    rows[0]!.runs.push(asRun(first, seed));
    stage1Dirs.set(seed, first.runDir);
    for (const [i, { name, variant }] of STAGE2_VARIANTS.entries()) {
      log(`seed ${seed}: ${name}`);
      const result = await runExperiment({ ...stage2Experiment({ ...base, variant }, first.runDir), name: 'clare-ablation.lare', stage: 'lare' } as ExperimentInCode);
      rows[i + 1]!.runs.push(asRun(result, seed, first.runDir));
    }
  }
  // CoCoOp with the best stage-2 variant, chosen on validation (mean over seeds), never on test.
  const ranked = STAGE2_VARIANTS.map((v, i) => ({ ...v, val: mean(rows[i + 1]!.runs.map((r) => r.valAuc ?? 0)) })).sort((a, b) => b.val - a.val);
  const best = ranked[0]!;
  // The best variant as it is, whatever its fused width: the meta-net is built for that width (vis → vis/16 → ctx).
  const cocoopName = `CoCoOp + ${best.name.replace(/^CoOp \+ /, '')}`;
  const cocoopRow: AblationRow = { name: cocoopName, runs: [] };
  const aloneRow: AblationRow = { name: 'LaRE alone (linear head on the maps)', runs: [] };
  for (const seed of seeds) {
    const base = { ...options, seed, variant: { ...best.variant, learner: 'cocoop' as const } };
    log(`seed ${seed}: ${cocoopName}`);
    const first = await runExperiment({ ...stage1Experiment(base), name: 'clare-ablation.cocoop', stage: 'cocoop' } as ExperimentInCode);
    const result = await runExperiment({ ...stage2Experiment(base, first.runDir), name: 'clare-ablation.cocoop-lare', stage: 'lare' } as ExperimentInCode);
    cocoopRow.runs.push(asRun(result, seed, first.runDir));
    log(`seed ${seed}: LaRE alone`);
    aloneRow.runs.push(asRun(await runExperiment(lareAloneExperiment({ ...options, seed })), seed));
  }
  rows.push(cocoopRow, aloneRow);

  const dir = resolve(options.runsDir ?? 'runs', 'clare-ablation', newRunId());
  mkdirSync(dir, { recursive: true });
  const settings = { seeds, stage1Epochs: options.stage1Epochs, stage2Epochs: options.stage2Epochs, root: options.root, selectedBestByVal: best.name };
  writeFileSync(join(dir, 'ablation.json'), `${JSON.stringify({ data: 'synthetic mini-DF40', settings, summary: summarise(rows), rows }, null, 2)}\n`);
  writeFileSync(join(dir, 'ablation.md'), ablationMarkdown(rows, settings));
  for (const run of rows.flatMap((r) => r.runs)) {
    for (const name of ['ablation.json', 'ablation.md']) {
      try {
        symlinkSync(join(dir, name), join(run.runDir, name));
      } catch {
        // a run directory shared by two rows (none today) keeps its first link
      }
    }
  }
  return { dir, rows };
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string', default: '1,2,3' },
      'stage1-epochs': { type: 'string', default: '30' },
      'stage2-epochs': { type: 'string', default: '10' },
      'runs-dir': { type: 'string', default: 'runs' },
    },
  });
  const { root } = await ensureMiniDf40(process.env.DFD_DATA ?? DEFAULT_DATA_DIR, console.log);
  await ensureLareMaps(root, { log: console.log });
  const { dir } = await runAblation({
    root,
    seeds: values.seeds!.split(',').map(Number),
    stage1Epochs: Number(values['stage1-epochs']),
    stage2Epochs: Number(values['stage2-epochs']),
    runsDir: values['runs-dir'],
    log: (line) => console.log(line),
  });
  const { readFileSync } = await import('node:fs');
  console.log(`\n${readFileSync(join(dir, 'ablation.md'), 'utf8')}`);
  console.log(`written: ${join(dir, 'ablation.md')} and ablation.json`);
}
