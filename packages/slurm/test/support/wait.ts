/** Helpers of the Slurm tests: an in-memory CLI io, and polling a launch until Slurm has finished with it. */
import { captureCliIo } from '../../../../test/support/cli-io.js';
import { ACTIVE, launchStatus, loadLaunch, type LaunchStatus } from '@dfd/slurm';

export async function waitForLaunch(
  job: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
  done: (status: LaunchStatus) => boolean = (s) => !!s.after && !ACTIVE.has(s.after.state) && !s.tasks.some((t) => ACTIVE.has(t.state)),
  timeoutMs = 180_000,
): Promise<LaunchStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: LaunchStatus | undefined;
  while (Date.now() < deadline) {
    last = await launchStatus(loadLaunch(job, cwd, env), env);
    if (done(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`launch of job ${job} not done within ${timeoutMs / 1000} s; last states: ${JSON.stringify(last?.tasks.map((t) => [t.job, t.state]))} after: ${last?.after?.state}`);
}

/** The array job id `dfd slurm ...` printed. */
export function submittedJob(stdout: string): string {
  const match = /submitted array job (\d+)/.exec(stdout);
  if (!match) throw new Error(`no job id in: ${stdout}`);
  return match[1]!;
}

export function makeIo(cwd: string, env: NodeJS.ProcessEnv) {
  const io = captureCliIo(cwd, { env });
  return { io, out: io.out, err: io.err };
}
