/** `dfd slurm <encode|lare-extract|sweep|status|retry>` and the two commands tasks run (sweep-task, sweep-summary). */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError, type CliCommand, type CliIO } from '@dfd/core';
import { parseLaunchFlags, RESOURCE_USAGE } from './flags.js';
import { loadLaunch, newLaunchDir, stateRoot, type LaunchRecord } from './launch.js';
import { retryLaunch, runStatus } from './manage.js';
import { commandLine, renderScript } from './script.js';
import { dfdWords, launchPrepared, runShardLaunch, shardUsage } from './shard-launch.js';
import { createSweepParent, runSweepSummary, runSweepTask } from './sweep.js';

const SWEEP_USAGE = `dfd slurm sweep EXPERIMENT (--grid key.path=v1,v2 [--grid ...] | --variants FILE) [--set key.path=value ...] [--runs-dir DIR] [resources] [--dry-run]

One array task per configuration: of the grid (the cartesian product of every --grid; values are JSON when
they parse), or of a sweep defined in code: --variants FILE, a .ts/.js module whose default export (or a
.json file) is [{ name, overrides }], each a partial experiment merged over EXPERIMENT (as runSweep takes). Each task is a normal run with its own run directory (<runs>/<name>.<configuration>/) and its
own tracker run, child of one parent run (<runs>/<name>/<sweep-id>/). A summary job (afterok) ranks the
children by their validation selection metric (trainer.selectMetric), names the chosen one and records its
test metrics on the parent; test metrics never rank. If some configuration keeps failing, summarise the
others by hand: dfd slurm sweep-summary <parent run dir>.

${RESOURCE_USAGE}`;

const USAGE = `dfd slurm <command> ...   (Slurm job arrays for long dfd commands)

  dfd slurm encode ... --out FILE --shards N [resources]        dfd encode, one shard per array task, then merge
  dfd slurm lare-extract ... --out DIR --shards N [resources]   dfd lare extract, the same way
  dfd slurm sweep EXPERIMENT --grid key=v1,v2 ... [resources]   one run per configuration, ranked on validation
  dfd slurm status JOB [--json]                                 each task: pending, running, completed, failed ...
  dfd slurm retry JOB                                           resubmit only failed or cancelled tasks

  (run by the jobs themselves) dfd slurm sweep-task PARENT_DIR K, dfd slurm sweep-summary PARENT_DIR

dfd slurm <command> --help for each. Job records live in $DFD_SLURM_DIR (default ./.dfd-slurm).`;

/**
 * Children are named `<name>.<configuration>`; a tracker that files runs under the experiment's name (MLflow)
 * would put each child in an experiment of its own, away from the parent. Unless the user chose one, every
 * run of the sweep goes to the sweep's experiment.
 */
function mlflowExperiment(name: string): string {
  return `export MLFLOW_EXPERIMENT_NAME="\${MLFLOW_EXPERIMENT_NAME:-${name}}"`;
}

async function launchSweep(args: string[], io: CliIO): Promise<number> {
  const flags = parseLaunchFlags(args, ['grid', 'variants', 'set', 'runs-dir']);
  if (flags.rest.length !== 1 || flags.rest[0]!.startsWith('--')) {
    throw new UsageError(`expected one experiment file and dfd slurm sweep's own options, got: ${flags.rest.join(' ') || '(nothing)'}`);
  }
  const variants = flags.own.get('variants')?.at(-1);
  const runsDir = flags.own.get('runs-dir')?.at(-1);
  const request = { experimentPath: flags.rest[0]!, sets: flags.own.get('set') ?? [], grids: flags.own.get('grid') ?? [], ...(variants ? { variants } : {}), ...(runsDir ? { runsDir } : {}) };
  const sweep = await createSweepParent(request, io, flags.dryRun);
  const n = sweep.configurations.length;
  const dir = newLaunchDir(stateRoot(io.cwd, io.env), 'sweep');
  const dfd = dfdWords(flags);
  const jobName = flags.jobName ?? `dfd-sweep-${sweep.name}`;
  const arrayText = renderScript({
    jobName,
    array: `0-${n - 1}`,
    output: join(dir, 'logs', '%A_%a.out'),
    cwd: io.cwd,
    resources: flags.resources,
    setup: flags.setup,
    notes: [`dfd slurm sweep: configuration $SLURM_ARRAY_TASK_ID of ${n}, child of ${sweep.dir}`, ...sweep.configurations.map((c, k) => `  ${k}: ${c.name}`)],
    body: [mlflowExperiment(sweep.name), `exec ${commandLine([...dfd, 'slurm', 'sweep-task', sweep.dir, { raw: '"$SLURM_ARRAY_TASK_ID"' }])}`],
  });
  const { gres: _gres, cpus: _cpus, ...summaryResources } = flags.resources;
  const afterText = renderScript({
    jobName: `${jobName}-summary`,
    output: join(dir, 'logs', '%j-summary.out'),
    cwd: io.cwd,
    resources: summaryResources,
    setup: flags.setup,
    notes: ['dfd slurm sweep: ranks the children on validation; submitted with --dependency=afterok:<array job>'],
    body: [mlflowExperiment(sweep.name), `exec ${commandLine([...dfd, 'slurm', 'sweep-summary', sweep.dir])}`],
  });
  const arrayScript = join(dir, 'array.sbatch');
  const afterScript = join(dir, 'after.sbatch');
  writeFileSync(arrayScript, arrayText, { mode: 0o755 });
  writeFileSync(afterScript, afterText, { mode: 0o755 });
  const record: LaunchRecord = { kind: 'sweep', dir, cwd: io.cwd, tasks: n, taskNames: sweep.configurations.map((c) => c.name), afterName: 'summary', output: sweep.dir, submissions: [] };
  return launchPrepared({ record, arrayScript, afterScript, arrayText, afterText }, flags.dryRun, io);
}

function positional(args: string[], count: number, what: string): string[] {
  const words = args.filter((a) => !a.startsWith('--'));
  if (words.length !== count) throw new UsageError(`expected ${what}`);
  return words;
}

export const slurmCommand: CliCommand = {
  name: 'slurm',
  summary: 'run dfd encode / lare extract / sweeps as Slurm job arrays; status and retry of failed tasks',
  usage: `${USAGE}\n\n${shardUsage('encode')}\n\n${SWEEP_USAGE.split('\n\n').slice(0, -1).join('\n\n')}`,
  async run(args: string[], io: CliIO): Promise<number> {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'encode':
      case 'lare-extract':
        if (rest.includes('--help')) return io.stdout.write(`${shardUsage(sub)}\n`), 0;
        return runShardLaunch(sub, rest, io);
      case 'sweep':
        if (rest.includes('--help')) return io.stdout.write(`${SWEEP_USAGE}\n`), 0;
        return launchSweep(rest, io);
      case 'status': {
        const [job] = positional(rest, 1, 'one job id (or launch folder): dfd slurm status JOB');
        return runStatus(loadLaunch(job!, io.cwd, io.env), io, rest.includes('--json'));
      }
      case 'retry': {
        const [job] = positional(rest, 1, 'one job id (or launch folder): dfd slurm retry JOB');
        const outcome = await retryLaunch(loadLaunch(job!, io.cwd, io.env), io.env);
        io.stdout.write(`${outcome.message}\n`);
        return 0;
      }
      case 'sweep-task': {
        const [dir, k] = positional(rest, 2, 'PARENT_DIR K: dfd slurm sweep-task <parent run dir> <task index>');
        if (!/^\d+$/.test(k!)) throw new UsageError(`task index must be a whole number, got '${k}'`);
        return runSweepTask(resolve(io.cwd, dir!), Number(k), io);
      }
      case 'sweep-summary': {
        const [dir] = positional(rest, 1, 'PARENT_DIR: dfd slurm sweep-summary <parent run dir>');
        return runSweepSummary(resolve(io.cwd, dir!), io);
      }
      default:
        throw new UsageError(sub ? `unknown sub-command '${sub}'` : 'name a sub-command');
    }
  },
};
