import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Df40JsonDataset, encodeNpy, parseDatasetJson, templateBoxes } from '@dfd/dataset-df40';
import { tempDir, writeImage, writeText } from './helpers.js';

const AUTHOR = '/data/home/zhiyuanyan/deepfake_detection_datasets';
const FFP = 'deepfakes_detection_datasets/FaceForensics++/original_sequences/youtube/c23/frames';

let root: string;
let cleanup: () => Promise<void>;

const frames = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}/${i}.png`);

beforeAll(async () => {
  ({ dir: root, cleanup } = await tempDir());
  const img = (rel: string) => writeImage(join(root, rel), 8, 8);
  await Promise.all([
    ...frames('DF40/heygen/real/frames/v1', 5).map(img),
    ...frames('DF40/heygen/fake/frames/v1', 3).map(img),
    img('DF40/whichfaceisreal/fake/frames/000/0.png'),
    ...frames('DF40_train/pixart/ff/frames/000', 10).map(img),
    ...frames('DF40_train/pixart/ff/frames/002', 2).map(img),
    ...frames('FaceForensics++/original_sequences/youtube/c23/frames/000', 10).map(img),
    ...frames('FaceForensics++/original_sequences/youtube/c23/frames/001', 4).map(img),
  ]);
  // a landmark file for one frame: 68 points around (10..20, 30..40)
  const points = new Float32Array(136);
  for (let i = 0; i < 68; i++) {
    points[2 * i] = 10 + (i % 11);
    points[2 * i + 1] = 30 + (i % 11);
  }
  await mkdir(join(root, 'DF40_train/pixart/ff/landmarks/000'), { recursive: true });
  await writeFile(join(root, 'DF40_train/pixart/ff/landmarks/000/0.npy'), encodeNpy(points, [68, 2]));
  // an empty video folder, listed in the JSON
  await mkdir(join(root, 'DF40_train/pixart/ff/frames/001'), { recursive: true });

  const json = (name: string, value: unknown) => writeText(join(root, 'dataset_json', `${name}.json`), JSON.stringify(value));
  await json('heygen', {
    heygen: {
      heygen_Real: { test: { v1: { label: 'heygen_Real', frames: frames(`${AUTHOR}/DF40/heygen/real/frames/v1`, 5) } } },
      heygen_Fake: {
        test: {
          v1: { label: 'heygen_Fake', frames: frames(`${AUTHOR}/DF40/heygen/fake/frames/v1`, 3) },
          v2: { label: 'heygen_Fake', frames: frames(`${AUTHOR}/DF40/heygen/fake/frames/v2`, 3) },
        },
      },
    },
  });
  await json('whichisreal', {
    whichisreal: { whichisreal_Fake: { test: { '000': { label: 'whichisreal_Fake', frames: [`${AUTHOR}/DF40/whichfaceisreal/fake/frames/000/0.png`] } } } },
  });
  const realEntries = { '000': { label: 'PixArt_ff_Real', frames: frames(`${FFP}/000`, 10) } };
  await json('PixArt_ff', {
    PixArt_ff: {
      PixArt_ff_Real: { train: { c23: realEntries }, val: { c23: {} }, test: { c23: {} } },
      PixArt_ff_Fake: {
        train: {
          '000': { label: 'PixArt_ff_Fake', frames: frames(`${AUTHOR}/DF40_train/pixart/ff/frames/000`, 10) },
          '001': { label: 'PixArt_ff_Fake', frames: frames(`${AUTHOR}/DF40_train/pixart/ff/frames/001`, 4) },
          '002': { label: 'PixArt_ff_Fake', frames: frames(`${AUTHOR}/DF40_train/pixart/ff/frames/002`, 3) },
        },
      },
    },
  });
  // a second method listing the same FF++ reals (DF40's JSONs repeat them)
  await json('simswap_ff', {
    simswap_ff: {
      simswap_ff_Real: { train: { c23: { '000': { label: 'simswap_ff_Real', frames: frames(`${FFP}/000`, 10) } } } },
      simswap_ff_Fake: { train: {} },
    },
  });
  await json('FaceForensics++', {
    'FaceForensics++': { 'FF-real': { test: { c23: { '001': { label: 'FF-real', frames: frames(`${FFP}/001`, 4) } }, c40: {} } } },
  });
});

afterAll(() => cleanup());

describe('DeepfakeBench JSON parsing', () => {
  it('reads the c23 level of FF++ entries and skips other levels', () => {
    const json = {
      'FaceForensics++': {
        'FF-DF': { train: { c23: { a: { label: 'FF-DF', frames: ['x/0.png'] } }, c40: { b: { label: 'FF-DF', frames: ['y/0.png'] } } } },
      },
    };
    const { entries } = parseDatasetJson(json, 'ff.json');
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ dataset: 'FaceForensics++', label: 1, split: 'train', compression: 'c23', video: 'a', frames: ['x/0.png'] });
    const c40 = parseDatasetJson(json, 'ff.json', { compression: 'c40' }).entries;
    expect(c40.map((e) => e.video)).toEqual(['b']);
  });

  it('notes a split key it does not know instead of guessing', () => {
    const { entries, notes } = parseDatasetJson({ d: { d_Fake: { training: { v: { frames: [] } } } } }, 'd.json');
    expect(entries).toHaveLength(0);
    expect(notes[0]).toMatch(/training/);
  });
});

describe("dataset 'df40' (JSON)", () => {
  it('lists canonical subsets per split from JSON keys (aliases resolved)', async () => {
    const ds = new Df40JsonDataset({ root });
    expect(await ds.subsets('test')).toEqual(['FaceForensics++', 'heygen', 'whichfaceisreal']);
    expect(await ds.subsets('train')).toEqual(['pixart_ff', 'simswap_ff']);
  });

  it("rewrites the authors' prefixes onto the root (auto and explicit rules)", async () => {
    const ds = new Df40JsonDataset({ root, framesPerVideo: 0 });
    const samples = await ds.samples({ split: 'test', subsets: ['heygen'] });
    expect(samples).toHaveLength(8);
    for (const s of samples) expect(s.path.startsWith(join(root, 'DF40/heygen/'))).toBe(true);
    const explicit = new Df40JsonDataset({
      root,
      autoPrefix: false,
      prefixes: [{ from: `${AUTHOR}/`, to: '' }],
      framesPerVideo: 0,
    });
    const again = await explicit.samples({ split: 'test', subsets: ['heygen'] });
    expect(again.map((s) => s.path)).toEqual(samples.map((s) => s.path));
    // without any rewriting nothing is found, and that is counted, not thrown
    const none = new Df40JsonDataset({ root, autoPrefix: false, framesPerVideo: 0 });
    expect(await none.samples({ split: 'test', subsets: ['heygen'] })).toHaveLength(0);
    expect(none.issues()).toMatchObject({ missing: 11, empty: 3 });
  });

  it('gives every (subset, label, video) its own video id, even when folder names collide', async () => {
    const ds = new Df40JsonDataset({ root, framesPerVideo: 0 });
    const heygen = await ds.samples({ split: 'test', subsets: ['heygen'] });
    const ids = new Set(heygen.map((s) => s.videoId));
    expect(ids).toEqual(new Set(['heygen/real/v1', 'heygen/fake/v1']));
    expect(heygen.filter((s) => s.label === 0)).toHaveLength(5);
    expect(heygen.filter((s) => s.label === 1)).toHaveLength(3);
    const train = await ds.samples({ split: 'train', subsets: ['pixart_ff'] });
    // real 000 and EFS fake 000 share a folder name but not a video id
    expect(new Set(train.map((s) => s.videoId))).toEqual(new Set(['pixart_ff/real/000', 'pixart_ff/fake/000', 'pixart_ff/fake/002']));
    expect(new Set(train.map((s) => s.id)).size).toBe(train.length);
  });

  it('counts missing frames and empty videos, never fatal', async () => {
    const ds = new Df40JsonDataset({ root, framesPerVideo: 0 });
    await ds.samples({ split: 'test', subsets: ['heygen'] });
    await ds.samples({ split: 'test', subsets: ['heygen'] }); // listing twice counts once
    await ds.samples({ split: 'train', subsets: ['pixart_ff'] });
    const issues = ds.issues();
    // heygen v2: 3 missing (folder absent); pixart 001: 4 missing (empty folder); pixart 002: 1 of 3 missing
    expect(issues.missing).toBe(3 + 4 + 1);
    expect(issues.empty).toBe(2);
    expect(issues.messages.some((m) => m.includes('heygen/fake/v2'))).toBe(true);
    expect(issues.messages.some((m) => m.includes('pixart_ff/fake/002') && m.includes('1 of 3'))).toBe(true);
  });

  it('samples evenly spaced frames by default and the first N on request', async () => {
    const even = new Df40JsonDataset({ root, framesPerVideo: 4 });
    const e = (await even.samples({ split: 'train', subsets: ['pixart_ff'] })).filter((s) => s.videoId === 'pixart_ff/fake/000');
    expect(e.map((s) => s.frameIndex)).toEqual([0, 3, 6, 9]);
    const first = new Df40JsonDataset({ root, framesPerVideo: { train: 4, val: 4, test: 4 }, sampling: 'first-n' });
    const f = (await first.samples({ split: 'train', subsets: ['pixart_ff'] })).filter((s) => s.videoId === 'pixart_ff/fake/000');
    expect(f.map((s) => s.frameIndex)).toEqual([0, 1, 2, 3]);
  });

  it('accepts subset aliases in queries and explains unknown ones', async () => {
    const ds = new Df40JsonDataset({ root });
    const viaAlias = await ds.samples({ split: 'test', subsets: ['whichisreal'] });
    expect(viaAlias).toHaveLength(1);
    expect(viaAlias[0]!.subset).toBe('whichfaceisreal');
    await expect(ds.samples({ split: 'test', subsets: ['stargan'] })).rejects.toThrow(/no subset 'stargan'.*Available: FaceForensics\+\+, heygen, whichfaceisreal/);
  });

  it('uses each real frame once in train when several methods list it, but not in test', async () => {
    const ds = new Df40JsonDataset({ root, framesPerVideo: 0 });
    const train = await ds.samples({ split: 'train' });
    const realPaths = train.filter((s) => s.label === 0).map((s) => s.path);
    expect(realPaths).toHaveLength(10);
    expect(new Set(realPaths).size).toBe(10);
    const noDedupe = new Df40JsonDataset({ root, framesPerVideo: 0, dedupeTrain: false });
    expect((await noDedupe.samples({ split: 'train' })).filter((s) => s.label === 0)).toHaveLength(20);
  });

  it('adds the reals of realDatasets to every subset of the split, and can drop own reals', async () => {
    const ds = new Df40JsonDataset({ root, framesPerVideo: 0, reals: 'none', realDatasets: ['FaceForensics++'] });
    expect(await ds.subsets('test')).toEqual(['heygen', 'whichfaceisreal']);
    const heygen = await ds.samples({ split: 'test', subsets: ['heygen'] });
    const reals = heygen.filter((s) => s.label === 0);
    expect(reals).toHaveLength(4);
    expect(reals[0]!.videoId).toBe('heygen/real/001');
    expect(reals[0]!.path).toContain('FaceForensics++');
  });

  it('attaches landmark boxes where a .npy exists and template boxes elsewhere', async () => {
    const ds = new Df40JsonDataset({ root, framesPerVideo: 0 });
    const train = await ds.samples({ split: 'train', subsets: ['pixart_ff'] });
    const withLandmarks = train.find((s) => s.path.endsWith('pixart/ff/frames/000/0.png') && s.label === 1)!;
    const jaw = withLandmarks.boxes!.find((b) => b.region === 'jaw')!;
    expect(jaw).toEqual({ region: 'jaw', x1: 5, y1: 25, x2: 10 + 10 + 5, y2: 30 + 10 + 5 });
    const other = train.find((s) => s.path.endsWith('pixart/ff/frames/000/1.png') && s.label === 1)!;
    expect(other.boxes).toEqual(templateBoxes(256, 256));
    const none = new Df40JsonDataset({ root, faceBoxes: 'none' });
    expect((await none.samples({ split: 'train', subsets: ['pixart_ff'] }))[0]!.boxes).toBeUndefined();
  });

  it('expands an entry that names a video folder instead of frames', async () => {
    const { dir: other, cleanup: done } = await tempDir();
    try {
      await Promise.all([0, 1, 2].map((i) => writeImage(join(other, `DF40/e4e/fake/frames/v/${i}.png`), 8, 8)));
      await writeText(join(other, 'dataset_json/e4e.json'), JSON.stringify({
        e4e: { e4e_Fake: { test: { v: { label: 'e4e_Fake', frames: [`${AUTHOR}/DF40/e4e/fake/frames/v`] } } } },
      }));
      const ds = new Df40JsonDataset({ root: other, framesPerVideo: 0 });
      const samples = await ds.samples({ split: 'test' });
      expect(samples.map((s) => s.frameIndex)).toEqual([0, 1, 2]);
      expect(ds.issues()).toMatchObject({ missing: 0, empty: 0 });
    } finally {
      await done();
    }
  });

  it('names a broken JSON file, and only notes it when that dataset is not wanted', async () => {
    const { dir: other, cleanup: done } = await tempDir();
    try {
      await writeImage(join(other, 'DF40/e4e/fake/frames/v/0.png'), 8, 8);
      await writeText(join(other, 'dataset_json/e4e.json'), JSON.stringify({
        e4e: { e4e_Fake: { test: { v: { label: 'e4e_Fake', frames: ['DF40/e4e/fake/frames/v/0.png'] } } } },
      }));
      await writeText(join(other, 'dataset_json/sd2.1.json'), '{"sd2.1": {');
      await expect(new Df40JsonDataset({ root: other }).subsets('test')).rejects.toThrow(/sd2\.1\.json is not valid JSON/);
      const only = new Df40JsonDataset({ root: other, datasets: ['E4E'] });
      expect(await only.subsets('test')).toEqual(['e4e']);
      expect(only.issues().messages.some((m) => m.includes('sd2.1.json') && m.includes('skipped'))).toBe(true);
    } finally {
      await done();
    }
  });

  it('maps extra files by mirroring the root', async () => {
    const ds = new Df40JsonDataset({ root, framesPerVideo: 1, extras: { lare: { root: '/maps', ext: '.safetensors' } } });
    const [sample] = await ds.samples({ split: 'test', subsets: ['whichfaceisreal'] });
    expect(sample!.extras).toEqual({ lare: '/maps/DF40/whichfaceisreal/fake/frames/000/0.safetensors' });
  });

  it('gives a stable digest of a listing', async () => {
    const a = await new Df40JsonDataset({ root }).digest({ split: 'test' });
    const b = await new Df40JsonDataset({ root }).digest({ split: 'test' });
    const c = await new Df40JsonDataset({ root, framesPerVideo: 1 }).digest({ split: 'test' });
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });

  it('fails clearly when the root or the JSON folder is missing', async () => {
    await expect(new Df40JsonDataset({ root: join(root, 'nope') }).subsets('test')).rejects.toThrow(/DF40 root .*nope does not exist/);
    await expect(new Df40JsonDataset({ root, jsonDir: 'missing_json' }).subsets('test')).rejects.toThrow(/JSON folder .*missing_json does not exist/);
  });
});
