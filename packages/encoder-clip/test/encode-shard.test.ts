/** `dfd encode --shard K/N` and `dfd encode merge`, in-process on the tiny CLIP with real image files. */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureCliIo } from '../../../test/support/cli-io.js';
import { readSafetensors } from '@dfd/core';
import { encodeCommand } from '@dfd/encoder-clip';
import { TINY_CLIP } from './helpers.js';


describe('dfd encode --shard K/N and dfd encode merge', () => {
  let dir: string;
  const run = (args: string[]) => encodeCommand.run(args, captureCliIo(dir));
  const base = ['--model', TINY_CLIP, '--images', 'imgs/*.png', '--batch', '2'];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dfd-encode-shard-'));
    await mkdir(join(dir, 'imgs'));
    for (let i = 0; i < 7; i++) {
      await sharp({ create: { width: 30 + i * 4, height: 33, channels: 3, background: { r: 30 * i, g: 90, b: 255 - 30 * i } } }).png().toFile(join(dir, 'imgs', `i${i}.png`));
    }
    expect(await run([...base, '--out', 'all.safetensors'])).toBe(0);
    for (const k of [0, 1, 2]) expect(await run([...base, '--shard', `${k}/3`, '--out', `s${k}.safetensors`])).toBe(0);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('splits the list into contiguous blocks and merges (any order) into the unsharded file, byte for byte', async () => {
    const rows = await Promise.all([0, 1, 2].map(async (k) => JSON.parse(await readFile(join(dir, `s${k}.safetensors.index.json`), 'utf8')).rows as string[]));
    expect(rows.map((r) => r.length)).toEqual([2, 2, 3]);
    expect(rows.flat()).toEqual(JSON.parse(await readFile(join(dir, 'all.safetensors.index.json'), 'utf8')).rows);
    expect((await readSafetensors(join(dir, 's1.safetensors'))).metadata).toMatchObject({ shard: '1/3', shard_size: '2', list_size: '7' });
    expect(await run(['merge', '--out', 'merged.safetensors', 's2.safetensors', 's0.safetensors', 's1.safetensors'])).toBe(0);
    expect((await readFile(join(dir, 'merged.safetensors'))).equals(await readFile(join(dir, 'all.safetensors')))).toBe(true);
    expect(await readFile(join(dir, 'merged.safetensors.index.json'), 'utf8')).toBe(await readFile(join(dir, 'all.safetensors.index.json'), 'utf8'));
  });

  it('refuses missing, duplicate, mixed and unsharded inputs, and a bad --shard', async () => {
    await expect(run(['merge', '--out', 'm.safetensors', 's0.safetensors', 's1.safetensors'])).rejects.toThrow(/missing shard\(s\) 2\/3/);
    await expect(run(['merge', '--out', 'm.safetensors', 's0.safetensors', 's0.safetensors', 's2.safetensors'])).rejects.toThrow(/both shard 0\/3/);
    await expect(run(['merge', '--out', 'm.safetensors', 'all.safetensors'])).rejects.toThrow(/not a shard/);
    await expect(run(['merge', '--out', 'm.safetensors', 'nope.safetensors'])).rejects.toThrow(/does not exist/);
    // A shard cut from another list (one image fewer) cannot join these.
    expect(await run(['--model', TINY_CLIP, '--images', 'imgs/i[0-5].png', '--shard', '1/3', '--out', 'other1.safetensors'])).toBe(0);
    await expect(run(['merge', '--out', 'm.safetensors', 's0.safetensors', 'other1.safetensors', 's2.safetensors'])).rejects.toThrow(/differs from .* in list_digest/);
    await expect(run([...base, '--shard', '3/3', '--out', 'x.safetensors'])).rejects.toThrow(/0 <= K < N/);
    // An interrupted shard (its last rewrite holds fewer rows than its block) is refused until it is re-run.
    await copyFile(join(dir, 's2.safetensors'), join(dir, 'cut2.safetensors'));
    const index = JSON.parse(await readFile(join(dir, 's2.safetensors.index.json'), 'utf8'));
    await writeFile(join(dir, 'cut2.safetensors.index.json'), JSON.stringify({ ...index, rows: index.rows.slice(0, 2) }));
    await expect(run(['merge', '--out', 'm.safetensors', 's0.safetensors', 's1.safetensors', 'cut2.safetensors'])).rejects.toThrow(/unfinished: 2 of 3 images done; re-run shard 2\/3/);
    // Resuming a shard file as another shard (or unsharded) is refused.
    await expect(run([...base, '--shard', '2/3', '--out', 's0.safetensors'])).rejects.toThrow(/written as shard 0\/3, not as shard 2\/3/);
    await expect(run([...base, '--out', 's0.safetensors'])).rejects.toThrow(/written as shard 0\/3, not unsharded/);
  });
});
