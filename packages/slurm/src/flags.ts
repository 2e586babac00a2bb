/**
 * The flags `dfd slurm` itself reads. Everything else on the command line passes through, unchanged, to
 * the dfd command each task runs.
 */
import { UsageError } from '@dfd/core';
import type { Resources } from './script.js';

export interface LaunchFlags {
  resources: Resources;
  dryRun: boolean;
  jobName?: string;
  /** --setup 'module load 2023' (repeatable): lines run before dfd in every script. */
  setup: string[];
  /** --dfd 'npx dfd': how tasks start dfd (default: this node and this installation's dfd). */
  dfd?: string;
  /** Command-specific values (--shards, --grid, --set ...), all occurrences in order. */
  own: Map<string, string[]>;
  /** What is left for the task's dfd command. */
  rest: string[];
}

const RESOURCE_FLAGS = ['partition', 'gres', 'cpus', 'mem', 'time', 'account', 'sbatch'];
const LAUNCH_FLAGS = ['job-name', 'setup', 'dfd'];

export function parseLaunchFlags(args: string[], own: string[]): LaunchFlags {
  const takes = new Set([...RESOURCE_FLAGS, ...LAUNCH_FLAGS, ...own]);
  const seen = new Map<string, string[]>();
  const rest: string[] = [];
  let dryRun = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--dry-run') {
      dryRun = true;
      continue;
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!match || !takes.has(match[1]!)) {
      rest.push(arg);
      continue;
    }
    const value = match[2] ?? args[++i];
    if (value === undefined || (match[2] === undefined && value.startsWith('--'))) throw new UsageError(`--${match[1]} needs a value`);
    seen.set(match[1]!, [...(seen.get(match[1]!) ?? []), value]);
  }
  const last = (name: string) => seen.get(name)?.at(-1);
  const cpus = last('cpus');
  if (cpus !== undefined && !/^[1-9]\d*$/.test(cpus)) throw new UsageError(`--cpus must be a positive integer, got '${cpus}'`);
  const resources: Resources = {
    ...(last('partition') ? { partition: last('partition')! } : {}),
    ...(last('gres') ? { gres: last('gres')! } : {}),
    ...(cpus ? { cpus: Number(cpus) } : {}),
    ...(last('mem') ? { mem: last('mem')! } : {}),
    ...(last('time') ? { time: last('time')! } : {}),
    ...(last('account') ? { account: last('account')! } : {}),
    ...(seen.has('sbatch') ? { extra: seen.get('sbatch')! } : {}),
  };
  const ownValues = new Map(own.filter((name) => seen.has(name)).map((name) => [name, seen.get(name)!]));
  return {
    resources,
    dryRun,
    ...(last('job-name') ? { jobName: last('job-name')! } : {}),
    setup: seen.get('setup') ?? [],
    ...(last('dfd') ? { dfd: last('dfd')! } : {}),
    own: ownValues,
    rest,
  };
}

export const RESOURCE_USAGE = `Slurm resources (each becomes the sbatch option of the same meaning):
  --partition P    --account A    --gres gpu:1    --cpus C (cpus-per-task)    --mem 16G    --time 04:00:00
  --sbatch OPT     any other sbatch option, e.g. --sbatch=--qos=short (repeatable)
  --job-name NAME  --setup 'module load 2023' (a line run before dfd in every script; repeatable)
  --dfd CMD        how tasks start dfd (default: this node binary and this installation's dfd.js)
  --dry-run        print the scripts and the sbatch lines; submit nothing`;
