/**
 * `dfd lare extract|merge|verify` end to end on the tiny Stable Diffusion, real image files, real stores.
 */
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDfd } from '../../../test/support/dfd-child.js';
import { ensureBackend, PluginRegistry, UsageError, type Sample } from '@dfd/core';
import { ExtrasStore, FolderConfigSchema, ImageBatchLoader, loadExtra } from '@dfd/dataset-df40';
import larePluginDefault from '../src/index.js';
import { openSdOnnx } from '../src/stage1/sd-model.js';
import { FIXTURES, IMAGES, NOISE, TINY_SD, reference, relativeError, runLare, type Cases } from './helpers.js';


const lare = runLare;

async function allMaps(root: string): Promise<Map<string, Float32Array>> {
  const store = await ExtrasStore.open(root);
  const out = new Map<string, Float32Array>();
  for (const entry of store.entries()) out.set(entry.path, (await store.read(entry)).data);
  await store.close();
  return out;
}

let dir: string;
let cases: Cases;
const images: string[] = [];
const SMALL = ['--model', TINY_SD, '--size', '64', '--ensemble', '2', '--threads', '1'];

beforeAll(async () => {
  cases = JSON.parse(await readFile(join(FIXTURES, 'cases.json'), 'utf8')) as Cases;
  dir = await mkdtemp(join(tmpdir(), 'dfd-lare-cli-'));
  await mkdir(join(dir, 'imgs'));
  for (const name of Object.values(cases.images)) {
    await copyFile(join(IMAGES, name), join(dir, 'imgs', name));
    images.push(join(dir, 'imgs', name));
  }
  await copyFile(join(IMAGES, 'corrupt.jpg'), join(dir, 'imgs', 'corrupt.jpg'));
  await copyFile(join(IMAGES, 'not-an-image.png'), join(dir, 'imgs', 'not-an-image.png'));
  // A listing with labels and DF40-like split/subset: labels must not matter.
  const listing = images.map((p, i) => ({ path: p, label: i % 2, split: 'train', subset: i < 3 ? 'a' : 'b' }));
  await writeFile(join(dir, 'list.json'), JSON.stringify(listing));
  await writeFile(join(dir, 'flipped.json'), JSON.stringify(listing.map((l) => ({ ...l, label: 1 - l.label }))));
  await writeFile(join(dir, 'with-bad.txt'), [...images, join(dir, 'imgs/corrupt.jpg'), join(dir, 'imgs/not-an-image.png'), join(dir, 'imgs/missing.png')].join('\n'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('dfd lare extract', () => {
  it('equals diffusers within 1e-4 with a noise file (the map of the RGB image, t = 200, E = 2)', async () => {
    const r = await lare(dir, 'extract', ...SMALL, '--dataset', 'list.json', '--out', 'ref-store', '--noise', NOISE, '--prompt', cases.prompt);
    expect(r.code, r.err).toBe(0);
    const maps = await allMaps(join(dir, 'ref-store'));
    expect(maps.size).toBe(images.length);
    for (const [key, name] of Object.entries(cases.images)) {
      const err = relativeError(maps.get(join(dir, 'imgs', name))!, await reference(`${key}.lare.t200.e2.sd.prompt`));
      expect(err, key).toBeLessThan(1e-4);
    }
  });

  it('flipping every label in the listing changes no map', async () => {
    expect((await lare(dir, 'extract', ...SMALL, '--dataset', 'list.json', '--out', 'labels-a')).code).toBe(0);
    expect((await lare(dir, 'extract', ...SMALL, '--dataset', 'flipped.json', '--out', 'labels-b')).code).toBe(0);
    const a = await allMaps(join(dir, 'labels-a'));
    const b = await allMaps(join(dir, 'labels-b'));
    expect(a.size).toBe(images.length);
    for (const [path, map] of a) expect(Buffer.from(b.get(path)!.buffer).equals(Buffer.from(map.buffer))).toBe(true);
  });

  it('counts and lists corrupt, unreadable and missing images instead of writing zero maps; verify exits 2 for them', async () => {
    const r = await lare(dir, 'extract', ...SMALL, '--dataset', 'with-bad.txt', '--out', 'bad-store', '--batch', '3');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/3 image\(s\) skipped/);
    expect(r.err).toMatch(/skip .*corrupt\.jpg/);
    expect(r.err).toMatch(/skip .*missing\.png: cannot read/);
    const index = JSON.parse(await readFile(join(dir, 'bad-store/index.json'), 'utf8')) as { entries: unknown[]; skipped: Array<{ path: string }> };
    expect(index.entries).toHaveLength(images.length);
    expect(index.skipped.map((s) => s.path.split('/').pop()).sort()).toEqual(['corrupt.jpg', 'missing.png', 'not-an-image.png']);
    const v = await lare(dir, 'verify', 'bad-store', '--dataset', 'with-bad.txt');
    expect(v.code).toBe(2);
    expect(v.out).toMatch(/3 missing/);
    const ok = await lare(dir, 'verify', 'bad-store', '--dataset', 'list.json');
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/train\ta\t3\t3\t0/);
  });

  it('resumes: a second run skips finished images and the maps equal a one-shot run, whatever the batch size', async () => {
    await writeFile(join(dir, 'first-two.txt'), images.slice(0, 2).join('\n'));
    expect((await lare(dir, 'extract', ...SMALL, '--dataset', 'first-two.txt', '--out', 'resumed')).code).toBe(0);
    const again = await lare(dir, 'extract', ...SMALL, '--dataset', 'list.json', '--out', 'resumed', '--batch', '2');
    expect(again.out).toMatch(/2 already in/);
    const resumed = await allMaps(join(dir, 'resumed'));
    const oneShot = await allMaps(join(dir, 'labels-a'));
    expect(resumed.size).toBe(oneShot.size);
    for (const [path, map] of oneShot) expect(relativeError(resumed.get(path)!, map)).toBeLessThan(1e-5);
  });

  it('SIGTERM (scancel) writes the finished maps and exits 130; the rerun completes the store', async () => {
    // 4 copies of each image under other names: enough batches that the signal lands mid-run.
    const copies: string[] = [];
    await mkdir(join(dir, 'copies'), { recursive: true });
    for (let k = 0; k < 4; k++) {
      for (const image of images) {
        const copy = join(dir, 'copies', `${k}-${image.split('/').pop()}`);
        await copyFile(image, copy);
        copies.push(copy);
      }
    }
    await writeFile(join(dir, 'copies.txt'), copies.join('\n'));
    const args = ['lare', 'extract', ...SMALL, '--dataset', 'copies.txt', '--out', 'stopped', '--checkpoint-every', '1'];
    const stopped = await runDfd(dir, args, new RegExp(`${copies.length} to do`), 'SIGTERM');
    expect(stopped.code, stopped.output).toBe(130);
    expect(stopped.output).toMatch(/lare: SIGTERM: saving after the batch in flight/);
    expect(stopped.output).toMatch(/stopped by SIGTERM with every finished map saved/);
    const partial = await allMaps(join(dir, 'stopped'));
    expect(partial.size).toBeGreaterThan(0);
    expect(partial.size).toBeLessThan(copies.length);
    const resumed = await runDfd(dir, args);
    expect(resumed.code, resumed.output).toBe(0);
    expect(resumed.output).toMatch(new RegExp(`${partial.size} already in`));
    const maps = await allMaps(join(dir, 'stopped'));
    const oneShot = await allMaps(join(dir, 'labels-a'));
    expect(maps.size).toBe(copies.length);
    for (const copy of copies) {
      const original = images.find((image) => copy.endsWith(`-${image.split('/').pop()}`))!;
      expect(relativeError(maps.get(copy)!, oneShot.get(original)!)).toBeLessThan(1e-5);
    }
  }, 120_000);

  it('refuses to resume with other settings', async () => {
    await expect(lare(dir, 'extract', ...SMALL, '--dataset', 'list.json', '--out', 'resumed', '--timestep', '300')).rejects.toThrow(/other settings.*timestep/);
  });

  it('--shard K/N partitions by content; merge joins the shards into the one-shot store and refuses overlaps and mixed settings', async () => {
    for (const k of [0, 1]) expect((await lare(dir, 'extract', ...SMALL, '--dataset', 'list.json', '--out', `shard${k}`, '--shard', `${k}/2`)).code).toBe(0);
    const s0 = await allMaps(join(dir, 'shard0'));
    const s1 = await allMaps(join(dir, 'shard1'));
    expect(s0.size + s1.size).toBe(images.length);
    expect((await lare(dir, 'merge', 'merged', 'shard0', 'shard1')).code).toBe(0);
    const merged = await allMaps(join(dir, 'merged'));
    const oneShot = await allMaps(join(dir, 'labels-a'));
    expect([...merged.keys()].sort()).toEqual([...oneShot.keys()].sort());
    for (const [path, map] of oneShot) expect(relativeError(merged.get(path)!, map)).toBeLessThan(1e-5);
    await expect(lare(dir, 'merge', 'merged2', 'shard0', 'labels-a')).rejects.toThrow(/overlapping/);
    await lare(dir, 'extract', ...SMALL, '--dataset', 'first-two.txt', '--out', 'other-t', '--timestep', '10');
    await expect(lare(dir, 'merge', 'merged3', 'shard0', 'other-t')).rejects.toThrow(/other settings/);
    await expect(lare(dir, 'extract', ...SMALL, '--dataset', 'list.json', '--out', 'x', '--shard', '2/2')).rejects.toThrow(UsageError);
  });

  it('datasets read the store through extras: by path, and by content hash for a copy elsewhere', async () => {
    const store = join(dir, 'labels-a');
    const expected = (await allMaps(store)).get(images[0]!)!;
    const byPath = await loadExtra(store, 'lare', images[0]!);
    expect(byPath.shape).toEqual([4, 8, 8]);
    expect(Buffer.from(byPath.data.buffer, byPath.data.byteOffset, byPath.data.byteLength).equals(Buffer.from(expected.buffer))).toBe(true);
    const moved = join(dir, 'moved-copy.png');
    await copyFile(images[0]!, moved);
    expect((await loadExtra(store, 'lare', moved)).data).toEqual(expected);
    await expect(loadExtra(store, 'lare', join(dir, 'imgs/corrupt.jpg'))).rejects.toThrow(/no 'lare' map .*dfd lare extract/);
  });
});

describe('datasets: extras: { lare: { root } } on a store', () => {
  it('the config accepts a store root without ext, and the image loader batches the store maps', async () => {
    const parsed = FolderConfigSchema.parse({ root: dir, extras: { lare: { root: join(dir, 'labels-a') } } });
    expect(parsed.extras.lare).toEqual({ root: join(dir, 'labels-a') });
    await ensureBackend();
    const expected = await allMaps(join(dir, 'labels-a'));
    // What the listing gives a sample when extras.lare has no ext: the store root.
    const samples: Sample[] = images.slice(0, 3).map((path, i) => ({
      id: `s${i}`, path, label: 0, subset: 'x', split: 'train', videoId: `x/v${i}`, extras: { lare: join(dir, 'labels-a') },
    }));
    // Store lookup only: geometry 'none' keeps the stored values (the loader otherwise crops/flips maps with the
    // image, see dataset-df40's extras-geometry.test.ts).
    const loader = new ImageBatchLoader({ size: 32, logSkips: false, extraGeometry: { lare: 'none' } });
    const source = loader.create(samples, { split: 'train', batchSize: 3, shuffle: false, augment: false, seed: 1, needs: { pixels: true, features: false, extras: ['lare'], boxes: false } });
    for await (const batch of source.batches(0)) {
      const lare = batch.extras!.lare!;
      expect(lare.shape).toEqual([3, 4, 8, 8]);
      const data = (await lare.data()) as Float32Array;
      images.slice(0, 3).forEach((p, i) => expect(Array.from(data.subarray(i * 256, (i + 1) * 256))).toEqual(Array.from(expected.get(p)!)));
      batch.dispose();
    }
  });
});

describe('model folder checks', () => {
  it('a missing unet/model.onnx names the file and the export command', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'lare-nounet-'));
    await cp(TINY_SD, copy, { recursive: true });
    await rm(join(copy, 'unet/model.onnx'));
    await expect(openSdOnnx(copy)).rejects.toThrow(/unet\/model\.onnx is missing .*export_sd_onnx\.py/);
    await rm(copy, { recursive: true, force: true });
  });

  it('refuses a VAE encoder that samples inside its graph (unseeded RandomNormal) and says why', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'lare-sampling-'));
    await cp(TINY_SD, copy, { recursive: true });
    await copyFile(join(FIXTURES, 'sampling-vae/model.onnx'), join(copy, 'vae_encoder/model.onnx'));
    await expect(openSdOnnx(copy)).rejects.toThrow(/RandomNormal.*could not be reproduced/);
    await rm(copy, { recursive: true, force: true });
  });

  it('the plugin registers dfd lare', () => {
    const registry = new PluginRegistry([larePluginDefault]);
    expect(registry.commands().map((c) => c.name)).toContain('lare');
  });
});
