/**
 * `dfd slurm lare-extract` on a real one-node Slurm (slurm-setup.ts) with @dfd/plugin-lare's own
 * `dfd lare extract --shard K/N` and `dfd lare merge`, on the tiny Stable Diffusion: 3 array tasks and the
 * merge give, image for image, the same maps as one unsharded extraction.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, test } from 'vitest';
import { readSafetensors } from '@dfd/core';
import { submittedJob, waitForLaunch } from './support/wait.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const DFD = join(REPO, 'packages/core/bin/dfd.js');
const FIXTURES = join(REPO, 'tools/fixtures/lare-stage1/out');

interface StoreIndex {
  tensor: string;
  shape: number[];
  parts: string[];
  entries: Array<[string, string, number, number]>;
}

/** Each image's map bytes, from a store's index and parts. */
async function mapsOf(root: string): Promise<Map<string, Buffer>> {
  const index = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8')) as StoreIndex;
  const parts = await Promise.all(index.parts.map((p) => readSafetensors(join(root, p))));
  const size = index.shape.reduce((a, b) => a * b, 1);
  return new Map(
    index.entries.map(([path, , part, row]) => [path, Buffer.from((parts[part]!.tensors[index.tensor]!.data as Float32Array).slice(row * size, (row + 1) * size).buffer)]),
  );
}

describe('dfd slurm lare-extract on a real Slurm', { timeout: 300_000 }, () => {
  test('3 shards as an array job, merged by dfd lare merge after them: the same maps as one unsharded run', async () => {
    const env = { ...process.env, SLURM_CONF: inject('slurmConf') };
    const dir = mkdtempSync(join(tmpdir(), 'dfd-slurm-lare-'));
    mkdirSync(join(dir, 'imgs'));
    const images = ['exact-64.jpg', 'gray-64.png', 'rgb-80x48.png', 'rgba-40.png', 'cmyk-50x70.jpg'];
    for (const f of images) copyFileSync(join(FIXTURES, 'images', f), join(dir, 'imgs', f));
    writeFileSync(join(dir, 'list.txt'), `${images.map((f) => `imgs/${f}`).join('\n')}\n`);
    const args = ['--model', join(FIXTURES, 'tiny-sd'), '--size', '64', '--ensemble', '2', '--threads', '1', '--dataset', 'list.txt'];
    execFileSync(process.execPath, [DFD, 'lare', 'extract', ...args, '--out', 'unsharded'], { cwd: dir, env, stdio: 'pipe' });
    const out = execFileSync(process.execPath, [DFD, 'slurm', 'lare-extract', ...args, '--out', 'sharded', '--shards', '3', '--cpus', '1', '--mem', '1G'], { cwd: dir, env, encoding: 'utf8' });
    const status = await waitForLaunch(submittedJob(out), dir, env);
    expect(status.tasks.map((t) => t.state)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    expect(status.after).toMatchObject({ name: 'merge', state: 'COMPLETED' });
    const [one, merged] = await Promise.all([mapsOf(join(dir, 'unsharded')), mapsOf(join(dir, 'sharded'))]);
    expect(merged.size).toBe(images.length);
    expect([...merged.keys()].sort()).toEqual([...one.keys()].sort());
    for (const [path, bytes] of one) expect(merged.get(path)!.equals(bytes), path).toBe(true);
    expect(execFileSync(process.execPath, [DFD, 'lare', 'verify', 'sharded', '--dataset', 'list.txt'], { cwd: dir, env, encoding: 'utf8' })).toMatch(/all 5 listed images have a map/);
  });
});
