/**
 * `dfd slurm sweep experiment.ts --grid key=v1,v2 ...`: one array task per configuration of the grid, each
 * a normal run (its own run directory, its own tracker runs) whose `parentRunId` is the sweep's parent run,
 * then a summary job that ranks the children on validation only (core's `summariseSweep`), names the chosen
 * one and records its test metrics on the parent.
 *
 * The parent is a run directory like any other (`<runsDir>/<experiment>/<sweep-id>/`): run-start is written
 * at submission, the ranking and the end by the summary job; `sweep.json` beside it lists the
 * configurations, which is all a task needs. A retried task finds its earlier run (same configuration,
 * same parent) and resumes it from its last checkpoint, or does nothing if it finished.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Subject } from 'rxjs';
import {
  applyOverrides,
  buildRegistry,
  createRunDirectory,
  discoverPlugins,
  ExperimentContainer,
  emitSweepSummary,
  formatSweepSummary,
  importPlugins,
  instantiateComponent,
  loadExperimentFile,
  mergeVariant,
  readEvents,
  readSweepChild,
  recordEvents,
  writeRecordJson,
  resolveExperiment,
  resolveSlots,
  resumeRun,
  runExperiment,
  RunEventBus,
  summariseSweep,
  sweepParentStart,
  sweepSelection,
  UsageError,
  openRunDirectory,
  type CliIO,
  type ExperimentInCode,
  type Plugin,
  type RunEvent,
  type RunResult,
  type SweepSelection,
  type Tracker,
} from '@dfd/core';

export interface SweepConfiguration {
  /** Readable, filesystem-safe and a valid experiment name: `lr-0.01_epochs-2`. */
  name: string;
  /** `--set` assignments of this configuration (from --grid). */
  sets: string[];
  /** A partial experiment merged over the base (from a --variants file, as core's `runSweep` takes them). */
  overrides?: Record<string, unknown>;
}

/** This configuration's experiment: the base with its assignments and overrides. */
export function configure(base: ExperimentInCode, configuration: SweepConfiguration): ExperimentInCode {
  return mergeVariant(applyOverrides(base, configuration.sets), configuration.overrides ?? {});
}

/**
 * `--variants FILE`: a sweep defined in code or JSON, `[{ name, overrides }]` (the default export of a .ts/.js
 * module, or a .json file), for values a --grid cannot spell (objects, arrays, whole components).
 */
export async function loadVariants(path: string): Promise<SweepConfiguration[]> {
  const value = (await loadExperimentFile(path)) as unknown;
  const valid = Array.isArray(value) && value.length > 0 && value.every((v) => v && typeof v === 'object' && typeof v.name === 'string' && v.overrides && typeof v.overrides === 'object');
  if (!valid) throw new UsageError(`${path} must export (default) a non-empty array of { name, overrides } variants, as runSweep takes`);
  const variants = value as Array<{ name: string; overrides: Record<string, unknown> }>;
  const named = variants.map((v) => ({ name: v.name.replace(/[^A-Za-z0-9._-]/g, '-'), sets: [], overrides: JSON.parse(JSON.stringify(v.overrides)) as Record<string, unknown> }));
  if (new Set(named.map((v) => v.name)).size !== named.length) throw new UsageError(`${path}: two variants have the same name`);
  return named;
}

export interface SweepFile {
  sweepId: string;
  experiment: string;
  /** The experiment's name (children are `<name>.<configuration>`). */
  name: string;
  runsDir: string;
  /** `--set` assignments shared by every configuration. */
  sets: string[];
  configurations: SweepConfiguration[];
  selection: SweepSelection;
}

/** `--grid trainer.optimizer.lr=0.1,0.01 --grid trainer.epochs=1,2` → the cartesian product, first key slowest. */
export function expandGrid(grids: string[]): SweepConfiguration[] {
  if (!grids.length) throw new UsageError('give at least one --grid key.path=v1,v2 (or --variants FILE)');
  let configs: Array<{ parts: string[]; sets: string[] }> = [{ parts: [], sets: [] }];
  for (const grid of grids) {
    const eq = grid.indexOf('=');
    if (eq <= 0) throw new UsageError(`--grid expects key.path=v1,v2,..., got '${grid}'`);
    const key = grid.slice(0, eq);
    const values = grid.slice(eq + 1).split(',').filter((v) => v !== '');
    if (!values.length) throw new UsageError(`--grid ${key} has no values`);
    const short = key.split('.').pop()!;
    configs = configs.flatMap((c) => values.map((v) => ({ parts: [...c.parts, `${short}-${v}`], sets: [...c.sets, `${key}=${v}`] })));
  }
  const named = configs.map((c) => ({ name: c.parts.join('_').replace(/[^A-Za-z0-9._-]/g, '-'), sets: c.sets }));
  const names = new Set(named.map((c) => c.name));
  if (names.size !== named.length) throw new UsageError('two grid configurations get the same name; give the grid keys distinct last segments');
  return named;
}

export function readSweepFile(parentDir: string): SweepFile {
  const path = join(parentDir, 'sweep.json');
  if (!existsSync(path)) throw new UsageError(`${parentDir} is not a dfd slurm sweep (no sweep.json)`);
  return JSON.parse(readFileSync(path, 'utf8')) as SweepFile;
}

/** Plugins as `dfd run` sees them: the definition's own objects and packages, and every installed @dfd package. */
async function pluginsFor(definition: ExperimentInCode, io: CliIO): Promise<Plugin[]> {
  const discovered = (await discoverPlugins(io.cwd, io.env)).plugins;
  const objects = [...(definition.pluginObjects ?? [])];
  for (const plugin of discovered) if (!objects.some((p) => p.name === plugin.name)) objects.push(plugin);
  const named = (definition.plugins ?? []).filter((name) => !objects.some((p) => p.name === name));
  return [...objects, ...(await importPlugins(named, io.cwd))];
}

export interface SweepRequest {
  experimentPath: string;
  sets: string[];
  grids: string[];
  variants?: string;
  runsDir?: string;
}

/**
 * Validates every configuration, then writes the parent run (run-start) and sweep.json, and sends the
 * parent to the experiment's trackers. A dry run validates only: no run directory, nothing tracked.
 */
export async function createSweepParent(request: SweepRequest, io: CliIO, dryRun = false): Promise<SweepFile & { dir: string }> {
  const { experimentPath, sets } = request;
  const source = { grids: request.grids, variants: request.variants };
  const runsDirArg = request.runsDir;
  if (source.variants && source.grids.length) throw new UsageError('give either --grid or --variants, not both');
  const configurations = source.variants ? await loadVariants(resolve(io.cwd, source.variants)) : expandGrid(source.grids);
  const experimentFile = resolve(io.cwd, experimentPath);
  let definition = applyOverrides(await loadExperimentFile(experimentFile), sets);
  const runsDir = resolve(io.cwd, runsDirArg ?? definition.runsDir ?? 'runs');
  definition = { ...definition, runsDir };
  // Every configuration must be a valid experiment before anything is submitted.
  for (const c of configurations) resolveExperiment(configure(definition, c));
  const experiment = resolveExperiment(definition);
  const selection = sweepSelection(experiment);
  if (dryRun) {
    const sweepId = '<sweep-id>';
    return { sweepId, experiment: experimentFile, name: experiment.name, runsDir, sets, configurations, selection, dir: join(runsDir, experiment.name, sweepId) };
  }
  const parent = createRunDirectory(runsDir, experiment.name);
  const sweep: SweepFile = { sweepId: parent.runId, experiment: experimentFile, name: experiment.name, runsDir, sets, configurations, selection };
  const config = { sweep: configurations, sets, experimentFile, selection };
  // Written here, whole (the event recorder does not write it): openRunDirectory (the summary job) needs it.
  writeRecordJson(parent, 'config.json', config);
  const bus = new RunEventBus();
  const recording = recordEvents(bus.events$, parent);
  bus.emit(sweepParentStart(parent, experiment.name, config, configurations.length, selection, { 'dfd.sweep.engine': 'slurm' }));
  recording.unsubscribe();
  writeFileSync(join(parent.dir, 'sweep.json'), `${JSON.stringify(sweep, null, 2)}\n`);
  // The parent exists in the trackers (MLflow) before any task starts: tasks running at once in separate
  // processes would otherwise each create a placeholder parent of their own.
  await mirrorParent(parent.dir, parent.runId, experiment.name, await parentTrackers(sweep, io), io);
  return { ...sweep, dir: parent.dir };
}

/** The run directories of one configuration's child runs in this sweep (oldest first). */
export function childRunDirs(sweep: SweepFile, configuration: SweepConfiguration): string[] {
  const folder = join(sweep.runsDir, `${sweep.name}.${configuration.name}`);
  if (!existsSync(folder)) return [];
  return readdirSync(folder)
    .sort()
    .map((id) => join(folder, id))
    .filter((dir) => {
      const start = readEvents(dir).find((e) => e.type === 'run-start');
      return start?.type === 'run-start' && start.parentRunId === sweep.sweepId;
    });
}

function lastStatus(dir: string): string | undefined {
  const end = readEvents(dir).findLast((e) => e.type === 'end');
  return end?.type === 'end' ? end.status : undefined;
}

/** Ctrl-C / scancel's SIGTERM: the run stops at the next step with a resumable checkpoint. */
function abortOnSignals(): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { signal: controller.signal, release: () => (process.off('SIGINT', onSignal), process.off('SIGTERM', onSignal)) };
}

/** One array task: configuration `index` as a child run (fresh, resumed, or already done). */
export async function runSweepTask(parentDir: string, index: number, io: CliIO): Promise<number> {
  const sweep = readSweepFile(parentDir);
  const configuration = sweep.configurations[index];
  if (!configuration) throw new UsageError(`${parentDir} has ${sweep.configurations.length} configurations; no index ${index}`);
  const earlier = childRunDirs(sweep, configuration);
  if (earlier.some((dir) => lastStatus(dir) === 'finished')) {
    io.stdout.write(`sweep task ${index} (${configuration.name}): already finished in ${earlier.find((d) => lastStatus(d) === 'finished')}\n`);
    return 0;
  }
  const base = configure(applyOverrides(await loadExperimentFile(sweep.experiment), sweep.sets), configuration);
  const definition: ExperimentInCode = { ...base, name: `${sweep.name}.${configuration.name}`, runsDir: sweep.runsDir };
  const plugins = await pluginsFor(definition, io);
  const resumable = earlier.findLast((dir) => existsSync(join(dir, 'checkpoints', 'last.safetensors')));
  const abort = abortOnSignals();
  let result: RunResult;
  try {
    const options = { plugins, signal: abort.signal, cwd: io.cwd, parentRunId: sweep.sweepId, progress: false };
    io.stdout.write(`sweep task ${index} (${configuration.name}): ${resumable ? `resuming ${resumable}` : 'new run'}\n`);
    result = resumable ? await resumeRun(resumable, { ...options, plugins: [...plugins, ...(definition.pluginObjects ?? [])] }) : await runExperiment(definition, options);
  } finally {
    abort.release();
  }
  io.stdout.write(`sweep task ${index} (${configuration.name}): ${result.status} in ${result.runDir}` + (result.selected?.value !== undefined ? `, val/${result.selected.metric}=${result.selected.value}` : '') + '\n');
  return result.status === 'finished' ? 0 : result.status === 'killed' ? 143 : 1;
}

/** Builds the experiment's own trackers (e.g. MLflow), to mirror the parent run there as well. */
async function parentTrackers(sweep: SweepFile, io: CliIO): Promise<Tracker[]> {
  const definition = { ...applyOverrides(await loadExperimentFile(sweep.experiment), sweep.sets), runsDir: sweep.runsDir };
  const experiment = resolveExperiment(definition);
  if (!experiment.tracking.length) return [];
  const registry = buildRegistry(await pluginsFor(definition, io));
  const container = ExperimentContainer.create();
  return resolveSlots(experiment, registry).tracking.map((slot) => instantiateComponent<Tracker>(container, registry, 'tracker', slot.use, slot.config));
}

/**
 * Replays the parent's record so far to its trackers. Trackers are idempotent (the MLflow one finds the run by
 * its dfd.runId and continues it), so this runs at submission (run-start) and again after the summary (all).
 */
async function mirrorParent(dir: string, runId: string, experiment: string, trackers: Tracker[], io: CliIO): Promise<void> {
  const events = new Subject<RunEvent>();
  for (const tracker of trackers) {
    try {
      await tracker.attach(events.asObservable(), { runId, experiment, runDir: dir });
    } catch (error) {
      io.stderr.write(`sweep parent: tracker ${tracker.name} not attached: ${(error as Error).message}\n`);
    }
  }
  for (const event of readEvents(dir)) events.next(event);
  events.complete();
  for (const tracker of trackers) await tracker.close().catch((error: Error) => io.stderr.write(`sweep parent: tracker ${tracker.name}: ${error.message}\n`));
}

/** The summary job: rank on validation, record the choice on the parent, end the parent run. */
export async function runSweepSummary(parentDir: string, io: CliIO): Promise<number> {
  const sweep = readSweepFile(parentDir);
  const parent = openRunDirectory(parentDir);
  if (readEvents(parent.dir).some((e) => e.type === 'end')) {
    io.stdout.write(`${parent.dir} is already summarised:\n`);
    io.stdout.write(formatSweepSummary(JSON.parse(readFileSync(join(parent.dir, 'sweep-summary.json'), 'utf8'))));
    return 0;
  }
  const children = sweep.configurations.map((c) => {
    const dirs = childRunDirs(sweep, c);
    return readSweepChild(c.name, dirs.find((d) => lastStatus(d) === 'finished') ?? dirs.at(-1));
  });
  const summary = summariseSweep(children, sweep.selection);
  const bus = new RunEventBus();
  const recording = recordEvents(bus.events$, parent);
  emitSweepSummary(bus, parent.dir, summary, sweep.configurations.map((c) => c.name));
  const unfinished = children.filter((c) => c.status !== 'finished').length;
  bus.emit({ type: 'end', status: unfinished === children.length ? 'failed' : 'finished', step: children.length, ...(unfinished ? { error: `${unfinished} child run(s) did not finish` } : {}) });
  recording.unsubscribe();
  await mirrorParent(parent.dir, sweep.sweepId, sweep.name, await parentTrackers(sweep, io), io);
  io.stdout.write(formatSweepSummary(summary));
  return summary.chosen ? 0 : 1;
}
