/**
 * The state of each task of a job, from Slurm itself.
 *
 * Where accounting runs (slurmdbd; most real clusters), `sacct` is the record, and it keeps finished jobs.
 * Without accounting `sacct` prints nothing useful (or exits 0 with no rows on some versions), and an empty
 * answer must not read as "no tasks", so accounting is detected first (`scontrol show config`) and the
 * controller's memory is asked instead: `squeue -t all` and `scontrol show job`, which hold finished jobs for
 * `MinJobAge` seconds. A cancelled task that never started leaves no record at all; it reads as `UNKNOWN`.
 */
import { slurm } from './slurm-exec.js';

export interface TaskState {
  /** `12_3` for an array task, `13` for a plain job. */
  id: string;
  state: string;
  reason?: string;
  exitCode?: string;
}

/** States after which a task will not run again by itself: retry resubmits these. */
export const RETRYABLE = new Set(['FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'UNKNOWN']);
export const ACTIVE = new Set(['PENDING', 'RUNNING', 'CONFIGURING', 'COMPLETING', 'REQUEUED', 'RESIZING', 'SUSPENDED', 'STAGE_OUT', 'SIGNALING']);

export interface Accounting {
  enabled: boolean;
  storage: string;
}

/** Whether `sacct` can answer: AccountingStorageType is not `accounting_storage/none`. */
export async function accounting(env?: NodeJS.ProcessEnv): Promise<Accounting> {
  const result = await slurm('scontrol', ['show', 'config'], env);
  const match = /^AccountingStorageType\s*=\s*(\S+)/m.exec(result.stdout);
  const storage = match?.[1] ?? 'unknown';
  return { enabled: result.code === 0 && storage !== 'accounting_storage/none' && storage !== 'unknown', storage };
}

/** `CANCELLED by 0` → `CANCELLED`. */
const baseState = (state: string) => state.split(/\s+/)[0]!.replace(/\+$/, '');

/** Expands sacct's `12_[2-4,7]` (an array's pending remainder) into ids. */
function expandIds(id: string): string[] {
  const match = /^(\d+)_\[([^\]]+)\]$/.exec(id);
  if (!match) return [id];
  const ids: string[] = [];
  for (const part of match[2]!.split(',')) {
    const [from, to] = part.split('%')[0]!.split('-').map(Number);
    for (let k = from!; k <= (to ?? from!); k++) ids.push(`${match[1]}_${k}`);
  }
  return ids;
}

async function fromSacct(jobs: string[], env?: NodeJS.ProcessEnv): Promise<Map<string, TaskState>> {
  const states = new Map<string, TaskState>();
  const result = await slurm('sacct', ['-j', jobs.join(','), '-X', '-P', '-n', '-o', 'JobID,State,ExitCode,Reason'], env);
  if (result.code !== 0) return states;
  for (const line of result.stdout.split('\n').filter(Boolean)) {
    const [rawId, state, exitCode, reason] = line.split('|');
    for (const id of expandIds(rawId!)) states.set(id, { id, state: baseState(state!), exitCode, ...(reason && reason !== 'None' ? { reason } : {}) });
  }
  return states;
}

async function fromSqueue(jobs: string[], env?: NodeJS.ProcessEnv): Promise<Map<string, TaskState>> {
  const states = new Map<string, TaskState>();
  // One job at a time: squeue rejects the whole list if one id is unknown to it.
  for (const job of jobs) {
    const result = await slurm('squeue', ['-t', 'all', '-r', '-h', '-j', job, '-o', '%i|%T|%r'], env);
    if (result.code !== 0) continue;
    for (const line of result.stdout.split('\n').filter(Boolean)) {
      const [id, state, reason] = line.split('|');
      states.set(id!, { id: id!, state: baseState(state!), ...(reason && reason !== 'None' ? { reason } : {}) });
    }
  }
  return states;
}

/** `scontrol -o show job` adds exit codes and any record squeue did not list. */
async function addScontrol(jobs: string[], states: Map<string, TaskState>, env?: NodeJS.ProcessEnv): Promise<void> {
  for (const job of jobs) {
    const result = await slurm('scontrol', ['-o', 'show', 'job', job], env);
    if (result.code !== 0) continue;
    for (const line of result.stdout.split('\n').filter(Boolean)) {
      const field = (name: string) => new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(line)?.[1];
      const arrayJob = field('ArrayJobId');
      const task = field('ArrayTaskId');
      const id = arrayJob && task && /^\d+$/.test(task) ? `${arrayJob}_${task}` : field('JobId')!;
      const known = states.get(id);
      const state = baseState(field('JobState') ?? 'UNKNOWN');
      const reason = field('Reason');
      states.set(id, { id, state: known?.state ?? state, exitCode: field('ExitCode'), ...(reason && reason !== 'None' ? { reason } : known?.reason ? { reason: known.reason } : {}) });
    }
  }
}

export interface JobStates {
  source: 'sacct' | 'squeue+scontrol';
  accounting: Accounting;
  states: Map<string, TaskState>;
}

/** States of every task Slurm still knows of, for the given job ids. */
export async function jobStates(jobs: string[], env?: NodeJS.ProcessEnv): Promise<JobStates> {
  const acct = await accounting(env);
  if (acct.enabled) {
    const states = await fromSacct(jobs, env);
    // The controller is fresher for tasks that have not reached the database yet.
    for (const [id, live] of await fromSqueue(jobs, env)) if (!states.has(id) || ACTIVE.has(live.state)) states.set(id, live);
    if (states.size) return { source: 'sacct', accounting: acct, states };
  }
  const states = await fromSqueue(jobs, env);
  await addScontrol(jobs, states, env);
  return { source: 'squeue+scontrol', accounting: acct, states };
}
