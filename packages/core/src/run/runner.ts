/**
 * Runs one experiment end to end: validate → run directory → assemble in a child container → train with
 * selection on validation → load the selected weights → evaluate once on test → report → end event.
 * `resumeRun` continues a killed run from its `last` checkpoint to the same weights.
 */
import { existsSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { config as rxjsConfig, type Subscription } from 'rxjs';
import type { Detector, EvaluationReport, Split, Tracker } from '../contracts.js';
import { RunEventBus, type RunStatus } from '../events.js';
import { resolveExperiment, type ExperimentInCode, type ResolvedExperiment } from '../experiment.js';
import type { Plugin } from '../plugin.js';
import { Rng } from '../rng.js';
import { TOKENS } from '../di.js';
import { describeBackend, ensureBackend } from '../backend.js';
import { Trainer, type TrainingOutcome } from '../train/trainer.js';
import { loadCheckpoint, restoreModel, type LoadedCheckpoint } from '../train/checkpoint.js';
import { assemble, buildRegistry, importPlugins, resolveSlots, type AssembledExperiment, type ResolvedSlots } from './assemble.js';
import {
  createRunDirectory,
  discardRunDirectory,
  openRunDirectory,
  readEvents,
  readRecordedConfig,
  recordEvents,
  removeStaleTemporaries,
  rewindRecord,
  writeRecordJson,
  type EventRecorder,
  type RunDirectory,
} from './run-directory.js';
import { evalSourceFor, evaluateTest, listSamples, listSplit, requireComplete, scoreSplit, subsetsOf } from './evaluate-split.js';
import { attachProgress } from './progress.js';
import { RunInterrupted, throwIfAborted } from './interrupt.js';

export { RunInterrupted } from './interrupt.js';
export { IncompleteEvaluationError, scoreSource, skipFacts } from './evaluate-split.js';
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
    evaluation: r.evaluation,
    tracking: (r.tracking ?? []).map(asRef),
    runsDir: r.runsDir,
    ...(r.init ? { init: r.init } : {}),
    ...(r.stage ? { stage: r.stage } : {}),
  });
}

interface Execution {
  experiment: ResolvedExperiment;
  plugins: Plugin[];
  run: RunDirectory;
  resumeFrom?: string;
  /** This call created the run directory (a new run): a start-up failure removes it again. */
  created: boolean;
}

/** What one execution holds while it runs. */
interface Session {
  experiment: ResolvedExperiment;
  run: RunDirectory;
  bus: RunEventBus;
  recorder: EventRecorder;
  subscriptions: Subscription[];
  trackers: Tracker[];
  assembled?: AssembledExperiment;
  trainer?: Trainer;
  signal?: AbortSignal;
  /** The run-start event is out: from here on the record is the run's, failures end it as `failed`. */
  started: boolean;
  /** A resume replays steps up to this one that the interrupted session had recorded. */
  replayedUntilStep?: number;
  /** Warnings raised before run-start, emitted right after it (events.jsonl begins with run-start). */
  early: Array<{ source: string; message: string }>;
}

function warn(session: Session, source: string, message: string): void {
  if (session.started) session.bus.emit({ type: 'warning', source, message });
  else session.early.push({ source, message });
}

function openSession(execution: Execution, options: RunOptions): Session {
  const bus = new RunEventBus();
  activeBuses.add(bus);
  const recorder = recordEvents(bus.events$, execution.run);
  const subscriptions: Subscription[] = [recorder];
  const progress = options.progress ?? false;
  if (progress) subscriptions.push(attachProgress(bus.events$, progress === true ? process.stderr : progress));
  return { experiment: execution.experiment, run: execution.run, bus, recorder, subscriptions, trackers: [], signal: options.signal, started: false, early: [] };
}

async function attachTrackers(session: Session, options: RunOptions): Promise<void> {
  const { run, experiment, bus } = session;
  session.trackers.push(...session.assembled!.trackers, ...(options.trackers ?? []));
  for (const tracker of session.trackers) {
    try {
      await tracker.attach(bus.events$, { runId: run.runId, experiment: experiment.name, runDir: run.dir, parentRunId: options.parentRunId });
    } catch (error) {
      warn(session, `tracker:${tracker.name}`, `attach failed, tracker detached: ${(error as Error).message}`);
    }
  }
}

function reportDatasetIssues(session: Session): void {
  const issues = session.assembled!.dataset.issues?.();
  if (issues && issues.missing + issues.empty + issues.corrupt > 0) {
    warn(session, 'dataset', `dataset problems: ${issues.missing} missing, ${issues.empty} empty, ${issues.corrupt} corrupt. ${issues.messages.slice(0, 5).join(' | ')}`);
  }
}

function resumedStepOf(checkpoint: LoadedCheckpoint, path: string): number {
  if ('weightsOnly' in checkpoint.state) throw new Error(`${path} is a weights-only checkpoint; resume needs last.safetensors`);
  return checkpoint.state.position.step;
}

/** Resume only: the temporary files a kill left behind go, and the record is cut back to the checkpoint. */
function prepareResume(session: Session, resumedStep: number): void {
  for (const path of removeStaleTemporaries(session.run.checkpointsDir)) warn(session, 'resume', `removed ${path}, left by an interrupted checkpoint write`);
  for (const path of removeStaleTemporaries(session.run.dir)) warn(session, 'resume', `removed ${path}, left by an interrupted write`);
  const { superseded, replayedUntilStep } = rewindRecord(session.run, resumedStep);
  if (superseded) warn(session, 'resume', `${superseded} events after step ${resumedStep} are replayed by this resume; the earlier copies moved to events.superseded.jsonl`);
  session.replayedUntilStep = replayedUntilStep;
}

/** The run-start event, with config.json written whole first (a failure here leaves no run behind). */
async function startRecord(
  session: Session,
  execution: Execution,
  options: RunOptions,
  details: { slots: ResolvedSlots; backend: string; selectBy: 'val' | 'last'; resumedStep?: number; parent?: InitRecord },
): Promise<void> {
  const { experiment, run, bus, assembled, trainer } = session;
  const { slots } = details;
  const config = recordedConfig(experiment, slots, execution.plugins);
  if (execution.created) writeRecordJson(run, 'config.json', config);
  const digest = async (split: Split) => (await assembled!.dataset.digest?.({ split, subsets: subsetsOf(assembled!, experiment, split) })) ?? 'unknown';
  const source = JSON.stringify(slots.dataset.config);
  const datasets = [
    { name: `${slots.dataset.use}:train`, digest: await digest('train'), source, context: 'training' as const },
    { name: `${slots.dataset.use}:val`, digest: await digest('val'), source, context: 'validation' as const },
    { name: `${slots.dataset.use}:test`, digest: await digest('test'), source, context: 'testing' as const },
  ];
  const { parent } = details;
  const tags = {
    ...(await collectRunTags(execution.plugins, options.cwd)),
    'dfd.backend': details.backend,
    'dfd.protocol.selection': details.selectBy,
    'dfd.seed': String(experiment.seed),
    ...(experiment.stage ? { 'dfd.stage': experiment.stage } : {}),
    ...(parent ? parentTags(parent) : {}),
  };
  const parentRunId = options.parentRunId ?? parent?.runId;
  bus.emit({
    type: 'run-start',
    runId: run.runId,
    experiment: experiment.name,
    runName: experiment.stage ? `${experiment.name}-${experiment.stage}-${run.runId}` : `${experiment.name}-${run.runId}`,
    runDir: run.dir,
    config,
    tags,
    datasets,
    totalSteps: trainer!.totalSteps,
    ...(details.resumedStep !== undefined ? { resumedFromStep: details.resumedStep } : {}),
    ...(session.replayedUntilStep !== undefined ? { replayedUntilStep: session.replayedUntilStep } : {}),
    ...(parentRunId ? { parentRunId } : {}),
    ...(parent && !options.parentRunId ? { parentRunDir: parent.runDir } : {}),
  });
  session.started = true;
  for (const { source: from, message } of session.early.splice(0)) bus.emit({ type: 'warning', source: from, message });
}

async function execute(execution: Execution, options: RunOptions): Promise<RunResult> {
  const { experiment, plugins, run } = execution;
  installTrackerErrorBackstop();
  const registry = buildRegistry(plugins);
  const slots = resolveSlots(experiment, registry);
  const session = openSession(execution, options);
  const { bus } = session;
  const context: RunContext = {
    runId: run.runId,
    runDir: run.dir,
    experiment: experiment.name,
    seed: experiment.seed,
    warn: (source, message) => warn(session, source, message),
  };
  const result: RunResult = { runId: run.runId, runDir: run.dir, status: 'failed', steps: 0 };
  try {
    const backend = await ensureBackend(experiment.backend);
    const assembled = assemble(experiment, registry, slots, { seed: experiment.seed, values: [[TOKENS.RunContext, context]] });
    session.assembled = assembled;
    const resume = execution.resumeFrom ? await loadCheckpoint(execution.resumeFrom) : undefined;
    // Before trackers attach: they replay events.jsonl, which must already be cut back to the checkpoint.
    if (resume) prepareResume(session, resumedStepOf(resume, execution.resumeFrom!));
    await attachTrackers(session, options);
    const { detector, loader, evaluator } = assembled;
    throwIfAborted(options.signal, 'listing the dataset');
    const trainSamples = await listSamples(assembled, experiment, 'train');
    const valListing = await listSplit(assembled, experiment, 'val');
    const testListing = await listSplit(assembled, experiment, 'test');
    throwIfAborted(options.signal, 'listing the dataset');
    reportDatasetIssues(session);
    const t = experiment.trainer;
    const trainSource = loader.create(trainSamples, { split: 'train', batchSize: t.batchSize, shuffle: true, augment: true, seed: experiment.seed, needs: detector.needs, dropLast: false });
    const valSource = valListing.samples.length ? evalSourceFor(session, valListing) : undefined;
    // Made before training so a loader that refuses the test set (e.g. samples without their extra maps)
    // fails the run now (before run-start: no half run is left), not after hours of training.
    const testSource = testListing.samples.length ? evalSourceFor(session, testListing) : undefined;
    let selectBy: 'val' | 'last' = t.select;
    if (selectBy === 'val' && !valSource) {
      selectBy = 'last';
      warn(session, 'protocol', 'no validation samples: the last checkpoint is evaluated on test (protocol selection=last)');
    }
    const protocol = {
      selection: selectBy,
      select_metric: selectBy === 'val' ? t.selectMetric : 'none',
      seed: experiment.seed,
      ...describeBackend(backend).protocolFacts,
      ...(assembled.dataset.protocolFacts?.() ?? {}),
      ...(loader.protocolFacts?.() ?? {}),
    };
    const validate = async (): Promise<EvaluationReport> => {
      const { scored, coverage } = await scoreSplit(assembled, valListing, valSource!, options.signal);
      requireComplete(experiment, 'val', coverage);
      return { ...evaluator.evaluate(scored, { split: 'val', ...protocol }), coverage };
    };
    const parent = await initFromParent(execution, detector, options);
    const trainer = new Trainer({
      detector,
      train: trainSource,
      config: t,
      rng: new Rng(experiment.seed),
      bus,
      checkpointsDir: run.checkpointsDir,
      validate: valSource ? validate : undefined,
      signal: options.signal,
      resume,
      frozen: parent && !parent.trainable ? new Set(Object.keys(parent.variables)) : undefined,
    });
    session.trainer = trainer;
    await startRecord(session, execution, options, { slots, backend: backend.name, selectBy, resumedStep: resume ? trainer.step : undefined, parent });

    const outcome = await trainer.fit();
    result.steps = outcome.step;
    if (outcome.status === 'killed') return endKilled(session, result, outcome.step);
    result.selected = await selectWeights(session, outcome, selectBy);
    if (testListing.samples.length || testListing.listingDrops.length) {
      result.test = await evaluateTest(session, testListing, protocol, result.selected.step, testSource);
    } else {
      bus.emit({ type: 'warning', source: 'protocol', message: 'no test samples: nothing evaluated on test' });
    }
    return endFinished(session, result, outcome.step);
  } catch (error) {
    if (error instanceof RunInterrupted && session.started) return endKilled(session, result, session.trainer?.step ?? 0);
    result.status = 'failed';
    result.error = error as Error;
    endFailed(session, execution, error as Error);
    throw error;
  } finally {
    await closeSession(session);
  }
}

/** Loads the weights evaluated on test (best on validation, else last) and records the choice in selected.json. */
async function selectWeights(session: Session, outcome: TrainingOutcome, selectBy: 'val' | 'last'): Promise<NonNullable<RunResult['selected']>> {
  let selected: NonNullable<RunResult['selected']>;
  if (selectBy === 'val' && outcome.best) {
    const best = await loadCheckpoint(outcome.best.path);
    restoreModel(session.assembled!.detector, best, outcome.best.path);
    selected = { by: 'val', step: outcome.best.step, metric: outcome.best.metric, value: outcome.best.value };
  } else {
    selected = { by: 'last', step: outcome.step };
  }
  writeRecordJson(session.run, 'selected.json', { ...selected, checkpoint: selectBy === 'val' && outcome.best ? 'best.safetensors' : 'last.safetensors' });
  return selected;
}

/** The last warnings and artifacts, then `end: finished` once the record is on disk. */
function endFinished(session: Session, result: RunResult, step: number): RunResult {
  const { bus, run } = session;
  const skipped = session.assembled!.loader.skipped?.();
  if (skipped?.count) {
    bus.emit({ type: 'warning', source: 'loader', message: `${skipped.count} images skipped (corrupt or unreadable): ${skipped.messages.slice(0, 5).join(' | ')}` });
  }
  for (const name of ['config.json', 'selected.json', 'parent.json', 'checkpoints/best.safetensors']) {
    const path = join(run.dir, name);
    if (existsSync(path)) bus.emit({ type: 'artifact', path, name });
  }
  session.recorder.flush(); // throws when the record cannot be completed: the run is then not finished
  result.status = 'finished';
  bus.emit({ type: 'end', status: 'finished', step });
  return result;
}

function endKilled(session: Session, result: RunResult, step: number): RunResult {
  result.status = 'killed';
  result.steps = step;
  session.bus.emit({ type: 'end', status: 'killed', step });
  return result;
}

/**
 * A failure after run-start ends the record as `failed` (locally and in every tracker). One before it leaves
 * no half run: a new run's directory is removed (there is nothing in it to keep), a resumed run's record is
 * left as it was.
 */
function endFailed(session: Session, execution: Execution, error: Error): void {
  if (session.started) {
    if (!session.bus.isEnded) {
      session.bus.emit({ type: 'warning', source: 'runner', message: error.message });
      session.bus.emit({ type: 'end', status: 'failed', step: session.trainer?.step ?? 0, error: error.message });
    }
    return;
  }
  session.subscriptions.forEach((s) => s.unsubscribe());
  if (execution.created) discardRunDirectory(execution.run);
}

async function closeSession(session: Session): Promise<void> {
  for (const tracker of session.trackers) {
    try {
      await tracker.close();
    } catch (error) {
      process.emitWarning(`tracker ${tracker.name} failed to close: ${(error as Error).message}`);
    }
  }
  if (session.started) {
    try {
      session.recorder.flush();
    } catch (error) {
      process.emitWarning((error as Error).message);
    }
  }
  for (const subscription of session.subscriptions) subscription.unsubscribe();
  activeBuses.delete(session.bus);
  session.trainer?.dispose();
  session.assembled?.dispose();
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
  return execute({ experiment, plugins, run, created: true }, options);
}

/** Continues a killed or crashed run from `checkpoints/last.safetensors` in the same run directory. */
export async function resumeRun(runDir: string, options: RunOptions = {}): Promise<RunResult> {
  const run = openRunDirectory(runDir);
  const experiment = definitionFromRecorded(readRecordedConfig(run));
  const lastPath = join(run.checkpointsDir, 'last.safetensors');
  if (!existsSync(lastPath)) throw new Error(`${run.dir} has no checkpoints/last.safetensors to resume from (the run stopped before its first checkpoint): start it again with dfd run`);
  const ended = readEvents(run.dir).findLast((e) => e.type === 'end');
  if (ended?.type === 'end' && ended.status === 'finished') throw new Error(`${run.dir} already finished; nothing to resume`);
  const cwd = options.cwd ?? process.cwd();
  const plugins = [...(options.plugins ?? []), ...(await importPlugins(experiment.plugins.filter((n) => !(options.plugins ?? []).some((p) => p.name === n)), cwd))];
  return execute({ experiment, plugins, run, resumeFrom: lastPath, created: false }, { ...options, plugins: [] });
}
