/**
 * The local run directory, written before anything is sent anywhere:
 *
 *   <runsDir>/<experiment>/<run-id>/
 *     config.json      resolved experiment (validated, defaulted component configs)
 *     events.jsonl     every RunEvent, one JSON line each, in order (the complete record; `dfd sync` replays it)
 *     metrics.jsonl    one line per metric point {key, value, step, timestamp}
 *     checkpoints/     last.safetensors (resumable), best.safetensors (selected on validation)
 *     report.*         whatever the evaluator writes
 *
 * Writing the record is not best-effort: config.json, checkpoints and the report are written whole (to a
 * temporary name, then renamed) or the run fails with a `RunRecordError` that names the file, the OS error
 * and what to do. Event appends are synchronous: a crash or Ctrl-C loses at most the event being written,
 * and an append that fails (full disk) is kept in memory and retried with the next event.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Observable, Subscription } from 'rxjs';
import { metricPointsOf, type RunEvent } from '../events.js';
import { assertRealFilesystem } from './filesystem.js';

export interface RunDirectory {
  runId: string;
  dir: string;
  checkpointsDir: string;
}

/** A part of the run record could not be written: the run is not complete and must not look finished. */
export class RunRecordError extends Error {
  override name = 'RunRecordError';
  constructor(
    message: string,
    readonly path: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** What to do about an OS error on `path`, in words. */
function remedyFor(code: string | undefined, path: string): string {
  if (code === 'ENOSPC' || code === 'EDQUOT') return `the disk is full: free space on the file system holding ${dirname(path)}`;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return `make ${dirname(path)} writable`;
  if (code === 'EMFILE' || code === 'ENFILE') return 'close other programs or raise the open-file limit (ulimit -n)';
  return `check ${dirname(path)}`;
}

/** How to continue a run after its record failed: `dfd resume` when it has a resumable checkpoint. */
export function continueHint(runDir: string): string {
  return existsSync(join(runDir, 'checkpoints', 'last.safetensors'))
    ? `then continue the run with: dfd resume ${runDir}`
    : 'then start the run again with dfd run';
}

/** The error for a failed write of `what` at `path`, naming the file, the OS error and the fix. */
export function recordWriteError(what: string, path: string, error: unknown, next: string): RunRecordError {
  if (error instanceof RunRecordError) return error;
  const code = (error as NodeJS.ErrnoException)?.code;
  const reason = (error as Error)?.message ?? String(error);
  return new RunRecordError(`could not write ${what} ${path}: ${reason}. To fix: ${remedyFor(code, path)}, ${next}.`, path, code);
}

/** A sortable, collision-resistant run id: `20261128-024512-a1b2c3`. */
export function newRunId(now = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}-${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}${pad(now.getUTCSeconds())}`;
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export function createRunDirectory(runsDir: string, experiment: string, runId = newRunId()): RunDirectory {
  // procfs/sysfs would loop or fail in odd ways deep inside mkdir: refuse them before touching anything.
  assertRealFilesystem(runsDir, 'runs directory');
  const dir = join(runsDir, experiment, runId);
  if (existsSync(dir)) throw new Error(`run directory ${dir} already exists; refusing to overwrite another run`);
  const checkpointsDir = join(dir, 'checkpoints');
  try {
    mkdirSync(checkpointsDir, { recursive: true });
  } catch (error) {
    throw recordWriteError('the run directory', checkpointsDir, error, 'then start the run again with dfd run');
  }
  return { runId, dir, checkpointsDir };
}

/** Removes a run directory this process created when the run failed before its record began (no half runs). */
export function discardRunDirectory(run: RunDirectory): void {
  rmSync(run.dir, { recursive: true, force: true });
}

export function openRunDirectory(dir: string): RunDirectory {
  assertRealFilesystem(dir, 'run directory');
  if (!existsSync(join(dir, 'config.json'))) {
    throw new Error(`${dir} is not a run directory (no config.json); pass the folder runs/<experiment>/<run-id>`);
  }
  const runId = dir.replace(/\/+$/, '').split('/').pop()!;
  return { runId, dir, checkpointsDir: join(dir, 'checkpoints') };
}

/** The run's config.json, parsed; a damaged one is an error that says so (not "Unexpected end of JSON input"). */
export function readRecordedConfig(run: RunDirectory): Record<string, unknown> {
  const path = join(run.dir, 'config.json');
  const text = readFileSync(path, 'utf8');
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new Error(
      `${path} is damaged (${text.length} bytes, ${(error as Error).message}): this run's record is incomplete, probably written on a full disk ` +
        `before @dfd checked its writes. Start the experiment again with dfd run.`,
    );
  }
}

/** Writes a file whole or not at all: a temporary name in the same folder, then an atomic rename. */
export function writeFileAtomic(path: string, text: string | Uint8Array): void {
  const temporary = `${path}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    writeFileSync(temporary, text);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

export function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** Writes a JSON file of the run record; a failure is a RunRecordError with the path, the OS error and the fix. */
export function writeRecordJson(run: RunDirectory, name: string, value: unknown, what = name): void {
  const path = join(run.dir, name);
  try {
    writeJson(path, value);
  } catch (error) {
    throw recordWriteError(what, path, error, continueHint(run.dir));
  }
}

/** Subscribes the run directory to the event stream; `flush()` retries appends that failed. */
export interface EventRecorder extends Subscription {
  /** Appends what is still pending; throws a RunRecordError when it cannot. */
  flush(): void;
}

/** Appends whole lines or nothing: a partial append (full disk) is cut off again, so a retry cannot tear a line. */
function appendWhole(path: string, text: string): void {
  const before = existsSync(path) ? statSync(path).size : 0;
  try {
    appendFileSync(path, text);
  } catch (error) {
    try {
      truncateSync(path, before);
    } catch {
      // the file may not exist yet
    }
    throw error;
  }
}

/** Records the event stream into the run directory (events.jsonl and metrics.jsonl). */
export function recordEvents(events: Observable<RunEvent>, run: RunDirectory): EventRecorder {
  const eventsPath = join(run.dir, 'events.jsonl');
  const metricsPath = join(run.dir, 'metrics.jsonl');
  const pending = { events: '', metrics: '' };
  let lastError: unknown;
  const flush = (): void => {
    try {
      if (pending.events) appendWhole(eventsPath, pending.events);
      pending.events = '';
      if (pending.metrics) appendWhole(metricsPath, pending.metrics);
      pending.metrics = '';
    } catch (error) {
      lastError = error; // kept in memory, retried with the next event
    }
  };
  const subscription = events.subscribe((event) => {
    pending.events += `${JSON.stringify(event)}\n`;
    const points = metricPointsOf(event);
    if (points.length) pending.metrics += points.map((p) => JSON.stringify(p)).join('\n') + '\n';
    flush();
  });
  return Object.assign(subscription, {
    flush() {
      lastError = undefined;
      flush();
      if (pending.events || pending.metrics) throw recordWriteError('the run events', eventsPath, lastError, continueHint(run.dir));
    },
  });
}

/** Parses events.jsonl text; a torn last line (crash mid-write) is ignored. */
function parseEvents(text: string, path: string): RunEvent[] {
  const lines = text.split('\n').filter(Boolean);
  const events: RunEvent[] = [];
  for (const [index, line] of lines.entries()) {
    try {
      events.push(JSON.parse(line) as RunEvent);
    } catch {
      if (index !== lines.length - 1) throw new Error(`${path}: line ${index + 1} is not valid JSON`);
    }
  }
  return events;
}

/** Reads events.jsonl; a torn last line (crash mid-write) is ignored. */
export function readEvents(dir: string): RunEvent[] {
  const path = join(dir, 'events.jsonl');
  if (!existsSync(path)) return [];
  return parseEvents(readFileSync(path, 'utf8'), path);
}

/** Training events carry the step they happened at; everything a resume replays is one of them. */
function trainingStep(event: RunEvent): number | undefined {
  if (event.type === 'step' || event.type === 'epoch' || event.type === 'checkpoint') return event.step;
  if (event.type === 'eval' && event.split === 'val') return event.step;
  return undefined;
}

/** Events a resume replays (or redoes, like the test evaluation), with the step they carry. */
function replayableStep(event: RunEvent): number | undefined {
  return event.type === 'step' || event.type === 'epoch' || event.type === 'checkpoint' || event.type === 'eval' ? event.step : undefined;
}

/**
 * Before a resume from the checkpoint at `step`: cuts events.jsonl back to the last training event at or
 * before that step, so the replayed steps (and a redone test evaluation) replace the lost ones instead of
 * appearing twice, and rebuilds metrics.jsonl from what is kept. The cut lines are kept in
 * `events.superseded.jsonl` (nothing is lost). When nothing after the checkpoint is replayed (a Ctrl-C
 * stop writes its checkpoint last), the record is left as it is.
 */
export function rewindRecord(run: RunDirectory, step: number): { superseded: number; replayedUntilStep?: number } {
  const eventsPath = join(run.dir, 'events.jsonl');
  const events = readEvents(run.dir);
  let cut = 0;
  events.forEach((event, index) => {
    if (event.type === 'run-start') cut = Math.max(cut, index + 1);
    const at = trainingStep(event);
    if (at !== undefined && at <= step) cut = index + 1;
  });
  const kept = events.slice(0, cut);
  const superseded = events.slice(cut);
  const replayed = superseded.map(replayableStep).filter((s): s is number => s !== undefined);
  if (replayed.length === 0) return { superseded: 0 };
  try {
    appendFileSync(join(run.dir, 'events.superseded.jsonl'), superseded.map((e) => `${JSON.stringify(e)}\n`).join(''));
    writeFileAtomic(eventsPath, kept.map((e) => `${JSON.stringify(e)}\n`).join(''));
    const points = kept.flatMap((e) => metricPointsOf(e));
    writeFileAtomic(join(run.dir, 'metrics.jsonl'), points.map((p) => `${JSON.stringify(p)}\n`).join(''));
  } catch (error) {
    throw recordWriteError('the run events', eventsPath, error, `then resume again: dfd resume ${run.dir}`);
  }
  return { superseded: superseded.length, replayedUntilStep: Math.max(step, ...replayed) };
}

/** Temporary files a killed process left behind (`name.tmp-<pid>-<x>`: a checkpoint or record write cut short). */
export function removeStaleTemporaries(folder: string): string[] {
  if (!existsSync(folder)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(folder)) {
    if (!/\.tmp-\d+-[\w]+$/.test(name)) continue;
    rmSync(join(folder, name), { force: true });
    removed.push(join(folder, name));
  }
  return removed;
}
