import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderDataset, hashSplit } from '@dfd/dataset-df40';
import { tempDir, writeImage } from './helpers.js';

let root: string;
let ufd: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir: root, cleanup } = await tempDir());
  ufd = join(root, 'ufd');
  const df = join(root, 'df');
  const img = (path: string) => writeImage(path, 8, 8);
  const jobs: Array<Promise<void>> = [];
  for (let v = 0; v < 20; v++) {
    const vid = String(v).padStart(3, '0');
    for (let f = 0; f < 3; f++) jobs.push(img(join(df, 'FaceForensics++/original_sequences/youtube/c23/frames', vid, `${f}.png`)));
    jobs.push(img(join(df, 'DF40_train/MRAA/ff/frames', `${vid}_999`, '0.png')));
  }
  jobs.push(img(join(df, 'DF40/MRAA/ff/frames/100_101/0.png')));
  jobs.push(img(join(df, 'DF40/whichisreal/fake/000/0.png')), img(join(df, 'DF40/whichisreal/real/000/0.png')));
  jobs.push(img(join(df, 'DF40/whichisreal/real/000/1.png')));
  // loose images count as one-frame videos
  jobs.push(img(join(df, 'DF40/MidJourney/fake/a.jpg')), img(join(df, 'DF40/MidJourney/real/b.png')));
  // UFD: test/<generator>/{0_real,1_fake}, and a nested class level
  jobs.push(img(join(ufd, 'test/progan/0_real/x.png')), img(join(ufd, 'test/progan/1_fake/x.png')));
  jobs.push(img(join(ufd, 'test/cyclegan/horse/0_real/1.png')), img(join(ufd, 'test/cyclegan/horse/1_fake/1.png')));
  jobs.push(img(join(ufd, 'train/car/0_real/1.png')), img(join(ufd, 'train/car/1_fake/2.png')));
  await Promise.all(jobs);
  await mkdir(join(df, 'DF40/whichisreal/fake/001'), { recursive: true });
});

afterAll(() => cleanup());

describe("dataset 'folder' (DF40 layout)", () => {
  it('finds known methods per domain and the unknown sets with their own reals', async () => {
    const ds = new FolderDataset({ root: join(root, 'df'), framesPerVideo: 0 });
    expect(await ds.subsets('test')).toEqual(['MidJourney', 'mraa_ff', 'whichfaceisreal']);
    const wfir = await ds.samples({ split: 'test', subsets: ['whichfaceisreal'] });
    expect(wfir.map((s) => [s.videoId, s.label])).toEqual([
      ['whichfaceisreal/fake/000', 1],
      ['whichfaceisreal/real/000', 0],
      ['whichfaceisreal/real/000', 0],
    ]);
    expect(ds.issues().empty).toBe(1); // the empty fake/001 folder
    const mj = await ds.samples({ split: 'test', subsets: ['midjourney'] });
    expect(mj.map((s) => s.videoId).sort()).toEqual(['MidJourney/fake/a', 'MidJourney/real/b']);
  });

  it('splits FF++ reals by a stable hash and pairs them with the known-method subsets', async () => {
    const ds = new FolderDataset({ root: join(root, 'df'), framesPerVideo: 0, valFraction: 0.25 });
    const all = { train: await ds.samples({ split: 'train' }), val: await ds.samples({ split: 'val' }), test: await ds.samples({ split: 'test', subsets: ['mraa_ff'] }) };
    const realVideos = (s: typeof all.train) => new Set(s.filter((x) => x.label === 0).map((x) => x.videoId.split('/')[2]));
    const [tr, va, te] = [realVideos(all.train), realVideos(all.val), realVideos(all.test)];
    expect(tr.size + va.size + te.size).toBe(20);
    for (const v of tr) expect(va.has(v) || te.has(v)).toBe(false);
    for (const v of te) expect(hashSplit(v!, { train: 0.72, val: 0.14, test: 0.14 })).toBe('test');
    // fakes of DF40_train are divided between train and val by name hash
    const fakes = all.train.filter((s) => s.label === 1).length + all.val.filter((s) => s.label === 1).length;
    expect(fakes).toBe(20);
    expect(all.val.filter((s) => s.label === 1).length).toBeGreaterThan(0);
    expect(all.test.filter((s) => s.label === 1).map((s) => s.videoId)).toEqual(['mraa_ff/fake/100_101']);
  });
});

describe("dataset 'folder' (UFD layout)", () => {
  it('reads <split>/<subset…>/{0_real,1_fake} with one video per image', async () => {
    const ds = new FolderDataset({ root: ufd });
    expect(await ds.subsets('test')).toEqual(['cyclegan/horse', 'progan']);
    const progan = await ds.samples({ split: 'test', subsets: ['progan'] });
    expect(progan.map((s) => [s.label, s.videoId])).toEqual([
      [0, 'progan/real/x'],
      [1, 'progan/fake/x'],
    ]);
    expect((await ds.samples({ split: 'train' })).map((s) => s.subset)).toEqual(['car', 'car']);
  });
});
