/**
 * @dfd/slurm against a real one-node Slurm (started once by slurm-setup.ts): sharded `dfd encode` whose merge
 * equals the unsharded file byte for byte, a cancelled task completed by retry, sbatch's own rejection of a
 * bad partition, a dry run, and a sweep task cancelled mid-run that retry resumes (the sweep's selection and
 * MLflow runs are in sweep-mlflow.test.ts). Tasks run the built `dfd` (npm test builds
 * first), exactly as on a cluster.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { beforeAll, describe, expect, inject, test } from 'vitest';
import { cliMain, readEvents, runExperiment, type SweepSummary } from '@dfd/core';
import { accounting, slurmCommand } from '@dfd/slurm';
import { sweepBase } from './fixtures/sweep-experiment.js';
import { makeIo, submittedJob, waitForLaunch } from './support/wait.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const TINY_CLIP = join(REPO, 'examples/models/tiny-clip');
const DFD = join(REPO, 'packages/core/bin/dfd.js');


const conf = inject('slurmConf');
const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: conf };
/** The node's CPU count: asking for all of them runs one task at a time (a deterministic queue). */
const nodeCpus = () => Number(/CPUs=(\d+)/.exec(readFileSync(conf, 'utf8'))![1]);

// Slurm queues and a busy 2-core machine: each test waits for real jobs.
describe('dfd slurm encode on a real Slurm', { timeout: 300_000 }, () => {
  let dir: string;
  const encodeArgs = ['--model', TINY_CLIP, '--images', 'imgs/*.png', '--batch', '4'];

  beforeAll(async () => {
    expect(conf, 'slurm-setup.ts provides the cluster').toMatch(/slurm\.conf$/);
    dir = mkdtempSync(join(tmpdir(), 'dfd-slurm-encode-'));
    mkdirSync(join(dir, 'imgs'));
    for (let i = 0; i < 14; i++) {
      await sharp({ create: { width: 28 + i * 5, height: 36 + (i % 3) * 4, channels: 3, background: { r: (i * 41) % 256, g: (i * 89) % 256, b: (i * 17) % 256 } } })
        .png()
        .toFile(join(dir, 'imgs', `img${String(i).padStart(2, '0')}.png`));
    }
    // The reference: one unsharded run of the same built command.
    execFileSync(process.execPath, [DFD, 'encode', ...encodeArgs, '--out', 'unsharded.safetensors'], { cwd: dir, env, stdio: 'pipe' });
  });

  const sameAsUnsharded = (name: string) => {
    expect(readFileSync(join(dir, name)).equals(readFileSync(join(dir, 'unsharded.safetensors')))).toBe(true);
    expect(readFileSync(join(dir, `${name}.index.json`), 'utf8')).toBe(readFileSync(join(dir, 'unsharded.safetensors.index.json'), 'utf8'));
  };

  test('4 shards as an array job, merged after them (afterok): the same file as one unsharded run, byte for byte', async () => {
    const { io, out } = makeIo(dir, env);
    expect(await slurmCommand.run(['encode', ...encodeArgs, '--out', 'sharded.safetensors', '--shards', '4', '--cpus', '1', '--mem', '500M', '--time', '00:05:00'], io)).toBe(0);
    const job = submittedJob(out());
    const status = await waitForLaunch(job, dir, env);
    expect(status.tasks.map((t) => [t.job, t.state])).toEqual([0, 1, 2, 3].map((k) => [`${job}_${k}`, 'COMPLETED']));
    expect(status.after).toMatchObject({ name: 'merge', state: 'COMPLETED' });
    // This cluster has no accounting (like one without slurmdbd): detected, and the controller asked instead.
    expect(await accounting(env)).toEqual({ enabled: false, storage: 'accounting_storage/none' });
    expect(status.source).toBe('squeue+scontrol');
    sameAsUnsharded('sharded.safetensors');
    const shards = readdirSync(join(dir, 'sharded.safetensors.shards')).filter((f) => f.endsWith('.safetensors')).sort();
    expect(shards).toEqual(['0-of-4.safetensors', '1-of-4.safetensors', '2-of-4.safetensors', '3-of-4.safetensors']);
    // Each task encoded its own block only (14 images: 3, 4, 3, 4).
    const rows = shards.map((f) => JSON.parse(readFileSync(join(dir, 'sharded.safetensors.shards', `${f}.index.json`), 'utf8')).rows.length);
    expect(rows).toEqual([3, 4, 3, 4]);
  });

  test('a task cancelled with scancel is resubmitted by retry, alone; the merge then completes the same file', async () => {
    const { io, out } = makeIo(dir, env);
    // All of the node's CPUs per task: one task at a time, so task 2 is still pending when cancelled.
    expect(await slurmCommand.run(['encode', ...encodeArgs, '--out', 'retried.safetensors', '--shards', '4', '--cpus', String(nodeCpus()), '--mem', '500M'], io)).toBe(0);
    const job = submittedJob(out());
    execFileSync('scancel', [`${job}_2`], { env });
    const broken = await waitForLaunch(job, dir, env);
    const byTask = broken.tasks.map((t) => t.state);
    expect(byTask[2]).toMatch(/^(CANCELLED|UNKNOWN)$/); // a pending task cancelled leaves no record: UNKNOWN
    expect([byTask[0], byTask[1], byTask[3]]).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    // The merge could never run: kill_invalid_depend cancelled it.
    expect(broken.after!.state).toBe('CANCELLED');
    expect(existsSync(join(dir, 'retried.safetensors'))).toBe(false);

    const statusText = makeIo(dir, env);
    expect(await slurmCommand.run(['status', job], statusText.io)).toBe(0);
    expect(statusText.out()).toMatch(/shard 2\/4 +\d+_2 +(CANCELLED|UNKNOWN)/);
    expect(statusText.out()).toContain(`to finish: dfd slurm retry ${job}`);

    const shardDir = join(dir, 'retried.safetensors.shards');
    const before = [0, 1, 3].map((k) => statSync(join(shardDir, `${k}-of-4.safetensors`)).mtimeMs);
    const retry = makeIo(dir, env);
    expect(await slurmCommand.run(['retry', job], retry.io)).toBe(0);
    expect(retry.out()).toMatch(/resubmitted task\(s\) 2 as array job (\d+)/);
    const again = /as array job (\d+)/.exec(retry.out())![1]!;
    const fixed = await waitForLaunch(job, dir, env);
    expect(fixed.tasks.map((t) => t.job)).toEqual([`${job}_0`, `${job}_1`, `${again}_2`, `${job}_3`]);
    expect(fixed.tasks.every((t) => t.state === 'COMPLETED')).toBe(true);
    expect(fixed.after!.state).toBe('COMPLETED');
    sameAsUnsharded('retried.safetensors');
    // Finished shards were not redone: same files, and only task 2 ran in the retry.
    expect([0, 1, 3].map((k) => statSync(join(shardDir, `${k}-of-4.safetensors`)).mtimeMs)).toEqual(before);
    const logs = readdirSync(join(fixed.record.dir, 'logs')).filter((f) => f.startsWith(`${again}_`));
    expect(logs).toEqual([`${again}_2.out`]);
    const nothing = makeIo(dir, env);
    await slurmCommand.run(['retry', job], nothing.io);
    expect(nothing.out()).toMatch(/nothing to retry: all 4 task\(s\) and the merge completed/);
  });

  test('a bad --partition is rejected by sbatch, and its message is shown', async () => {
    const { io, err } = makeIo(dir, env);
    const code = await cliMain(['slurm', 'encode', ...encodeArgs, '--out', 'never.safetensors', '--shards', '2', '--partition', 'no-such-partition'], io);
    expect(code).toBe(1);
    expect(err()).toContain('sbatch: error: invalid partition specified: no-such-partition');
    expect(err()).toMatch(/sbatch failed \(exit 1\)/);
  });

  test('jobs Slurm has forgotten (no accounting, past MinJobAge): retry resubmits nothing when the output is complete', async () => {
    // A launch record whose job ids the controller never had, like one older than MinJobAge.
    const state = join(dir, 'forgotten');
    const launch = join(state, 'encode-old');
    mkdirSync(join(launch, 'logs'), { recursive: true });
    const record = { kind: 'encode', dir: launch, cwd: dir, tasks: 2, taskNames: ['shard 0/2', 'shard 1/2'], afterName: 'merge', output: join(dir, 'unsharded.safetensors'), submissions: [{ at: '', arrayJob: '987650', tasks: [0, 1], afterJob: '987651' }] };
    writeFileSync(join(launch, 'launch.json'), JSON.stringify(record));
    const status = makeIo(dir, env);
    expect(await slurmCommand.run(['status', launch], status.io)).toBe(0);
    expect(status.out()).toMatch(/shard 0\/2 +987650_0 +UNKNOWN .*no record left/);
    expect(status.out()).toContain(`output complete: ${record.output}`);
    const retry = makeIo(dir, env);
    expect(await slurmCommand.run(['retry', launch], retry.io)).toBe(0);
    expect(retry.out()).toMatch(/nothing to retry: Slurm no longer has these jobs, and the output .* is complete/);
  });

  test('--dry-run prints both scripts and submits nothing', async () => {
    const { io, out } = makeIo(dir, env);
    const before = spawnSync('squeue', ['-h', '-t', 'all', '-o', '%i'], { env, encoding: 'utf8' }).stdout;
    expect(await slurmCommand.run(['encode', ...encodeArgs, '--out', 'dry.safetensors', '--shards', '3', '--gres', 'gpu:1', '--account', 'proj', '--dry-run'], io)).toBe(0);
    expect(out()).toContain('#SBATCH --array=0-2');
    expect(out()).toContain('#SBATCH --gres=gpu:1');
    expect(out()).toContain('--shard "$K/3" --out');
    expect(out()).toMatch(/encode merge --out \S+dry\.safetensors \S+0-of-3\.safetensors \S+1-of-3\.safetensors \S+2-of-3\.safetensors/);
    expect(spawnSync('squeue', ['-h', '-t', 'all', '-o', '%i'], { env, encoding: 'utf8' }).stdout).toBe(before);
  });
});

describe('dfd slurm sweep: a task cancelled mid-run', { timeout: 300_000 }, () => {
  test('is resumed by retry from its last checkpoint, in the same run directory, and the summary then runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dfd-slurm-resume-'));
    const runs = join(dir, 'runs');
    await runExperiment({ ...sweepBase(runs, 'toy-warmup'), trainer: { epochs: 1, batchSize: 16 } });
    const sweepEnv: NodeJS.ProcessEnv = { ...env, DFD_TEST_RUNS: runs, TSX_TSCONFIG_PATH: resolve(REPO, 'packages/core/test/tsconfig.json') };
    delete sweepEnv.MLFLOW_TRACKING_URI; // untracked: this test is about Slurm
    const { io, out } = makeIo(dir, sweepEnv);
    const experiment = join(REPO, 'packages/slurm/test/fixtures/sweep-experiment.ts');
    // One task at a time (all CPUs each), long enough to be cancelled mid-run.
    const args = ['sweep', experiment, '--grid', 'trainer.optimizer.lr=0.3,0.03', '--set', 'trainer.epochs=150', '--cpus', String(nodeCpus())];
    expect(await slurmCommand.run(args, io)).toBe(0);
    const job = submittedJob(out());
    const folder = join(runs, 'toy-sweep.lr-0.3');
    const lastCheckpoint = () => existsSync(folder) && readdirSync(folder).some((id) => existsSync(join(folder, id, 'checkpoints', 'last.safetensors')));
    const deadline = Date.now() + 120_000;
    while (!lastCheckpoint() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(lastCheckpoint(), 'task 0 wrote a checkpoint').toBe(true);
    execFileSync('scancel', [`${job}_0`], { env });
    const broken = await waitForLaunch(job, dir, sweepEnv);
    expect(broken.tasks.map((t) => t.state)).toEqual(['CANCELLED', 'COMPLETED']);
    expect(broken.after!.state).toBe('CANCELLED');
    const [runId] = readdirSync(folder);
    expect(readEvents(join(folder, runId!)).at(-1)).toMatchObject({ type: 'end', status: 'killed' });

    const retry = makeIo(dir, sweepEnv);
    expect(await slurmCommand.run(['retry', job], retry.io)).toBe(0);
    expect(retry.out()).toMatch(/resubmitted task\(s\) 0 as array job \d+/);
    const fixed = await waitForLaunch(job, dir, sweepEnv);
    expect(fixed.tasks.map((t) => t.state)).toEqual(['COMPLETED', 'COMPLETED']);
    expect(fixed.after!.state).toBe('COMPLETED');
    // The same run, continued: no second run directory, a resumed run-start, ended finished.
    expect(readdirSync(folder)).toEqual([runId]);
    const events = readEvents(join(folder, runId!));
    const resumed = events.filter((e) => e.type === 'run-start').at(-1) as { resumedFromStep?: number };
    expect(resumed.resumedFromStep).toBeGreaterThan(0);
    expect(events.at(-1)).toMatchObject({ type: 'end', status: 'finished', step: 150 * 4 });
    const summary = JSON.parse(readFileSync(join(fixed.record.output, 'sweep-summary.json'), 'utf8')) as SweepSummary;
    expect(summary.ranking).toHaveLength(2);
  });
});
