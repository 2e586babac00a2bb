/**
 * withBuildLock: concurrent builders run one after the other, a live holder (which refreshes its lock) is
 * waited for, a dead one's lock is taken over, and a failed build releases the lock.
 */
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withBuildLock } from '@dfd/core';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dfd-build-lock-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('withBuildLock', () => {
  it('runs concurrent builders one at a time, waiting for a live holder longer than staleMs (it keeps its lock fresh)', async () => {
    const lock = join(dir, 'a.lock');
    const spans: Array<[number, number]> = [];
    const build = async () => {
      const start = performance.now();
      await sleep(1300); // over twice staleMs: only the holder's refreshes keep the lock from looking dead
      spans.push([start, performance.now()]);
    };
    const logs: string[] = [];
    const options = { staleMs: 600, pollMs: 10, log: (m: string) => logs.push(m) };
    await Promise.all([withBuildLock(lock, build, options), withBuildLock(lock, build, options), withBuildLock(lock, build, options)]);
    spans.sort((a, b) => a[0] - b[0]);
    expect(spans).toHaveLength(3);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
    expect(logs.some((m) => m.startsWith('waiting for'))).toBe(true);
    expect(logs.some((m) => m.startsWith('taking over'))).toBe(false);
  });

  it("takes over a lock its builder stopped refreshing (a shard killed mid-build), and removes its own when done", async () => {
    const lock = join(dir, 'b.lock');
    await writeFile(lock, 'node-7 pid 4242 since yesterday');
    const old = new Date(Date.now() - 10 * 60_000);
    await utimes(lock, old, old);
    const logs: string[] = [];
    const result = await withBuildLock(lock, async () => 'built', { log: (m) => logs.push(m) });
    expect(result).toBe('built');
    expect(logs[0]).toMatch(/taking over .*node-7 pid 4242.*stopped refreshing it 600 s ago/);
    await expect(writeFile(lock, 'x', { flag: 'wx' })).resolves.toBeUndefined(); // the lock is gone
  });

  it('releases the lock when the build fails, so the next shard can try', async () => {
    const lock = join(dir, 'c.lock');
    await expect(withBuildLock(lock, async () => Promise.reject(new Error('disk full')))).rejects.toThrow('disk full');
    expect(await withBuildLock(lock, async () => 'second try', { pollMs: 10 })).toBe('second try');
  });
});

