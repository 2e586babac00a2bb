/**
 * Sweeps: one parent run and one child run per variant. The parent is a run directory of its own
 * (`runs/<experiment>/<sweep-id>/`, events.jsonl with run-start, one eval event per finished child and
 * end), so trackers and `dfd sync` treat it like any run; every child's run-start carries `parentRunId`
 * (MLflow: `mlflow.parentRunId`), and each child's test metrics are summarised on the parent.
 */
import { resolve as resolvePath } from 'node:path';
import type { Tracker } from '../contracts.js';
import { RunEventBus } from '../events.js';
import { resolveExperiment, type ExperimentInCode } from '../experiment.js';
import { createRunDirectory, recordEvents, writeRecordJson } from './run-directory.js';
import { runExperiment, type RunOptions, type RunResult } from './runner.js';

export interface SweepResult {
  sweepId: string;
  sweepDir: string;
  children: RunResult[];
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
  const bus = new RunEventBus();
  const recording = recordEvents(bus.events$, parent);
  for (const tracker of options.sweepTrackers ?? []) {
    await tracker.attach(bus.events$, { runId: parent.runId, experiment: experiment.name, runDir: parent.dir });
  }
  const config = { sweep: variants, base: { ...base, pluginObjects: undefined } };
  writeRecordJson(parent, 'config.json', config); // written whole (or the sweep fails), as for every run
  bus.emit({
    type: 'run-start',
    runId: parent.runId,
    experiment: experiment.name,
    runName: `${experiment.name}-sweep-${parent.runId}`,
    runDir: parent.dir,
    config,
    tags: { 'dfd.sweep': 'parent', 'dfd.sweep.size': String(variants.length) },
    datasets: [],
    totalSteps: 0,
  });
  const children: RunResult[] = [];
  let failed: Error | undefined;
  try {
    for (const [index, variant] of variants.entries()) {
      const definition = mergeVariant(base, { ...variant.overrides, name: `${experiment.name}.${variant.name}` });
      const result = await runExperiment(definition, { ...options, parentRunId: parent.runId });
      children.push(result);
      if (result.test) {
        bus.emit({
          type: 'eval',
          split: 'test',
          step: index + 1,
          epoch: 0,
          report: { overall: Object.fromEntries(Object.entries(result.test.overall).map(([k, v]) => [`${variant.name}/${k}`, v])), subsets: {}, protocol: result.test.protocol },
        });
      }
    }
  } catch (error) {
    failed = error as Error;
  }
  bus.emit({ type: 'end', status: failed ? 'failed' : 'finished', step: children.length, ...(failed ? { error: failed.message } : {}) });
  for (const tracker of options.sweepTrackers ?? []) await tracker.close().catch(() => undefined);
  recording.unsubscribe();
  if (failed) throw failed;
  return { sweepId: parent.runId, sweepDir: parent.dir, children };
}
