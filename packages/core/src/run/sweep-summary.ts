/**
 * The summary of a sweep: children ranked by the validation metric their own runs selected on, the chosen
 * child named, and only the chosen child's test metrics reported. Test metrics never enter the ranking:
 * picking the configuration with the best test score is tuning on the test set, and its test number is
 * then an optimistic estimate, not a measurement. Used by `runSweep` (local) and `dfd slurm sweep` (Slurm).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EvaluationReport, MetricValues } from '../contracts.js';
import type { RunStatus } from '../events.js';
import { readEvents } from './run-directory.js';

export interface SweepChild {
  /** The variant's name, e.g. `lr=0.01,epochs=2`. */
  name: string;
  runId?: string;
  runDir?: string;
  status: RunStatus | 'missing';
  /** What the child's own run selected on validation (`selected.json`). */
  selected?: { by: 'val' | 'last'; step: number; metric?: string; value?: number };
  /** The child's test report (only the chosen child's is reported). */
  test?: EvaluationReport;
}

export interface SweepSelection {
  /** The validation metric to rank by, e.g. `auc` (the experiment's `trainer.selectMetric`). */
  metric: string;
  /** `max` for AUC/AP/accuracy, `min` for EER or a loss (the experiment's `trainer.selectMode`). */
  mode: 'max' | 'min';
}

export interface SweepSummary {
  selection: SweepSelection & { split: 'val' };
  /** Ranked best first, by validation only. */
  ranking: Array<{ name: string; runId: string; runDir: string; val: number }>;
  /** The best child on validation; absent when no child could be ranked. */
  chosen?: { name: string; runId: string; runDir: string; val: number; test?: { overall: MetricValues; subsets: Record<string, MetricValues> } };
  /** Children left out of the ranking, with why (failed, no validation data, another metric). */
  unranked: Array<{ name: string; reason: string }>;
}

function whyUnranked(child: SweepChild, selection: SweepSelection): string | undefined {
  if (child.status !== 'finished') return `run ${child.status}`;
  if (!child.selected || child.selected.by !== 'val') return 'no validation selection (selected the last checkpoint; no validation data?)';
  if (child.selected.metric !== selection.metric) return `selected on '${child.selected.metric}', not '${selection.metric}'`;
  if (typeof child.selected.value !== 'number' || !Number.isFinite(child.selected.value)) return `validation ${selection.metric} is ${child.selected.value}`;
  return undefined;
}

export function summariseSweep(children: SweepChild[], selection: SweepSelection): SweepSummary {
  const unranked: SweepSummary['unranked'] = [];
  const ranking: SweepSummary['ranking'] = [];
  for (const child of children) {
    const reason = whyUnranked(child, selection);
    if (reason) unranked.push({ name: child.name, reason });
    else ranking.push({ name: child.name, runId: child.runId!, runDir: child.runDir!, val: child.selected!.value! });
  }
  // Stable: ties keep the sweep's order, so the first configuration listed wins a tie.
  ranking.sort((a, b) => (selection.mode === 'max' ? b.val - a.val : a.val - b.val));
  const best = ranking[0];
  const bestChild = best && children.find((c) => c.name === best.name);
  const summary: SweepSummary = { selection: { ...selection, split: 'val' }, ranking, unranked };
  if (best) {
    summary.chosen = { ...best, ...(bestChild?.test ? { test: { overall: bestChild.test.overall, subsets: bestChild.test.subsets } } : {}) };
  }
  return summary;
}

/** Reads a finished (or failed) child from its run directory: status, selection, test report. */
export function readSweepChild(name: string, runDir: string | undefined): SweepChild {
  if (!runDir || !existsSync(join(runDir, 'events.jsonl'))) return { name, status: 'missing', ...(runDir ? { runDir } : {}) };
  const events = readEvents(runDir);
  const start = events.find((e) => e.type === 'run-start');
  const end = events.findLast((e) => e.type === 'end');
  const test = events.findLast((e) => e.type === 'eval' && e.split === 'test');
  const selectedPath = join(runDir, 'selected.json');
  const selected = existsSync(selectedPath) ? (JSON.parse(readFileSync(selectedPath, 'utf8')) as SweepChild['selected']) : undefined;
  return {
    name,
    runDir,
    runId: start?.type === 'run-start' ? start.runId : runDir.split('/').pop(),
    status: end?.type === 'end' ? end.status : 'failed',
    ...(selected ? { selected: { by: selected.by, step: selected.step, metric: selected.metric, value: selected.value } } : {}),
    ...(test?.type === 'eval' ? { test: test.report } : {}),
  };
}

/** A few readable lines: the ranking on validation, the chosen child, its test metrics. */
export function formatSweepSummary(summary: SweepSummary): string {
  const { metric, mode } = summary.selection;
  const lines = [`sweep: ranked on validation ${metric} (${mode === 'max' ? 'higher' : 'lower'} is better); test metrics never rank`];
  summary.ranking.forEach((r, i) => lines.push(`  ${i + 1}. ${r.name}  val/${metric}=${r.val.toFixed(4)}  ${r.runDir}`));
  for (const u of summary.unranked) lines.push(`  -  ${u.name}  not ranked: ${u.reason}`);
  if (summary.chosen) {
    lines.push(`chosen: ${summary.chosen.name} (val/${metric}=${summary.chosen.val.toFixed(4)})`);
    const test = summary.chosen.test?.overall;
    lines.push(test ? `chosen's test: ${Object.entries(test).map(([k, v]) => `${k}=${Number.isFinite(v) ? v.toFixed(4) : v}`).join(' ')}` : "chosen's test: none recorded");
  } else {
    lines.push('chosen: none (no child finished with a validation selection)');
  }
  return `${lines.join('\n')}\n`;
}
