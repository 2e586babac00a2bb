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
 * Appends are synchronous: a crash or Ctrl-C loses at most the event being written.
 */
import { appendFileSync, mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Observable, Subscription } from 'rxjs';
import { metricPointsOf, type RunEvent } from '../events.js';

export interface RunDirectory {
  runId: string;
  dir: string;
  checkpointsDir: string;
}

/** A sortable, collision-resistant run id: `20261128-024512-a1b2c3`. */
export function newRunId(now = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}-${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}${pad(now.getUTCSeconds())}`;
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export function createRunDirectory(runsDir: string, experiment: string, runId = newRunId()): RunDirectory {
  const dir = join(runsDir, experiment, runId);
  if (existsSync(dir)) throw new Error(`run directory ${dir} already exists; refusing to overwrite another run`);
  const checkpointsDir = join(dir, 'checkpoints');
  mkdirSync(checkpointsDir, { recursive: true });
  return { runId, dir, checkpointsDir };
}

export function openRunDirectory(dir: string): RunDirectory {
  if (!existsSync(join(dir, 'config.json'))) {
    throw new Error(`${dir} is not a run directory (no config.json); pass the folder runs/<experiment>/<run-id>`);
  }
  const runId = dir.replace(/\/+$/, '').split('/').pop()!;
  return { runId, dir, checkpointsDir: join(dir, 'checkpoints') };
}

export function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** Records the event stream into the run directory. */
export function recordEvents(events: Observable<RunEvent>, run: RunDirectory): Subscription {
  const eventsPath = join(run.dir, 'events.jsonl');
  const metricsPath = join(run.dir, 'metrics.jsonl');
  return events.subscribe((event) => {
    if (event.type === 'run-start') writeJson(join(run.dir, 'config.json'), event.config);
    appendFileSync(eventsPath, `${JSON.stringify(event)}\n`);
    const points = metricPointsOf(event);
    if (points.length) appendFileSync(metricsPath, points.map((p) => JSON.stringify(p)).join('\n') + '\n');
  });
}

/** Reads events.jsonl; a torn last line (crash mid-write) is ignored. */
export function readEvents(dir: string): RunEvent[] {
  const path = join(dir, 'events.jsonl');
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
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
