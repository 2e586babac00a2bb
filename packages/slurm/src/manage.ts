/**
 * `dfd slurm status JOB` and `dfd slurm retry JOB`. A task's state is that of its latest submission; retry
 * resubmits only tasks that ended without success (failed, cancelled, timed out, node failure ... or with no
 * record left), reusing the launch's own array script with `--array=<those tasks>`, and a new follow-up job
 * that waits for them and for any task still running. Finished tasks are not redone; the ones that are
 * redone continue from what they wrote (every shardable command and every run is resumable).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CliIO } from '@dfd/core';
import { arraySpec, saveLaunch, submit, type LaunchRecord } from './launch.js';
import { slurm, sbatch } from './slurm-exec.js';
import { ACTIVE, jobStates, RETRYABLE, type Accounting } from './states.js';

export interface TaskView {
  task: number;
  name: string;
  job: string;
  state: string;
  reason?: string;
  exitCode?: string;
}

export interface LaunchStatus {
  record: LaunchRecord;
  source: string;
  accounting: Accounting;
  tasks: TaskView[];
  after?: TaskView;
}

const NO_RECORD = 'no record left (a task cancelled before it started leaves none; or it aged out of the controller without accounting)';

export async function launchStatus(record: LaunchRecord, env?: NodeJS.ProcessEnv): Promise<LaunchStatus> {
  const jobs = record.submissions.flatMap((s) => [s.arrayJob, ...(s.afterJob ? [s.afterJob] : [])]);
  const { states, source, accounting } = await jobStates(jobs, env);
  const view = (task: number, name: string, job: string): TaskView => {
    const known = states.get(job);
    return known ? { task, name, job, state: known.state, ...(known.reason ? { reason: known.reason } : {}), ...(known.exitCode ? { exitCode: known.exitCode } : {}) } : { task, name, job, state: 'UNKNOWN', reason: NO_RECORD };
  };
  const tasks = record.taskNames.map((name, task) => {
    const latest = record.submissions.findLast((s) => s.tasks.includes(task));
    return view(task, name, latest ? `${latest.arrayJob}_${task}` : '-');
  });
  const lastAfter = record.submissions.findLast((s) => s.afterJob)?.afterJob;
  return { record, source, accounting, tasks, ...(lastAfter ? { after: view(-1, record.afterName, lastAfter) } : {}) };
}

export function formatStatus(status: LaunchStatus): string {
  const { record } = status;
  const rows = [...status.tasks, ...(status.after ? [status.after] : [])];
  const nameWidth = Math.max(4, ...rows.map((r) => r.name.length));
  const jobWidth = Math.max(3, ...rows.map((r) => r.job.length));
  const lines = [
    `dfd slurm ${record.kind}: ${record.tasks} task(s) -> ${record.output}`,
    `  launch ${record.dir}; ${record.submissions.length} submission(s)`,
    `  states from ${status.source}${status.accounting.enabled ? '' : ` (accounting disabled: ${status.accounting.storage}; finished tasks stay visible only for MinJobAge)`}`,
    `  ${'task'.padEnd(nameWidth)}  ${'job'.padEnd(jobWidth)}  ${'state'.padEnd(10)}  exit   note`,
    ...rows.map((r) => `  ${r.name.padEnd(nameWidth)}  ${r.job.padEnd(jobWidth)}  ${r.state.padEnd(10)}  ${(r.exitCode ?? '').padEnd(5)}  ${r.reason ?? ''}`.trimEnd()),
  ];
  const counts = new Map<string, number>();
  for (const t of status.tasks) counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
  lines.push(`  tasks: ${[...counts].map(([s, c]) => `${c} ${s.toLowerCase()}`).join(', ')}`);
  const retry = status.tasks.filter((t) => RETRYABLE.has(t.state));
  if (status.after?.state === 'UNKNOWN' && outputComplete(record)) {
    lines.push(`  output complete: ${record.output} (Slurm no longer has these jobs)`);
  } else if (retry.length || (status.after && RETRYABLE.has(status.after.state) && !status.tasks.some((t) => ACTIVE.has(t.state)))) {
    lines.push(`  to finish: dfd slurm retry ${record.submissions[0]!.arrayJob}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Whether the launch's final output is there (merged file or store, or the sweep's summary). Without
 * accounting, Slurm forgets finished jobs after MinJobAge; a launch whose output exists then finished,
 * even though no record says so.
 */
export function outputComplete(record: LaunchRecord): boolean {
  switch (record.kind) {
    case 'encode':
      return existsSync(record.output) && existsSync(`${record.output}.index.json`);
    case 'lare-extract':
      return existsSync(join(record.output, 'index.json'));
    case 'sweep':
      return existsSync(join(record.output, 'sweep-summary.json'));
  }
}

export interface RetryOutcome {
  retried: number[];
  arrayJob?: string;
  afterJob?: string;
  message: string;
}

/** Resubmits the tasks that ended without success, and the follow-up job behind them. */
export async function retryLaunch(record: LaunchRecord, env?: NodeJS.ProcessEnv): Promise<RetryOutcome> {
  const status = await launchStatus(record, env);
  const retry = status.tasks.filter((t) => RETRYABLE.has(t.state)).map((t) => t.task);
  const active = status.tasks.filter((t) => ACTIVE.has(t.state)).map((t) => t.job);
  const after = status.after;
  if (after?.state === 'UNKNOWN' && !active.length && outputComplete(record)) {
    return { retried: [], message: `nothing to retry: Slurm no longer has these jobs, and the output ${record.output} is complete` };
  }
  const arrayScript = join(record.dir, 'array.sbatch');
  const afterScript = join(record.dir, 'after.sbatch');
  if (!retry.length) {
    if (after && after.state === 'COMPLETED') return { retried: [], message: `nothing to retry: all ${record.tasks} task(s) and the ${record.afterName} completed` };
    if (!after || ACTIVE.has(after.state)) return { retried: [], message: `nothing to retry: no task failed (${active.length} still pending or running)` };
    // Every task is fine but the follow-up failed (or was cancelled): run it again behind any active task.
    const afterJob = await sbatch(afterScript, active.length ? [`--dependency=afterok:${active.join(':')}`] : [], env);
    record.submissions.push({ at: new Date().toISOString(), arrayJob: record.submissions.at(-1)!.arrayJob, tasks: [], afterJob });
    saveLaunch(record);
    return { retried: [], afterJob, message: `resubmitted the ${record.afterName} as job ${afterJob}` };
  }
  // A follow-up still pending waits for tasks that can no longer succeed: replace it.
  if (after && ACTIVE.has(after.state)) await slurm('scancel', [after.job], env);
  const { arrayJob, afterJob } = await submit({ arrayScript, afterScript, array: arraySpec(retry), env, alsoAfter: active });
  record.submissions.push({ at: new Date().toISOString(), arrayJob, tasks: retry, afterJob });
  saveLaunch(record);
  return {
    retried: retry,
    arrayJob,
    afterJob,
    message: `resubmitted task(s) ${arraySpec(retry)} as array job ${arrayJob}; ${record.afterName} job ${afterJob} runs after them${active.length ? ` and ${active.length} task(s) still active` : ''}`,
  };
}

export async function runStatus(record: LaunchRecord, io: CliIO, json: boolean): Promise<number> {
  const status = await launchStatus(record, io.env);
  if (json) io.stdout.write(`${JSON.stringify({ ...status, record: { kind: record.kind, dir: record.dir, output: record.output, submissions: record.submissions } })}\n`);
  else io.stdout.write(formatStatus(status));
  return 0;
}
