/**
 * A cache fill killed with SIGKILL between writing an entry and renaming it into place leaves a `*.tmp`
 * file; the next open of the store removes it, while a live writer's temporary file (another shard filling
 * the same cache right now) is kept.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { FeatureStore } from '@dfd/core';

/**
 * A real writer killed mid-fill: it writes `<entry>.<its pid><suffix>`, as the store names temporary
 * entries, then hangs until SIGKILL. Returns the path it left behind.
 */
async function killedWriter(entry: string, suffix: string): Promise<string> {
  const script = `
    const path = process.argv[1] + '.' + process.pid + process.argv[2];
    require('node:fs').writeFileSync(path, Buffer.alloc(16));
    process.stdout.write(path);
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script, entry, suffix], { stdio: ['ignore', 'pipe', 'inherit'] });
  const path = await new Promise<string>((done) => child.stdout.once('data', (d) => done(String(d))));
  const exited = new Promise((done) => child.on('exit', done));
  child.kill('SIGKILL');
  await exited;
  return path;
}

describe('feature store temporary files', () => {
  test('a killed fill leaves a *.tmp; the next open removes it and keeps a live writer\'s', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dfd-store-'));
    const store = new FeatureStore(root, 'ns', 4);
    await store.open({ test: true });
    await store.write('ab01', new Float32Array([1, 2, 3, 4]));
    const folder = join(root, 'ns', 'ab');
    mkdirSync(folder, { recursive: true });
    const host = hostname();
    const dead = await killedWriter(join(folder, 'ab02.f32'), `@${host}.1.tmp`);
    const oldFormat = await killedWriter(join(folder, 'ab03.f32'), '.1.tmp'); // names before the host was added
    const live = join(folder, `ab04.f32.${process.pid}@${host}.7.tmp`);
    writeFileSync(live, Buffer.alloc(16));
    expect(existsSync(dead) && existsSync(oldFormat)).toBe(true);

    await new FeatureStore(root, 'ns', 4).open({ test: true });
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(oldFormat)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(readdirSync(folder).sort()).toEqual(['ab01.f32', `ab04.f32.${process.pid}@${host}.7.tmp`]);
    expect(Array.from((await store.read('ab01'))!)).toEqual([1, 2, 3, 4]);
  });

  test('a cache folder on procfs is refused before anything is written', async () => {
    await expect(new FeatureStore('/proc/dfd-cache', 'ns', 4).open({})).rejects.toThrow(/feature cache folder \/proc\/dfd-cache\/ns is on procfs/);
  });
});
