/**
 * Sweeps: one parent run and one child run per variant. The parent is a run directory of its own
 * (`runs/<experiment>/<sweep-id>/`, events.jsonl with run-start, one eval event per finished child and
 * end), so trackers and `dfd sync` treat it like any run; every child's run-start carries `parentRunId`
 * (MLflow: `mlflow.parentRunId`). The parent ranks the children on validation only (`sweep-summary.json`,
 * `val/<child>/<metric>` per child), names the chosen one and records only the chosen child's test metrics
 * (`test/...` on the parent): choosing by test would be tuning on the test set.
 */
import { join, resolve as resolvePath } from 'node:path';
import type { Tracker } from '../contracts.js';
import { RunEventBus, type EventInput, type RunStartEvent } from '../events.js';
import { resolveExperiment, type ExperimentInCode, type ResolvedExperiment } from '../experiment.js';
import { createRunDirectory, recordEvents, writeJson, writeRecordJson, type RunDirectory } from './run-directory.js';
import { runExperiment, type RunOptions, type RunResult } from './runner.js';
import { summariseSweep, type SweepChild, type SweepSelection, type SweepSummary } from './sweep-summary.js';

export interface SweepResult {
  sweepId: string;
  sweepDir: string;
  children: RunResult[];
  /** Children ranked on validation, the chosen one and its test metrics. */
  summary: SweepSummary;
}

/** How a sweep over `experiment` ranks its children: the experiment's own validation selection metric. */
export function sweepSelection(experiment: ResolvedExperiment): SweepSelection {
  return { metric: experiment.trainer.selectMetric, mode: experiment.trainer.selectMode };
}

/**
 * Records a sweep's summary on its parent's event stream: one `val` point per ranked child
 * (`val/<child>/<metric>`), then the chosen child's test report as the parent's `test/...`, and
 * `sweep-summary.json` in the parent's run directory.
 */
export function emitSweepSummary(bus: RunEventBus, parentDir: string, summary: SweepSummary, order: string[]): void {
  const { metric } = summary.selection;
  for (const entry of summary.ranking) {
    bus.emit({ type: 'eval', split: 'val', step: order.indexOf(entry.name) + 1, epoch: 0, report: { overall: { [`${entry.name}/${metric}`]: entry.val }, subsets: {}, protocol: { selection: 'val' } } });
  }
  const chosen = summary.chosen;
  if (chosen?.test) {
    bus.emit({
      type: 'eval',
      split: 'test',
      step: order.indexOf(chosen.name) + 1,
      epoch: 0,
      report: { ...chosen.test, protocol: { selection: 'val', select_metric: metric, chosen: chosen.name, chosen_run: chosen.runId } },
    });
  }
  const path = join(parentDir, 'sweep-summary.json');
  writeJson(path, summary);
  bus.emit({ type: 'artifact', path, name: 'sweep-summary.json' });
}

function asSweepChild(name: string, result: RunResult): SweepChild {
  return { name, runId: result.runId, runDir: result.runDir, status: result.status, ...(result.selected ? { selected: result.selected } : {}), ...(result.test ? { test: result.test } : {}) };
}

/** Deep-merges a variant over the base definition (objects merge, arrays and scalars replace). */
export function mergeVariant<T>(base: T, variant: Record<string, unknown>): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(variant)) {
    const current = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object' && !Array.isArray(current)
        ? mergeVariant(current, value as Record<string, unknown>)
        : value;
  }
  return out as T;
}

/** The sweep parent's run-start (local and Slurm sweeps): a run of its own, tagged with its size and how it chooses. */
export function sweepParentStart(
  parent: RunDirectory,
  experiment: string,
  config: Record<string, unknown>,
  size: number,
  selection: SweepSelection,
  tags: Record<string, string> = {},
): EventInput<RunStartEvent> {
  return {
    type: 'run-start',
    runId: parent.runId,
    experiment,
    runName: `${experiment}-sweep-${parent.runId}`,
    runDir: parent.dir,
    config,
    tags: { 'dfd.sweep': 'parent', 'dfd.sweep.size': String(size), 'dfd.sweep.select': `val/${selection.metric} (${selection.mode})`, ...tags },
    datasets: [],
    totalSteps: 0,
  };
}

/**
 * Runs `variants` (each a partial experiment merged over `base`) one after another. `options.trackers`
 * are attached to the parent and to every child (a tracker instance per run is created by the experiment's
 * own `tracking` list).
 */
export async function runSweep(
  base: ExperimentInCode,
  variants: Array<{ name: string; overrides: Record<string, unknown> }>,
  options: RunOptions & { sweepTrackers?: Tracker[] } = {},
): Promise<SweepResult> {
  const experiment = resolveExperiment(base);
  const cwd = options.cwd ?? process.cwd();
  const parent = createRunDirectory(resolvePath(cwd, experiment.runsDir), experiment.name);
  const selection = sweepSelection(experiment);
  const bus = new RunEventBus();
  const recording = recordEvents(bus.events$, parent);
  for (const tracker of options.sweepTrackers ?? []) {
    await tracker.attach(bus.events$, { runId: parent.runId, experiment: experiment.name, runDir: parent.dir });
  }
  const config = { sweep: variants, base: { ...base, pluginObjects: undefined } };
  writeRecordJson(parent, 'config.json', config); // written whole (or the sweep fails), as for every run
  bus.emit(sweepParentStart(parent, experiment.name, config, variants.length, selection));
  const children: RunResult[] = [];
  let failed: Error | undefined;
  try {
    for (const variant of variants) {
      const definition = mergeVariant(base, { ...variant.overrides, name: `${experiment.name}.${variant.name}` });
      children.push(await runExperiment(definition, { ...options, parentRunId: parent.runId }));
    }
  } catch (error) {
    failed = error as Error;
  }
  const names = variants.map((v) => v.name);
  const summary = summariseSweep(children.map((child, i) => asSweepChild(names[i]!, child)), selection);
  emitSweepSummary(bus, parent.dir, summary, names);
  bus.emit({ type: 'end', status: failed ? 'failed' : 'finished', step: children.length, ...(failed ? { error: failed.message } : {}) });
  for (const tracker of options.sweepTrackers ?? []) await tracker.close().catch(() => undefined);
  recording.unsubscribe();
  if (failed) throw failed;
  return { sweepId: parent.runId, sweepDir: parent.dir, children, summary };
}
