/**
 * Runs one experiment end to end: validate → run directory → assemble in a child container → train with
 * selection on validation → load the selected weights → evaluate once on test → report → end event.
 * `resumeRun` continues a killed run from its `last` checkpoint to the same weights.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { config as rxjsConfig, type Subscription } from 'rxjs';
import * as tf from '@tensorflow/tfjs';
import type { BatchSource, Detector, EvaluationReport, Sample, ScoredSet, SkipCount, Split, Tracker } from '../contracts.js';
import { RunEventBus, type RunStatus } from '../events.js';
import { resolveExperiment, type ExperimentInCode, type ResolvedExperiment } from '../experiment.js';
import type { Plugin } from '../plugin.js';
import { Rng, rngFor } from '../rng.js';
import { TOKENS } from '../di.js';
import { describeBackend, ensureBackend } from '../backend.js';
import { Trainer } from '../train/trainer.js';
import { loadCheckpoint, restoreModel } from '../train/checkpoint.js';
import { assemble, buildRegistry, importPlugins, resolveSlots, type AssembledExperiment, type ResolvedSlots } from './assemble.js';
import { createRunDirectory, openRunDirectory, readEvents, recordEvents, writeJson, type RunDirectory } from './run-directory.js';
import { attachProgress } from './progress.js';
import { collectRunTags } from './tags.js';
import { applyInit, readInitRecord, writeInitRecord, type InitRecord } from './init-weights.js';

export interface RunOptions {
  /** Plugin objects in addition to `definition.pluginObjects` and the packages named in `definition.plugins`. */
  plugins?: Plugin[];
  /** Abort = Ctrl-C: the loop stops at the next step, saves a resumable checkpoint, ends as `killed`. */
  signal?: AbortSignal;
  /** Extra trackers (in addition to `definition.tracking`). */
  trackers?: Tracker[];
  /** Console progress: true = stderr (bar on a TTY, plain lines otherwise), false = none, or a stream. */
  progress?: boolean | NodeJS.WritableStream;
  /** Where relative paths (runsDir, plugin packages) are resolved. */
  cwd?: string;
  parentRunId?: string;
}

export interface RunResult {
  runId: string;
  runDir: string;
  status: RunStatus;
  steps: number;
  /** The test report, when the run got that far. */
  test?: EvaluationReport;
  /** Which weights were evaluated on test. */
  selected?: { by: 'val' | 'last'; step: number; metric?: string; value?: number };
  error?: Error;
}

/** Context components can inject with `@inject(TOKENS.RunContext)`. */
export interface RunContext {
  runId: string;
  runDir: string;
  experiment: string;
  seed: number;
  /** Report a warning on the run's event stream (shown, logged, tracked). */
  warn(source: string, message: string): void;
}

const activeBuses = new Set<RunEventBus>();
let unhandledHookInstalled = false;

/**
 * rxjs reports an error thrown inside a subscriber's handler asynchronously (it would crash the process).
 * A tracker must never stop training, so such errors become warning events on the active runs.
 * Installed only if the application has not set its own handler.
 */
function installTrackerErrorBackstop(): void {
  if (unhandledHookInstalled || rxjsConfig.onUnhandledError) return;
  unhandledHookInstalled = true;
  rxjsConfig.onUnhandledError = (error: unknown) => {
    const message = `an event subscriber (tracker) threw: ${(error as Error)?.message ?? String(error)}`;
    if (activeBuses.size === 0) {
      process.emitWarning(message);
      return;
    }
    for (const bus of activeBuses) bus.emit({ type: 'warning', source: 'tracker', message });
  };
}

async function collectPlugins(definition: ExperimentInCode, options: RunOptions, cwd: string): Promise<Plugin[]> {
  const objects = [...(definition.pluginObjects ?? []), ...(options.plugins ?? [])];
  const objectNames = new Set(objects.map((p) => p.name));
  const named = (definition.plugins ?? []).filter((name) => !objectNames.has(name));
  return [...objects, ...(await importPlugins(named, cwd))];
}

/** The resolved configuration recorded in config.json: every component with its validated config. */
function recordedConfig(experiment: ResolvedExperiment, slots: ResolvedSlots, plugins: Plugin[]): Record<string, unknown> {
  return {
    ...experiment,
    plugins: [...new Set([...experiment.plugins, ...plugins.map((p) => p.name)])],
    dataset: slots.dataset,
    loader: slots.loader,
    encoder: slots.encoder,
    promptLearner: slots.promptLearner,
    enhancers: slots.enhancers,
    fuser: slots.fuser,
    detector: slots.detector,
    evaluator: slots.evaluator,
    tracking: slots.tracking,
  };
}

/** The ComponentRef form of a recorded slot (for re-running a recorded config). */
function asRef(slot: { use: string; config: Record<string, unknown> } | undefined) {
  return slot ? { use: slot.use, config: slot.config } : undefined;
}

/** Turns a recorded config.json back into an experiment definition (for resume and predict). */
export function definitionFromRecorded(recorded: Record<string, unknown>): ResolvedExperiment {
  const r = recorded as Record<string, any>;
  return resolveExperiment({
    name: r.name,
    description: r.description,
    seed: r.seed,
    plugins: r.plugins,
    backend: r.backend,
    dataset: asRef(r.dataset)!,
    loader: asRef(r.loader),
    encoder: asRef(r.encoder),
    promptLearner: asRef(r.promptLearner),
    enhancers: (r.enhancers ?? []).map(asRef),
    fuser: asRef(r.fuser),
    detector: asRef(r.detector)!,
    evaluator: asRef(r.evaluator)!,
    data: r.data,
    trainer: r.trainer,
    tracking: (r.tracking ?? []).map(asRef),
    runsDir: r.runsDir,
    ...(r.init ? { init: r.init } : {}),
    ...(r.stage ? { stage: r.stage } : {}),
    ...(r.predict ? { predict: r.predict } : {}),
  });
}

/** The subsets of a split: the experiment's choice, else for test the evaluator's protocol subsets (DF40's 8). */
function subsetsOf(assembled: AssembledExperiment, experiment: ResolvedExperiment, split: Split): string[] | undefined {
  return experiment.data[split].subsets ?? (split === 'test' ? assembled.evaluator.subsets : undefined);
}

async function listSamples(assembled: AssembledExperiment, experiment: ResolvedExperiment, split: Split): Promise<Sample[]> {
  const selection = experiment.data[split];
  const samples = await assembled.dataset.samples({ split, subsets: subsetsOf(assembled, experiment, split) });
  if (selection.limit !== undefined && samples.length > selection.limit) {
    // A seeded subset, stable across runs, in listing order (so evaluation order stays readable).
    const keep = new Set(rngFor(experiment.seed, `limit/${split}`).shuffle([...samples.keys()]).slice(0, selection.limit));
    return samples.filter((_, index) => keep.has(index));
  }
  return samples;
}

/**
 * The loader's policy skips of evaluation splits as protocol facts of the test report, e.g.
 * `test_skipped_no_extras: 3` and `test_skipped_no_extras_subsets: "heygen:2, stargan:1"`.
 */
export function skipFacts(counts: SkipCount[], splits: Split[]): Record<string, string | number> {
  const facts: Record<string, string | number> = {};
  const groups = new Map<string, SkipCount[]>();
  for (const count of counts) {
    if (!splits.includes(count.split) || count.count === 0) continue;
    const key = `${count.split}_skipped_${count.reason.replace(/[^a-z0-9]+/gi, '_')}`;
    groups.set(key, [...(groups.get(key) ?? []), count]);
  }
  for (const [key, group] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    facts[key] = group.reduce((sum, c) => sum + c.count, 0);
    facts[`${key}_subsets`] = group
      .sort((a, b) => a.subset.localeCompare(b.subset))
      .map((c) => `${c.subset}:${c.count}`)
      .join(', ');
  }
  return facts;
}

/** Scores every sample of a source with the detector in eval mode. */
export async function scoreSource(detector: Detector, source: BatchSource): Promise<ScoredSet & { paths: string[] }> {
  const scores: number[] = [];
  const labels: number[] = [];
  const subsets: string[] = [];
  const videoIds: string[] = [];
  const paths: string[] = [];
  for await (const batch of source.batches(0)) {
    const probabilities = tf.tidy(() => detector.probabilities(detector.forward(batch, false)));
    const values = await probabilities.data();
    probabilities.dispose();
    batch.samples.forEach((sample, i) => {
      scores.push(values[i]!);
      labels.push(sample.label);
      subsets.push(sample.subset);
      videoIds.push(sample.videoId);
      paths.push(sample.path);
    });
    batch.dispose();
  }
  return { scores, labels, subsets, videoIds, paths };
}

function csvField(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

async function writeScoresCsv(path: string, scored: ScoredSet & { paths: string[] }): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  const lines = ['path,subset,video,label,score'];
  for (let i = 0; i < scored.paths.length; i++) {
    lines.push(
      [csvField(scored.paths[i]!), csvField(scored.subsets![i]!), csvField(scored.videoIds![i]!), String(scored.labels[i]), String(scored.scores[i])].join(','),
    );
  }
  await writeFile(path, `${lines.join('\n')}\n`);
}

interface Execution {
  experiment: ResolvedExperiment;
  plugins: Plugin[];
  run: RunDirectory;
  resumeFrom?: string;
}

async function execute(execution: Execution, options: RunOptions): Promise<RunResult> {
  const { experiment, plugins, run } = execution;
  installTrackerErrorBackstop();
  const registry = buildRegistry(plugins);
  const slots = resolveSlots(experiment, registry);
  const backend = await ensureBackend(experiment.backend);
  const bus = new RunEventBus();
  activeBuses.add(bus);
  const subscriptions: Subscription[] = [recordEvents(bus.events$, run)];
  const progress = options.progress ?? false;
  if (progress) subscriptions.push(attachProgress(bus.events$, progress === true ? process.stderr : progress));

  const context: RunContext = {
    runId: run.runId,
    runDir: run.dir,
    experiment: experiment.name,
    seed: experiment.seed,
    warn: (source, message) => bus.emit({ type: 'warning', source, message }),
  };
  let assembled: AssembledExperiment | undefined;
  let trainer: Trainer | undefined;
  const trackers: Tracker[] = [];
  const result: RunResult = { runId: run.runId, runDir: run.dir, status: 'failed', steps: 0 };
  try {
    assembled = assemble(experiment, registry, slots, { seed: experiment.seed, values: [[TOKENS.RunContext, context]] });
    trackers.push(...assembled.trackers, ...(options.trackers ?? []));
    for (const tracker of trackers) {
      try {
        await tracker.attach(bus.events$, { runId: run.runId, experiment: experiment.name, runDir: run.dir, parentRunId: options.parentRunId });
      } catch (error) {
        bus.emit({ type: 'warning', source: `tracker:${tracker.name}`, message: `attach failed, tracker detached: ${(error as Error).message}` });
      }
    }
    const { detector, loader, evaluator } = assembled;
    const trainSamples = await listSamples(assembled, experiment, 'train');
    const valSamples = await listSamples(assembled, experiment, 'val');
    const testSamples = await listSamples(assembled, experiment, 'test');
    const issues = assembled.dataset.issues?.();
    if (issues && issues.missing + issues.empty + issues.corrupt > 0) {
      bus.emit({
        type: 'warning',
        source: 'dataset',
        message: `dataset problems: ${issues.missing} missing, ${issues.empty} empty, ${issues.corrupt} corrupt. ${issues.messages.slice(0, 5).join(' | ')}`,
      });
    }
    const t = experiment.trainer;
    const trainSource = loader.create(trainSamples, { split: 'train', batchSize: t.batchSize, shuffle: true, augment: true, seed: experiment.seed, needs: detector.needs, dropLast: false });
    const evalSource = (samples: Sample[], split: Split) =>
      loader.create(samples, { split, batchSize: t.evalBatchSize, shuffle: false, augment: false, seed: experiment.seed, needs: detector.needs });
    const valSource = valSamples.length ? evalSource(valSamples, 'val') : undefined;
    // Made before training so a loader that refuses the test set (e.g. samples without their extra maps)
    // fails the run now, not after hours of training.
    const testSource = testSamples.length ? evalSource(testSamples, 'test') : undefined;
    let selectBy: 'val' | 'last' = t.select;
    if (selectBy === 'val' && !valSource) {
      selectBy = 'last';
      bus.emit({ type: 'warning', source: 'protocol', message: 'no validation samples: the last checkpoint is evaluated on test (protocol selection=last)' });
    }
    const protocol = {
      selection: selectBy,
      select_metric: selectBy === 'val' ? t.selectMetric : 'none',
      seed: experiment.seed,
      ...describeBackend(backend).protocolFacts,
      ...(assembled.dataset.protocolFacts?.() ?? {}),
      ...(loader.protocolFacts?.() ?? {}),
    };

    const digest = async (split: Split) => (await assembled!.dataset.digest?.({ split, subsets: subsetsOf(assembled!, experiment, split) })) ?? 'unknown';
    const resume = execution.resumeFrom ? await loadCheckpoint(execution.resumeFrom) : undefined;
    const parent = await initFromParent(execution, detector, options);
    trainer = new Trainer({
      detector,
      train: trainSource,
      config: t,
      rng: new Rng(experiment.seed),
      bus,
      checkpointsDir: run.checkpointsDir,
      validate: valSource ? async () => evaluator.evaluate(await scoreSource(detector, valSource), { split: 'val', ...protocol }) : undefined,
      signal: options.signal,
      resume,
      frozen: parent && !parent.trainable ? new Set(Object.keys(parent.variables)) : undefined,
    });
    const parentRunId = options.parentRunId ?? parent?.runId;
    bus.emit({
      type: 'run-start',
      runId: run.runId,
      experiment: experiment.name,
      runName: experiment.stage ? `${experiment.name}-${experiment.stage}-${run.runId}` : `${experiment.name}-${run.runId}`,
      runDir: run.dir,
      config: recordedConfig(experiment, slots, plugins),
      tags: {
        ...(await collectRunTags(plugins, options.cwd)),
        'dfd.backend': backend.name,
        'dfd.protocol.selection': selectBy,
        'dfd.seed': String(experiment.seed),
        ...(experiment.stage ? { 'dfd.stage': experiment.stage } : {}),
        ...(parent ? parentTags(parent) : {}),
      },
      datasets: [
        { name: `${slots.dataset.use}:train`, digest: await digest('train'), source: JSON.stringify(slots.dataset.config), context: 'training' },
        { name: `${slots.dataset.use}:val`, digest: await digest('val'), source: JSON.stringify(slots.dataset.config), context: 'validation' },
        { name: `${slots.dataset.use}:test`, digest: await digest('test'), source: JSON.stringify(slots.dataset.config), context: 'testing' },
      ],
      totalSteps: trainer.totalSteps,
      ...(resume ? { resumedFromStep: trainer.step } : {}),
      ...(parentRunId ? { parentRunId } : {}),
      ...(parent && !options.parentRunId ? { parentRunDir: parent.runDir } : {}),
    });

    const outcome = await trainer.fit();
    result.steps = outcome.step;
    if (outcome.status === 'killed') {
      result.status = 'killed';
      bus.emit({ type: 'end', status: 'killed', step: outcome.step });
      return result;
    }
    if (selectBy === 'val' && outcome.best) {
      const best = await loadCheckpoint(outcome.best.path);
      restoreModel(detector, best, outcome.best.path);
      result.selected = { by: 'val', step: outcome.best.step, metric: outcome.best.metric, value: outcome.best.value };
    } else {
      result.selected = { by: 'last', step: outcome.step };
    }
    writeJson(join(run.dir, 'selected.json'), { ...result.selected, checkpoint: selectBy === 'val' && outcome.best ? 'best.safetensors' : 'last.safetensors' });

    if (testSource) {
      const scored = await scoreSource(detector, testSource);
      // The raw scores are written before the evaluator runs: if it rejects the data (a missing subset,
      // a one-class subset), the scores are kept and `dfd metrics test-scores.csv` still works.
      const scoresPath = join(run.dir, 'test-scores.csv');
      await writeScoresCsv(scoresPath, scored);
      bus.emit({ type: 'artifact', path: scoresPath, name: 'test-scores.csv' });
      const skips = skipFacts(loader.skipCounts?.() ?? [], ['val', 'test']);
      if (Object.keys(skips).length) bus.emit({ type: 'warning', source: 'loader', message: `samples left out of evaluation by the loader: ${JSON.stringify(skips)}` });
      const report = evaluator.evaluate(scored, { split: 'test', ...protocol, selected_step: result.selected.step, ...skips });
      result.test = report;
      // Test metrics are recorded at the step of the weights they measure (the selected checkpoint).
      bus.emit({ type: 'eval', split: 'test', step: result.selected.step, epoch: experiment.trainer.epochs - 1, report });
      const written = (await evaluator.writeReport?.(report, scored, run.dir)) ?? [];
      for (const path of written) bus.emit({ type: 'artifact', path, name: path.slice(run.dir.length + 1) });
    } else {
      bus.emit({ type: 'warning', source: 'protocol', message: 'no test samples: nothing evaluated on test' });
    }
    const skipped = loader.skipped?.();
    if (skipped?.count) {
      bus.emit({ type: 'warning', source: 'loader', message: `${skipped.count} images skipped (corrupt or unreadable): ${skipped.messages.slice(0, 5).join(' | ')}` });
    }
    for (const name of ['config.json', 'selected.json', 'parent.json', 'checkpoints/best.safetensors']) {
      const path = join(run.dir, name);
      if (existsSync(path)) bus.emit({ type: 'artifact', path, name });
    }
    result.status = 'finished';
    bus.emit({ type: 'end', status: 'finished', step: outcome.step });
    return result;
  } catch (error) {
    result.status = 'failed';
    result.error = error as Error;
    if (!bus.isEnded) {
      bus.emit({ type: 'warning', source: 'runner', message: (error as Error).message });
      bus.emit({ type: 'end', status: 'failed', step: trainer?.step ?? 0, error: (error as Error).message });
    }
    throw error;
  } finally {
    for (const tracker of trackers) {
      try {
        await tracker.close();
      } catch (error) {
        process.emitWarning(`tracker ${tracker.name} failed to close: ${(error as Error).message}`);
      }
    }
    for (const subscription of subscriptions) subscription.unsubscribe();
    activeBuses.delete(bus);
    trainer?.dispose();
    assembled?.dispose();
  }
}

/**
 * A run with `init` starts from its parent's tensors: copied (and recorded in parent.json) when it starts,
 * read back from parent.json when it resumes (the resumable checkpoint already holds every tensor).
 */
async function initFromParent(execution: Execution, detector: Detector, options: RunOptions): Promise<InitRecord | undefined> {
  const init = execution.experiment.init;
  if (!init) return undefined;
  if (execution.resumeFrom) {
    const recorded = readInitRecord(execution.run.dir);
    if (!recorded) throw new Error(`${execution.run.dir} has init in config.json but no parent.json: it cannot be resumed as a stage-2 run; start it again`);
    return recorded;
  }
  const record = await applyInit(init, detector.trainableVariables(), { plugins: execution.plugins, cwd: options.cwd ?? process.cwd() });
  writeInitRecord(execution.run.dir, record);
  return record;
}

function parentTags(parent: InitRecord): Record<string, string> {
  return {
    'dfd.parent.runId': parent.runId,
    'dfd.parent.runDir': parent.runDir,
    ...(parent.stage ? { 'dfd.parent.stage': parent.stage } : {}),
    'dfd.init.variables': Object.keys(parent.variables).join(','),
    'dfd.init.trainable': String(parent.trainable),
    'dfd.init.checkpointSha256': parent.sha256,
  };
}

/** Trains, selects on validation, evaluates on test and writes the run directory. */
export async function runExperiment(definition: ExperimentInCode, options: RunOptions = {}): Promise<RunResult> {
  const cwd = options.cwd ?? process.cwd();
  const experiment = resolveExperiment(definition);
  const plugins = await collectPlugins(definition, options, cwd);
  // Validate every component config before anything is written.
  resolveSlots(experiment, buildRegistry(plugins));
  const run = createRunDirectory(resolvePath(cwd, experiment.runsDir), experiment.name);
  return execute({ experiment, plugins, run }, options);
}

/** Continues a killed or crashed run from `checkpoints/last.safetensors` in the same run directory. */
export async function resumeRun(runDir: string, options: RunOptions = {}): Promise<RunResult> {
  const run = openRunDirectory(runDir);
  const recorded = JSON.parse(readFileSync(join(run.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const experiment = definitionFromRecorded(recorded);
  const lastPath = join(run.checkpointsDir, 'last.safetensors');
  if (!existsSync(lastPath)) throw new Error(`${run.dir} has no checkpoints/last.safetensors to resume from (the run stopped before its first checkpoint): start it again with dfd run`);
  const ended = readEvents(run.dir).findLast((e) => e.type === 'end');
  if (ended?.type === 'end' && ended.status === 'finished') throw new Error(`${run.dir} already finished; nothing to resume`);
  const cwd = options.cwd ?? process.cwd();
  const plugins = [...(options.plugins ?? []), ...(await importPlugins(experiment.plugins.filter((n) => !(options.plugins ?? []).some((p) => p.name === n)), cwd))];
  return execute({ experiment, plugins, run, resumeFrom: lastPath }, { ...options, plugins: [] });
}
