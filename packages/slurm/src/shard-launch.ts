/**
 * `dfd slurm encode|lare-extract ... --shards N`: an array of N tasks, task K running the same dfd command
 * with `--shard K/N` into its own shard output, then the merge as a job that starts only if all N succeeded.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError, type CliIO } from '@dfd/core';
import { parseLaunchFlags, RESOURCE_USAGE, type LaunchFlags } from './flags.js';
import { arraySpec, newLaunchDir, saveLaunch, stateRoot, submit, type LaunchRecord } from './launch.js';
import { commandLine, defaultDfdCommand, renderScript, shellQuote } from './script.js';
import { extractOut, SHARDABLE, shardOut, type ShardableCommand } from './shardable.js';

export function shardUsage(kind: ShardableCommand['kind']): string {
  const words = SHARDABLE[kind].words.join(' ');
  return `dfd slurm ${kind} <the arguments of dfd ${words}> --out OUT --shards N [resources] [--dry-run]

Runs \`dfd ${words}\` as a Slurm array of N tasks: task K (0-based, $SLURM_ARRAY_TASK_ID) runs it with
--shard K/N into OUT.shards/K-of-N; a merge job (--dependency=afterok on the array) then joins the shards
into OUT. Tasks are resumable: \`dfd slurm retry JOB\` resubmits only failed or cancelled ones.

${RESOURCE_USAGE}`;
}

/** The dfd invocation as script words: an override is used verbatim (it may be `npx dfd` or a module path). */
export function dfdWords(flags: LaunchFlags): Array<string | { raw: string }> {
  return flags.dfd ? [{ raw: flags.dfd }] : defaultDfdCommand();
}

export interface PreparedLaunch {
  record: LaunchRecord;
  arrayScript: string;
  afterScript: string;
  arrayText: string;
  afterText: string;
}

function prepare(command: ShardableCommand, args: string[], io: CliIO): { prepared: PreparedLaunch; flags: LaunchFlags } {
  const flags = parseLaunchFlags(args, ['shards']);
  const shardsText = flags.own.get('shards')?.at(-1);
  if (!shardsText || !/^[1-9]\d*$/.test(shardsText)) throw new UsageError(`--shards N (a positive integer) is required${shardsText ? `, got '${shardsText}'` : ''}`);
  const n = Number(shardsText);
  const { out: outArg, rest } = extractOut(flags.rest);
  const out = resolve(io.cwd, outArg);
  const dir = newLaunchDir(stateRoot(io.cwd, io.env), command.kind);
  const dfd = dfdWords(flags);
  const jobName = flags.jobName ?? `dfd-${command.kind}`;
  const shardDir = `${out}.shards`;
  const arrayText = renderScript({
    jobName,
    array: `0-${n - 1}`,
    output: join(dir, 'logs', '%A_%a.out'),
    cwd: io.cwd,
    resources: flags.resources,
    setup: flags.setup,
    notes: [`dfd slurm ${command.kind}: shard $SLURM_ARRAY_TASK_ID of ${n}; output ${shardOut(command, out, 'K', n)}`],
    body: [
      `K="$SLURM_ARRAY_TASK_ID"`,
      `mkdir -p ${shellQuote(shardDir)}`,
      `exec ${commandLine([...dfd, ...command.words, ...rest, '--shard', { raw: `"$K/${n}"` }, '--out', { raw: `${shellQuote(shardDir)}/"$K-of-${n}${command.suffix}"` }])}`,
    ],
  });
  const shardOuts = Array.from({ length: n }, (_, k) => shardOut(command, out, k, n));
  // The merge reads files and writes one: it needs no GPU and one CPU.
  const { gres: _gres, cpus: _cpus, ...mergeResources } = flags.resources;
  const afterText = renderScript({
    jobName: `${jobName}-merge`,
    output: join(dir, 'logs', '%j-merge.out'),
    cwd: io.cwd,
    resources: mergeResources,
    setup: flags.setup,
    notes: [`dfd slurm ${command.kind}: merge of ${n} shards into ${out}; submitted with --dependency=afterok:<array job>`],
    body: [`exec ${commandLine([...dfd, ...command.merge(out, shardOuts)])}`],
  });
  const record: LaunchRecord = {
    kind: command.kind,
    dir,
    cwd: io.cwd,
    tasks: n,
    taskNames: Array.from({ length: n }, (_, k) => `shard ${k}/${n}`),
    afterName: 'merge',
    output: out,
    submissions: [],
  };
  const arrayScript = join(dir, 'array.sbatch');
  const afterScript = join(dir, 'after.sbatch');
  writeFileSync(arrayScript, arrayText, { mode: 0o755 });
  writeFileSync(afterScript, afterText, { mode: 0o755 });
  return { prepared: { record, arrayScript, afterScript, arrayText, afterText }, flags };
}

/** Prints the scripts (dry run) or submits them and records the launch. */
export async function launchPrepared(prepared: PreparedLaunch, dryRun: boolean, io: CliIO): Promise<number> {
  const { record } = prepared;
  const array = arraySpec(Array.from({ length: record.tasks }, (_, k) => k));
  if (dryRun) {
    io.stdout.write(
      `# ${prepared.arrayScript}  (sbatch --array=${array} ${prepared.arrayScript})\n${prepared.arrayText}\n` +
        `# ${prepared.afterScript}  (sbatch --dependency=afterok:<array job id> ${prepared.afterScript})\n${prepared.afterText}\n` +
        `# dry run: nothing submitted; the scripts are in ${record.dir}\n`,
    );
    return 0;
  }
  const { arrayJob, afterJob } = await submit({ arrayScript: prepared.arrayScript, afterScript: prepared.afterScript, array, env: io.env });
  record.submissions.push({ at: new Date().toISOString(), arrayJob, tasks: Array.from({ length: record.tasks }, (_, k) => k), afterJob });
  saveLaunch(record);
  io.stdout.write(
    `submitted array job ${arrayJob} (${record.tasks} tasks) and ${record.afterName} job ${afterJob} (afterok:${arrayJob})\n` +
      `  output: ${record.output}\n  logs:   ${join(record.dir, 'logs')}\n` +
      `  check:  dfd slurm status ${arrayJob}     failed or cancelled tasks: dfd slurm retry ${arrayJob}\n`,
  );
  return 0;
}

export async function runShardLaunch(kind: ShardableCommand['kind'], args: string[], io: CliIO): Promise<number> {
  const { prepared, flags } = prepare(SHARDABLE[kind], args, io);
  return launchPrepared(prepared, flags.dryRun, io);
}
