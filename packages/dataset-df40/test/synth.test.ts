import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DF40_TEST_SUBSETS,
  Df40JsonDataset,
  FolderDataset,
  evalView,
  generateMiniDf40,
  METHODS,
  parseTransformSpec,
  synthCommand,
  verifyDf40,
  type SynthResult,
} from '@dfd/dataset-df40';
import { captureIO, tempDir } from './helpers.js';

let base: string;
let cleanup: () => Promise<void>;
let root: string;
let result: SynthResult;

async function treeDigest(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else out.set(relative(dir, p), createHash('sha256').update(await readFile(p)).digest('hex'));
    }
  };
  await walk(dir);
  return out;
}

beforeAll(async () => {
  ({ dir: base, cleanup } = await tempDir());
  root = join(base, 'mini');
  result = await generateMiniDf40({ out: root, videos: 8, frames: 2, size: 64, seed: 0 });
});
afterAll(() => cleanup());

describe('synthetic mini-DF40', () => {
  it('is fast and small by default', () => {
    // 4 training methods (8 train + 2 val + 2 test videos each, FF++ reals to match) + 8 test sets (8 real + 8 fake)
    expect(result.images).toBe(2 * (4 * 12 + 32 + 8 + 8 + 8 * 16));
    expect(result.seconds).toBeLessThan(30);
  });

  it('writes the same bytes for the same seed, other bytes for another seed', async () => {
    const again = join(base, 'again');
    const other = join(base, 'other');
    await generateMiniDf40({ out: again, videos: 2, frames: 1, size: 32, seed: 5 });
    const first = await treeDigest(again);
    await generateMiniDf40({ out: again, videos: 2, frames: 1, size: 32, seed: 5, overwrite: true });
    expect(await treeDigest(again)).toEqual(first);
    await generateMiniDf40({ out: other, videos: 2, frames: 1, size: 32, seed: 6 });
    const second = await treeDigest(other);
    expect([...second.keys()]).toEqual([...first.keys()]);
    const differing = [...first].filter(([k, v]) => k.endsWith('.png') && second.get(k) !== v).length;
    expect(differing).toBe([...first.keys()].filter((k) => k.endsWith('.png')).length);
  });

  it("loads through the JSON dataset: DF40's quirks resolved, every test set with both labels", async () => {
    const ds = new Df40JsonDataset({ root, framesPerVideo: 0 });
    const test = await ds.subsets('test');
    for (const name of DF40_TEST_SUBSETS) expect(test).toContain(name);
    expect(await ds.subsets('train')).toEqual(['facevid2vid_ff', 'inswap_ff', 'pixart_ff', 'simswap_ff']);
    expect(await ds.subsets('val')).toEqual(['facevid2vid_ff', 'inswap_ff', 'pixart_ff', 'simswap_ff']);
    for (const name of DF40_TEST_SUBSETS) {
      const samples = await ds.samples({ split: 'test', subsets: [name] });
      expect(samples.filter((s) => s.label === 0)).toHaveLength(16);
      expect(samples.filter((s) => s.label === 1)).toHaveLength(16);
      expect(new Set(samples.map((s) => s.videoId)).size).toBe(16); // real 000 and fake 000 stay apart
    }
    const train = await ds.samples({ split: 'train' });
    expect(train.filter((s) => s.label === 0)).toHaveLength(train.filter((s) => s.label === 1).length);
    // FF++ frames come with landmarks: boxes from the .npy (not the 256-px template)
    const real = train.find((s) => s.label === 0)!;
    const jaw = real.boxes!.find((b) => b.region === 'jaw')!;
    expect(jaw.x2).toBeLessThanOrEqual(64 + 5);
    expect(ds.issues()).toMatchObject({ missing: 0, empty: 0, corrupt: 0 });
  });

  it('gives 3 of the 8 test sets an artefact family no training method has, and the datasets report the groups', async () => {
    const trained = new Set(METHODS.filter((m) => m.role === 'train').map((m) => m.family));
    const unseen = METHODS.filter((m) => m.role === 'test' && !trained.has(m.family));
    expect(unseen.map((m) => m.folder)).toEqual(['starganv2', 'styleclip', 'CollabDiff']);
    expect(new Set(unseen.map((m) => m.family)).size).toBe(3); // three different new families
    const manifest = JSON.parse(await readFile(join(root, 'synth.json'), 'utf8'));
    expect(manifest.subsetGroups).toEqual({
      'seen-family': ['heygen', 'MidJourney', 'whichfaceisreal', 'stargan', 'e4e'],
      'unseen-family': ['starganv2', 'styleclip', 'CollabDiff'],
    });
    const facts = new Df40JsonDataset({ root }).protocolFacts();
    expect(facts.subset_groups).toBe('seen-family=heygen,MidJourney,whichfaceisreal,stargan,e4e; unseen-family=starganv2,styleclip,CollabDiff');
    expect(facts.data).toBe('synthetic mini-DF40 (dfd synth)');
    expect(new FolderDataset({ root }).protocolFacts().subset_groups).toBe(facts.subset_groups);
    // An explicit config wins; a real DF40 root (no synth.json) declares none.
    expect(new Df40JsonDataset({ root, subsetGroups: { a: ['heygen'] } }).protocolFacts().subset_groups).toBe('a=heygen');
    expect(new Df40JsonDataset({ root: join(root, 'DF40') }).protocolFacts().subset_groups).toBeUndefined();
  });

  it('verifies clean and reads through the folder dataset too', async () => {
    const { report } = await verifyDf40(root);
    expect(report.totals).toMatchObject({ missing: 0, empty: 0, corrupt: 0 });
    expect(report.totals.frames).toBeGreaterThan(0);
    expect(Object.keys(report.datasets)).toContain('whichisreal');
    const folders = new FolderDataset({ root, framesPerVideo: 0 });
    const test = await folders.subsets('test');
    for (const name of DF40_TEST_SUBSETS) expect(test).toContain(name);
  });

  it('has fakes a simple probe separates from reals after downscaling to 32 px', async () => {
    // Generic noise-residual statistics (variance and autocorrelation of a high-pass residual) plus colour
    // moments, nearest standardised centroid, fitted on half of each test set's videos, scored on the rest.
    const ds = new Df40JsonDataset({ root, framesPerVideo: 0 });
    const spec = parseTransformSpec({ size: 32, crop: 'center', normalize: 'none' });
    const aucs: Record<string, number> = {};
    for (const name of DF40_TEST_SUBSETS) {
      const samples = await ds.samples({ split: 'test', subsets: [name] });
      const rows = await Promise.all(samples.map(async (s) => ({ s, f: residualFeatures(await evalView(s.path, spec), 32) })));
      const held = (videoId: string) => Number.parseInt(videoId.split('/').at(-1)!, 10) % 2 === 1;
      aucs[name] = centroidAuc(rows.filter((r) => !held(r.s.videoId)), rows.filter((r) => held(r.s.videoId)));
    }
    console.log('probe AUC per synthetic test set (32 px):', JSON.stringify(aucs));
    const values = Object.values(aucs);
    expect(values.reduce((a, b) => a + b, 0) / values.length).toBeGreaterThan(0.8);
    for (const v of values) expect(v).toBeGreaterThan(0.6);
  });
});

describe('dfd synth', () => {
  it('writes into OUT, refuses to overwrite without --force, defaults to data/mini-df40', async () => {
    const out = join(base, 'cli');
    const io = captureIO(base);
    expect(await synthCommand.run(['cli', '--videos', '1', '--frames', '1', '--size', '32', '--seed', '3'], io)).toBe(0);
    expect(io.out()).toMatch(/wrote \d+ images in \d+ videos and 12 JSONs/);
    const again = captureIO(base);
    expect(await synthCommand.run([out, '--videos', '1', '--frames', '1', '--size', '32'], again)).toBe(1);
    expect(again.err()).toMatch(/--force/);
    expect(await synthCommand.run([out, '--videos', '1', '--frames', '1', '--size', '32', '--force'], captureIO(base))).toBe(0);
    const cwd = join(base, 'project');
    expect(await synthCommand.run(['--videos', '1', '--frames', '1', '--size', '16'], captureIO(cwd))).toBe(0);
    expect((await readdir(join(cwd, 'data/mini-df40'))).sort()).toEqual(['DF40', 'DF40_train', 'FaceForensics++', 'dataset_json', 'synth.json']);
    await expect(synthCommand.run(['--size', '8'], captureIO(base))).rejects.toThrow(/--size must be an integer ≥ 16/);
  });
});

function residualFeatures(p: Float32Array, n: number): number[] {
  const plane = n * n;
  const grey = new Float64Array(plane);
  for (let i = 0; i < plane; i++) grey[i] = 0.299 * p[i]! + 0.587 * p[plane + i]! + 0.114 * p[2 * plane + i]!;
  const r = new Float64Array(plane);
  for (let y = 1; y < n - 1; y++) {
    for (let x = 1; x < n - 1; x++) {
      let m = 0;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) m += grey[(y + dy) * n + x + dx]!;
      r[y * n + x] = grey[y * n + x]! - m / 9;
    }
  }
  let v0 = 0;
  for (let i = 0; i < plane; i++) v0 += r[i]! * r[i]!;
  const f = [Math.log(v0 / plane + 1e-8)];
  for (let ly = 0; ly <= 4; ly++) {
    for (let lx = -4; lx <= 4; lx++) {
      if (ly === 0 && lx <= 0) continue;
      let c = 0;
      for (let y = 1; y < n - 1 - ly; y++) for (let x = Math.max(1, 1 - lx); x < Math.min(n - 1, n - 1 - lx); x++) c += r[y * n + x]! * r[(y + ly) * n + x + lx]!;
      f.push(c / (v0 + 1e-8));
    }
  }
  for (let c = 0; c < 3; c++) {
    let m = 0;
    let q = 0;
    for (let i = 0; i < plane; i++) {
      m += p[c * plane + i]!;
      q += p[c * plane + i]! ** 2;
    }
    m /= plane;
    f.push(m, Math.sqrt(Math.max(0, q / plane - m * m)));
  }
  return f;
}

function centroidAuc(train: Array<{ s: { label: number }; f: number[] }>, test: Array<{ s: { label: number }; f: number[] }>): number {
  const D = train[0]!.f.length;
  const mean = new Array<number>(D).fill(0);
  const sd = new Array<number>(D).fill(0);
  for (const r of train) r.f.forEach((v, d) => (mean[d]! += v / train.length));
  for (const r of train) r.f.forEach((v, d) => (sd[d]! += (v - mean[d]!) ** 2 / train.length));
  const z = (f: number[]) => f.map((v, d) => (v - mean[d]!) / Math.sqrt(sd[d]! + 1e-9));
  const centroid = (label: number) => {
    const rows = train.filter((r) => r.s.label === label);
    const c = new Array<number>(D).fill(0);
    for (const r of rows) z(r.f).forEach((v, d) => (c[d]! += v / rows.length));
    return c;
  };
  const [c0, c1] = [centroid(0), centroid(1)];
  const dist = (a: number[], b: number[]) => a.reduce((s, v, d) => s + (v - b[d]!) ** 2, 0);
  const scored = test.map((r) => ({ y: r.s.label, p: dist(z(r.f), c0) - dist(z(r.f), c1) }));
  const pos = scored.filter((s) => s.y === 1);
  const neg = scored.filter((s) => s.y === 0);
  let wins = 0;
  for (const a of pos) for (const b of neg) wins += a.p > b.p ? 1 : a.p === b.p ? 0.5 : 0;
  return wins / (pos.length * neg.length);
}
