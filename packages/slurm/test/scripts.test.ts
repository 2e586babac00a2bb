/** The parts of @dfd/slurm that need no cluster: scripts, flags, grids, array specs. */
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { UsageError } from '@dfd/core';
import { arraySpec, expandGrid, extractOut, renderScript, shellQuote, slurmCommand } from '@dfd/slurm';
import { createSweepParent } from '../src/sweep.js';
import { makeIo } from './support/wait.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/sweep-experiment.ts', import.meta.url));

describe('sbatch scripts', () => {
  test('directives from the resource flags, a quoted command, set -euo pipefail', () => {
    const text = renderScript({
      jobName: 'dfd-encode',
      array: '0-3',
      output: '/x/logs/%A_%a.out',
      cwd: '/work dir',
      resources: { partition: 'gpu_a100', account: 'proj', gres: 'gpu:1', cpus: 18, mem: '32G', time: '04:00:00', extra: ['--qos=short'] },
      setup: ['module load 2023'],
      body: ['exec dfd encode'],
    });
    expect(text.split('\n').filter((l) => l.startsWith('#SBATCH'))).toEqual([
      '#SBATCH --job-name=dfd-encode',
      '#SBATCH --array=0-3',
      '#SBATCH --output=/x/logs/%A_%a.out',
      '#SBATCH --chdir=/work dir',
      '#SBATCH --partition=gpu_a100',
      '#SBATCH --account=proj',
      '#SBATCH --gres=gpu:1',
      '#SBATCH --cpus-per-task=18',
      '#SBATCH --mem=32G',
      '#SBATCH --time=04:00:00',
      '#SBATCH --qos=short',
    ]);
    expect(text).toMatch(/^#!\/bin\/bash\n/);
    expect(text).toContain('set -euo pipefail\nmodule load 2023\nexec dfd encode\n');
    expect(shellQuote("it's a *.png")).toBe(`'it'\\''s a *.png'`);
    expect(shellQuote('/plain/path-1.0_x')).toBe('/plain/path-1.0_x');
  });

  test('array specs, grids and --out handling', () => {
    expect(arraySpec([3, 0, 1, 2, 7, 9, 10])).toBe('0-3,7,9-10');
    expect(arraySpec([2])).toBe('2');
    expect(expandGrid(['trainer.optimizer.lr=0.1,0.01', 'trainer.epochs=1,2'])).toEqual([
      { name: 'lr-0.1_epochs-1', sets: ['trainer.optimizer.lr=0.1', 'trainer.epochs=1'] },
      { name: 'lr-0.1_epochs-2', sets: ['trainer.optimizer.lr=0.1', 'trainer.epochs=2'] },
      { name: 'lr-0.01_epochs-1', sets: ['trainer.optimizer.lr=0.01', 'trainer.epochs=1'] },
      { name: 'lr-0.01_epochs-2', sets: ['trainer.optimizer.lr=0.01', 'trainer.epochs=2'] },
    ]);
    expect(() => expandGrid([])).toThrow(UsageError);
    expect(() => expandGrid(['dataset.config.root=/a/b,/a:b'])).toThrow(/same name/);
    expect(extractOut(['--model', 'm', '--out=o.safetensors', '--batch', '4'])).toEqual({ out: 'o.safetensors', rest: ['--model', 'm', '--batch', '4'] });
    expect(() => extractOut(['--model', 'm'])).toThrow(/--out is required/);
    expect(() => extractOut(['--out', 'o', '--shard', '1/2'])).toThrow(/do not pass --shard/);
  });

  test('dfd slurm lare-extract --dry-run: each task runs dfd lare extract --shard K/N into its own folder; dfd lare merge joins them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dfd-slurm-lare-'));
    const { io, out } = makeIo(dir, {});
    const args = ['lare-extract', '--model', '/models/sd15-onnx', '--dataset', 'train.txt', '--out', 'lare/train', '--timestep', '200', '--shards', '3', '--partition', 'gpu_a100', '--gres', 'gpu:1', '--dry-run'];
    expect(await slurmCommand.run(args, io)).toBe(0);
    const text = out();
    expect(text).toContain(`lare extract --model /models/sd15-onnx --dataset train.txt --timestep 200 --shard "$K/3" --out ${dir}/lare/train.shards/"$K-of-3"`);
    expect(text).toContain(`lare merge ${dir}/lare/train ${dir}/lare/train.shards/0-of-3 ${dir}/lare/train.shards/1-of-3 ${dir}/lare/train.shards/2-of-3`);
    // The merge job asks for no GPU.
    const merge = text.slice(text.indexOf('after.sbatch'));
    expect(merge).not.toContain('--gres');
    expect(merge).toContain('#SBATCH --partition=gpu_a100');
    expect(readdirSync(join(dir, '.dfd-slurm')).filter((d) => d.startsWith('lare-extract-'))).toHaveLength(1);
  });

  test('argument errors name the problem', async () => {
    const { io } = makeIo(tmpdir(), {});
    await expect(slurmCommand.run(['encode', '--out', 'x', '--dry-run'], io)).rejects.toThrow(/--shards N .* is required/);
    await expect(slurmCommand.run(['encode', '--out', 'x', '--shards', '0'], io)).rejects.toThrow(/got '0'/);
    await expect(slurmCommand.run(['encode', '--out', 'x', '--shards', '2', '--cpus', 'many'], io)).rejects.toThrow(/--cpus must be a positive integer/);
    await expect(slurmCommand.run(['status', '424242'], io)).rejects.toThrow(/job 424242 was not launched by dfd slurm from here/);
    await expect(slurmCommand.run(['frobnicate'], io)).rejects.toThrow(/unknown sub-command 'frobnicate'/);
  });
});

describe('sweeps defined in code (--variants)', () => {
  test('a dry run validates and writes nothing; a variant is merged over the experiment in its task; a finished task is not redone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dfd-slurm-variants-'));
    const runs = join(dir, 'runs');
    process.env.DFD_TEST_RUNS = runs; // read by the fixture when it loads
    writeFileSync(
      join(dir, 'variants.json'),
      JSON.stringify([
        { name: 'sgd-wide', overrides: { trainer: { optimizer: { type: 'sgd', lr: 0.2, momentum: 0.5 } } } },
        { name: 'plain', overrides: { trainer: { optimizer: { lr: 0.01, momentum: 0 } } } },
      ]),
    );
    const dry = makeIo(dir, {});
    expect(await slurmCommand.run(['sweep', FIXTURE, '--variants', 'variants.json', '--runs-dir', runs, '--dry-run'], dry.io)).toBe(0);
    expect(dry.out()).toContain('#SBATCH --array=0-1');
    expect(dry.out()).toContain(`slurm sweep-task '${runs}/toy-sweep/<sweep-id>' "$SLURM_ARRAY_TASK_ID"`);
    expect(dry.out()).toContain('#   1: plain');
    expect(existsSync(runs)).toBe(false);
    await expect(slurmCommand.run(['sweep', FIXTURE, '--variants', 'variants.json', '--grid', 'trainer.epochs=1,2', '--dry-run'], makeIo(dir, {}).io)).rejects.toThrow(
      /either --grid or --variants/,
    );

    const io = makeIo(dir, process.env);
    const sweep = await createSweepParent({ experimentPath: FIXTURE, sets: ['trainer.epochs=1'], grids: [], variants: join(dir, 'variants.json'), runsDir: runs }, io.io);
    expect(JSON.parse(readFileSync(join(sweep.dir, 'sweep.json'), 'utf8')).configurations.map((c: { name: string }) => c.name)).toEqual(['sgd-wide', 'plain']);
    const task = makeIo(dir, process.env);
    expect(await slurmCommand.run(['sweep-task', sweep.dir, '1'], task.io)).toBe(0);
    const [runId] = readdirSync(join(runs, 'toy-sweep.plain'));
    const config = JSON.parse(readFileSync(join(runs, 'toy-sweep.plain', runId!, 'config.json'), 'utf8'));
    expect(config.trainer.optimizer).toMatchObject({ type: 'sgd', lr: 0.01, momentum: 0 }); // merged over the base's sgd
    expect(config.trainer.epochs).toBe(1); // the sweep-wide --set, under the variant
    const again = makeIo(dir, process.env);
    expect(await slurmCommand.run(['sweep-task', sweep.dir, '1'], again.io)).toBe(0);
    expect(again.out()).toMatch(/already finished/);
    expect(readdirSync(join(runs, 'toy-sweep.plain'))).toHaveLength(1);
  });
});

