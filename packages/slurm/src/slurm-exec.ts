/**
 * Calls to Slurm's own client programs (sbatch, squeue, sacct, scontrol, scancel). Nothing here schedules
 * anything itself: Slurm does. A failure carries the program's own message (e.g. sbatch's
 * "invalid partition specified"), because that message is what the user needs to fix the request.
 */
import { execFile } from 'node:child_process';

export class SlurmError extends Error {
  override name = 'SlurmError';
  constructor(
    message: string,
    readonly program: string,
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(message);
  }
}

export interface SlurmResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a Slurm client; never throws for a non-zero exit (callers decide), only when it cannot start. */
export function slurm(program: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<SlurmResult> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = (error as (NodeJS.ErrnoException & { code?: unknown }) | null)?.code;
      if (code === 'ENOENT') {
        reject(new SlurmError(`${program} not found on PATH: run this on a Slurm login node (or install slurm-client and set SLURM_CONF)`, program, '', null));
        return;
      }
      if (error && (error as { killed?: boolean }).killed) {
        reject(new SlurmError(`${program} ${args.join(' ')} did not answer within ${timeoutMs / 1000} s (is slurmctld up?)`, program, String(stderr), null));
        return;
      }
      resolve({ stdout: String(stdout), stderr: String(stderr), code: typeof code === 'number' ? code : error ? 1 : 0 });
    });
  });
}

/** Like `slurm`, but a non-zero exit is an error carrying the program's stderr. */
export async function slurmOk(program: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const result = await slurm(program, args, env);
  if (result.code !== 0) {
    const said = result.stderr.trim() || result.stdout.trim() || '(no message)';
    throw new SlurmError(`${program} failed (exit ${result.code}):\n${said}`, program, result.stderr, result.code);
  }
  return result.stdout;
}

/** Submits a batch script; returns the job id (`sbatch --parsable` prints `id[;cluster]`). */
export async function sbatch(script: string, extraArgs: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const out = await slurmOk('sbatch', ['--parsable', ...extraArgs, script], env);
  const id = out.trim().split(/\s+/).pop()!.split(';')[0]!;
  if (!/^\d+$/.test(id)) throw new SlurmError(`sbatch printed no job id: '${out.trim()}'`, 'sbatch', '', 0);
  return id;
}
