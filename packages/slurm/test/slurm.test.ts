/**
 * @dfd/slurm against a real one-node Slurm (started once by slurm-setup.ts): sharded `dfd encode` whose merge
 * equals the unsharded file byte for byte, a cancelled task completed by retry, sbatch's own rejection of a
 * bad partition, and a sweep whose summary selects on validation. Tasks run the built `dfd` (npm test builds
 * first), exactly as on a cluster.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { beforeAll, describe, expect, inject, test } from 'vitest';
import { cliMain, readEvents, runExperiment, type EvalEvent, type SweepSummary } from '@dfd/core';
import { accounting, slurmCommand } from '@dfd/slurm';
import { sweepBase } from './fixtures/sweep-experiment.js';
import { submittedJob, waitForLaunch } from './support/wait.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const TINY_CLIP = join(REPO, 'examples/models/tiny-clip');
const DFD = join(REPO, 'packages/core/bin/dfd.js');

function makeIo(cwd: string, env: NodeJS.ProcessEnv) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += String(d)));
  stderr.on('data', (d) => (err += String(d)));
  return { io: { stdout, stderr, cwd, env, isTTY: false }, out: () => out, err: () => err };
}

const conf = inject('slurmConf');
const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: conf };
/** The node's CPU count: asking for all of them runs one task at a time (a deterministic queue). */
const nodeCpus = () => Number(/CPUs=(\d+)/.exec(readFileSync(conf, 'utf8'))![1]);

describe('dfd slurm encode on a real Slurm', () => {
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

describe('dfd slurm sweep on a real Slurm', () => {
  test('3 configurations as array tasks, each a child run of one parent; the summary selects on validation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dfd-slurm-sweep-'));
    const runs = join(dir, 'runs');
    // The toy data is written on first use: write it once here, not by three tasks at once.
    await runExperiment({ ...sweepBase(runs, 'toy-warmup'), trainer: { epochs: 1, batchSize: 16 } });
    const sweepEnv = { ...env, DFD_TEST_RUNS: runs, TSX_TSCONFIG_PATH: resolve(REPO, 'packages/core/test/tsconfig.json') /* the toy plugin's decorators */ };
    const { io, out } = makeIo(dir, sweepEnv);
    const experiment = join(REPO, 'packages/slurm/test/fixtures/sweep-experiment.ts');
    expect(await slurmCommand.run(['sweep', experiment, '--grid', 'trainer.optimizer.lr=0.3,0.03,0.003', '--cpus', '1', '--mem', '500M'], io)).toBe(0);
    const job = submittedJob(out());
    const status = await waitForLaunch(job, dir, sweepEnv);
    expect(status.tasks.map((t) => t.state)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    expect(status.after).toMatchObject({ name: 'summary', state: 'COMPLETED' });

    const parentDir = status.record.output;
    const sweepId = parentDir.split('/').pop()!;
    const summary = JSON.parse(readFileSync(join(parentDir, 'sweep-summary.json'), 'utf8')) as SweepSummary;
    // Each configuration is its own run (own directory), a child of the parent.
    const children = ['lr-0.3', 'lr-0.03', 'lr-0.003'].map((name) => {
      const folder = join(runs, `toy-sweep.${name}`);
      const [id] = readdirSync(folder);
      const runDir = join(folder, id!);
      expect(readEvents(runDir)[0]).toMatchObject({ type: 'run-start', parentRunId: sweepId });
      expect(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')).trainer.optimizer.lr).toBe(Number(name.slice(3)));
      const selected = JSON.parse(readFileSync(join(runDir, 'selected.json'), 'utf8'));
      const test = readEvents(runDir).find((e): e is EvalEvent => e.type === 'eval' && e.split === 'test')!;
      return { name, runDir, val: selected.value as number, test: test.report.overall };
    });
    // Ranked by each child's own validation AUC (what it selected its checkpoint on), best first.
    expect(summary.selection).toEqual({ metric: 'auc', mode: 'max', split: 'val' });
    const byVal = [...children].sort((a, b) => b.val - a.val);
    expect(summary.ranking.map((r) => r.val)).toEqual(byVal.map((c) => c.val));
    expect(new Set(children.map((c) => c.val)).size, 'the configurations end at different validation AUCs').toBe(3);
    const chosen = children.find((c) => c.name === summary.chosen!.name)!;
    expect(chosen.val).toBe(Math.max(...children.map((c) => c.val)));
    expect(summary.chosen!.runDir).toBe(chosen.runDir);
    // Its test metrics are reported; no other child's test metric reaches the parent.
    expect(summary.chosen!.test!.overall).toEqual(chosen.test);
    const parentEvents = readEvents(parentDir);
    const parentTests = parentEvents.filter((e): e is EvalEvent => e.type === 'eval' && e.split === 'test');
    expect(parentTests).toHaveLength(1);
    expect(parentTests[0]!.report.overall).toEqual(chosen.test);
    expect(parentEvents.at(-1)).toMatchObject({ type: 'end', status: 'finished' });
    const summaryLog = readdirSync(join(status.record.dir, 'logs')).find((f) => f.endsWith('-summary.out'))!;
    expect(readFileSync(join(status.record.dir, 'logs', summaryLog), 'utf8')).toContain(`chosen: ${summary.chosen!.name} (val/auc=`);
  });
});
