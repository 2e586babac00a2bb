/** Reading the run directory's `events.jsonl`, the complete record of a run that `dfd sync` replays. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunEvent } from '@dfd/core';

export const EVENTS_FILE = 'events.jsonl';

/**
 * Events in order. A torn last line (the process died mid-write) is ignored; a bad line elsewhere is an
 * error naming the file and line, since skipping it would shift every later event.
 */
export function readEventsFile(runDir: string, options: { required?: boolean } = {}): RunEvent[] {
  const path = join(runDir, EVENTS_FILE);
  if (!existsSync(path)) {
    if (options.required) {
      throw new Error(
        `${path} not found: pass a run directory (runs/<experiment>/<run-id>) written by a dfd run; ` +
          'every run writes events.jsonl, with or without tracking configured.',
      );
    }
    return [];
  }
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const complete = text.endsWith('\n');
  const events: RunEvent[] = [];
  for (const [index, line] of lines.entries()) {
    if (line.trim() === '') continue;
    try {
      const event = JSON.parse(line) as RunEvent;
      if (typeof event !== 'object' || event === null || typeof (event as { type?: unknown }).type !== 'string') {
        throw new Error('not a run event');
      }
      events.push(event);
    } catch (error) {
      const last = index === lines.length - 1 || (index === lines.length - 2 && lines[lines.length - 1] === '');
      if (last && !complete) break; // torn final line
      throw new Error(`${path}: line ${index + 1} is not a run event (${(error as Error).message}); fix or remove that line`);
    }
  }
  return events;
}
