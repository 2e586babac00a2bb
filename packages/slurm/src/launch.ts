/**
 * A launch: one array job (one task per shard or configuration) and one follow-up job (the merge, or the
 * sweep summary) that runs only when every task succeeded (`--dependency=afterok`). Its folder holds the two
 * scripts, the logs and `launch.json`, which records every submission (the first and each retry), so
 * `dfd slurm status|retry JOB` work from any of the job ids involved:
 *
 *   <state>/<kind>-<stamp>/array.sbatch  after.sbatch  launch.json  logs/
 *   <state>/jobs/<job-id>.json           -> { "launch": "<state>/<kind>-<stamp>" }
 *
 * `<state>` is `$DFD_SLURM_DIR`, else `.dfd-slurm/` in the submitting directory (on a cluster: the shared
 * filesystem, like everything a task reads or writes).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sbatch } from './slurm-exec.js';

export type LaunchKind = 'encode' | 'lare-extract' | 'sweep';

export interface Submission {
  at: string;
  arrayJob: string;
  /** Task ids submitted in this array job. */
  tasks: number[];
  afterJob?: string;
}

export interface LaunchRecord {
  kind: LaunchKind;
  dir: string;
  cwd: string;
  tasks: number;
  /** What each task is (shard `K/N`, or the configuration's name). */
  taskNames: string[];
  /** What the follow-up job does, for status output. */
  afterName: string;
  /** The main output: the merged file, or the sweep's parent run directory. */
  output: string;
  submissions: Submission[];
}

export function stateRoot(cwd: string, env: NodeJS.ProcessEnv): string {
  return resolve(cwd, env.DFD_SLURM_DIR ?? '.dfd-slurm');
}

export function newLaunchDir(root: string, kind: LaunchKind): string {
  const now = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const dir = join(root, `${kind}-${now}-${randomBytes(2).toString('hex')}`);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  return dir;
}

function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

export function saveLaunch(record: LaunchRecord): void {
  writeAtomic(join(record.dir, 'launch.json'), `${JSON.stringify(record, null, 2)}\n`);
  const jobs = join(dirname(record.dir), 'jobs');
  mkdirSync(jobs, { recursive: true });
  for (const submission of record.submissions) {
    for (const id of [submission.arrayJob, submission.afterJob]) {
      if (id && !existsSync(join(jobs, `${id}.json`))) writeAtomic(join(jobs, `${id}.json`), `${JSON.stringify({ launch: record.dir })}\n`);
    }
  }
}

/** Finds the launch of a job id (any submission's array or follow-up job), or a launch folder given directly. */
export function loadLaunch(jobOrDir: string, cwd: string, env: NodeJS.ProcessEnv): LaunchRecord {
  const asDir = resolve(cwd, jobOrDir);
  let dir: string | undefined = existsSync(join(asDir, 'launch.json')) ? asDir : undefined;
  if (!dir) {
    const id = jobOrDir.split('_')[0]!;
    const pointer = join(stateRoot(cwd, env), 'jobs', `${id}.json`);
    if (!existsSync(pointer)) {
      throw new Error(
        `job ${jobOrDir} was not launched by dfd slurm from here (no ${pointer}); run this where you submitted it, set DFD_SLURM_DIR, or pass the launch folder`,
      );
    }
    dir = (JSON.parse(readFileSync(pointer, 'utf8')) as { launch: string }).launch;
  }
  return JSON.parse(readFileSync(join(dir, 'launch.json'), 'utf8')) as LaunchRecord;
}

export interface SubmitPlan {
  arrayScript: string;
  afterScript: string;
  /** `0-3` or `1,3`. */
  array: string;
  env?: NodeJS.ProcessEnv;
  /** Further afterok dependencies of the follow-up job (tasks of earlier submissions still running). */
  alsoAfter?: string[];
}

/** Submits the array, then the follow-up job with `afterok` on it. */
export async function submit(plan: SubmitPlan): Promise<{ arrayJob: string; afterJob: string }> {
  const arrayJob = await sbatch(plan.arrayScript, [`--array=${plan.array}`], plan.env);
  const dependency = ['afterok', arrayJob, ...(plan.alsoAfter ?? [])].join(':');
  // kill_invalid_depend (cluster setting) cancels the follow-up when a task fails; without it the
  // follow-up pends with reason DependencyNeverSatisfied, which `dfd slurm status` reports.
  const afterJob = await sbatch(plan.afterScript, [`--dependency=${dependency}`], plan.env);
  return { arrayJob, afterJob };
}

/** `[0,1,2,5]` → `0-2,5` (sbatch --array syntax). */
export function arraySpec(tasks: number[]): string {
  const sorted = [...new Set(tasks)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
