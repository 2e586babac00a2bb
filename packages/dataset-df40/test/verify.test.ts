import { cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '@dfd/core';
import { df40Command, verifyDf40 } from '@dfd/dataset-df40';
import { captureIO, tempDir, writeImage, writeText } from './helpers.js';

let root: string;
let cleanup: () => Promise<void>;
const AUTHOR = '/home/someone/deepfake_detection_datasets';

beforeAll(async () => {
  ({ dir: root, cleanup } = await tempDir());
  const img = (rel: string) => writeImage(join(root, rel), 8, 8);
  const corrupt = (rel: string) => writeText(join(root, rel), 'not an image');
  await Promise.all([
    img('DF40/alpha/real/frames/v1/0.png'), img('DF40/alpha/real/frames/v1/1.png'), img('DF40/alpha/real/frames/v1/2.png'),
    img('DF40/alpha/real/frames/v2/0.png'),
    img('DF40/alpha/fake/frames/f2/0.png'), img('DF40/alpha/fake/frames/f2/1.png'), corrupt('DF40/alpha/fake/frames/f2/2.png'),
    corrupt('DF40/alpha/fake/frames/f3/0.png'), corrupt('DF40/alpha/fake/frames/f3/1.png'),
    img('FaceForensics++/original_sequences/youtube/c23/frames/000/0.png'), img('FaceForensics++/original_sequences/youtube/c23/frames/000/1.png'),
    img('FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_003/0.png'),
  ]);
  const a = (rel: string) => `${AUTHOR}/${rel}`;
  const f = (dir: string, n: number) => Array.from({ length: n }, (_, i) => a(`${dir}/${i}.png`));
  await writeText(join(root, 'dataset_json/alpha.json'), JSON.stringify({
    alpha: {
      alpha_Real: { test: { v1: { label: 'alpha_Real', frames: f('DF40/alpha/real/frames/v1', 3) }, v2: { label: 'alpha_Real', frames: f('DF40/alpha/real/frames/v2', 2) } } },
      alpha_Fake: {
        test: {
          f1: { label: 'alpha_Fake', frames: f('DF40/alpha/fake/frames/f1', 4) },
          f2: { label: 'alpha_Fake', frames: f('DF40/alpha/fake/frames/f2', 3) },
          f3: { label: 'alpha_Fake', frames: f('DF40/alpha/fake/frames/f3', 2) },
        },
      },
    },
  }));
  await writeText(join(root, 'dataset_json/FaceForensics++.json'), JSON.stringify({
    'FaceForensics++': {
      'FF-real': { train: { c23: { '000': { label: 'FF-real', frames: f('FaceForensics++/original_sequences/youtube/c23/frames/000', 2) } } } },
      'FF-DF': { train: { c23: { '000_003': { label: 'FF-DF', frames: f('FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_003', 1) } } } },
    },
  }));
});
afterAll(() => cleanup());

const expected = {
  datasets: {
    'FaceForensics++': {
      real: { videos: 1, frames: 2, missing: 0, empty: 0, corrupt: 0 },
      fake: { videos: 1, frames: 1, missing: 0, empty: 0, corrupt: 0 },
    },
    alpha: {
      real: { videos: 2, frames: 4, missing: 1, empty: 0, corrupt: 0 },
      fake: { videos: 3, frames: 2, missing: 4, empty: 1, corrupt: 3 },
    },
  },
  totals: { videos: 7, frames: 9, missing: 5, empty: 1, corrupt: 3 },
};

describe('dfd df40 verify', () => {
  it('counts videos, decodable frames, missing, empty and corrupt per dataset and label', async () => {
    const { report } = await verifyDf40(root);
    expect(report).toEqual(expected);
  });

  it('--json prints the counts and every bad path; the progress says how many frames failed to decode', async () => {
    const io = captureIO(root);
    expect(await df40Command.run(['verify', '.', '--json'], io)).toBe(0);
    const json = JSON.parse(io.out());
    expect(Object.keys(json)).toEqual(['datasets', 'totals', 'problems', 'unreadable']);
    expect({ datasets: json.datasets, totals: json.totals }).toEqual(expected);
    const at = (rel: string) => join(root, 'DF40/alpha', rel);
    expect(json.problems).toEqual([
      { dataset: 'alpha', label: 'real', kind: 'missing', count: 1, paths: [at('real/frames/v2/1.png')] },
      { dataset: 'alpha', label: 'fake', kind: 'missing', count: 4, paths: [0, 1, 2, 3].map((i) => at(`fake/frames/f1/${i}.png`)) },
      { dataset: 'alpha', label: 'fake', kind: 'empty', count: 1, paths: [at('fake/frames/f1')] },
      { dataset: 'alpha', label: 'fake', kind: 'corrupt', count: 3, paths: [at('fake/frames/f2/2.png'), at('fake/frames/f3/0.png'), at('fake/frames/f3/1.png')] },
    ]);
    expect(json.unreadable).toEqual([]);
    // progress goes to stderr: 12 files checked, 9 decode, 3 do not (it used to say "decoded 12/12")
    expect(io.err()).toBe('checked 12/12 frames: 9 decoded, 3 failed to decode\n');
  });

  it('--all lists every bad path in the table; without it, 3 examples and how many more', async () => {
    const short = captureIO('/');
    expect(await df40Command.run(['verify', root], short)).toBe(0);
    expect(short.out()).toContain(`alpha fake: 4 missing, e.g. ${[0, 1, 2].map((i) => join(root, `DF40/alpha/fake/frames/f1/${i}.png`)).join(', ')} (and 1 more: --all lists every path)`);
    const all = captureIO('/');
    expect(await df40Command.run(['verify', root, '--all'], all)).toBe(0);
    const lines = all.out().split('\n');
    const at = lines.indexOf('- alpha fake: 4 missing:');
    expect(lines.slice(at + 1, at + 5)).toEqual([0, 1, 2, 3].map((i) => `    ${join(root, `DF40/alpha/fake/frames/f1/${i}.png`)}`));
    expect(all.out()).toContain(`- alpha fake: 3 corrupt:\n    ${join(root, 'DF40/alpha/fake/frames/f2/2.png')}\n    ${join(root, 'DF40/alpha/fake/frames/f3/0.png')}\n    ${join(root, 'DF40/alpha/fake/frames/f3/1.png')}\n`);
  });

  it('prints a table with a hint per problem', async () => {
    const io = captureIO('/');
    expect(await df40Command.run(['verify', root], io)).toBe(0);
    const text = io.out();
    expect(text).toMatch(/dataset\s+label\s+videos\s+frames\s+missing\s+empty\s+corrupt/);
    expect(text).toMatch(/alpha\s+fake\s+3\s+2\s+4\s+1\s+3/);
    expect(text).toMatch(/TOTAL\s+7\s+9\s+5\s+1\s+3/);
    expect(text).toContain('alpha fake: 4 missing, e.g. ' + join(root, 'DF40/alpha/fake/frames/f1/0.png'));
    expect(text).toContain('alpha fake: 3 corrupt');
    expect(text).toContain('alpha fake: 1 empty');
    expect(text.match(/hint:/g)).toHaveLength(4); // alpha real missing; alpha fake missing, empty, corrupt
  });

  it('reads JSONs from --json-dir and applies --prefix rules', async () => {
    const other = join(root, 'elsewhere');
    await cp(join(root, 'dataset_json'), other, { recursive: true });
    const io = captureIO(root);
    expect(await df40Command.run(['verify', root, '--json-dir', other, '--json', '--prefix', `${AUTHOR}/=`], io)).toBe(0);
    const json = JSON.parse(io.out());
    expect({ datasets: json.datasets, totals: json.totals }).toEqual(expected);
  });

  it('exits 2 when the root or the JSON folder does not exist', async () => {
    const io = captureIO(root);
    expect(await df40Command.run(['verify', join(root, 'nope')], io)).toBe(2);
    expect(io.err()).toMatch(/nope does not exist/);
    const io2 = captureIO(root);
    expect(await df40Command.run(['verify', root, '--json-dir', 'no_such_dir'], io2)).toBe(2);
    expect(io2.err()).toMatch(/JSON folder .*no_such_dir does not exist/);
  });

  it('reports an unreadable JSON file and verifies the others', async () => {
    const { dir: other, cleanup: done } = await tempDir();
    try {
      await cp(root, other, { recursive: true });
      await writeFile(join(other, 'dataset_json/broken.json'), '{ nope');
      const io = captureIO(other);
      expect(await df40Command.run(['verify', '.'], io)).toBe(0);
      expect(io.out()).toMatch(/broken\.json is not valid JSON/);
      expect(io.out()).toMatch(/TOTAL\s+7\s+9/);
    } finally {
      await done();
    }
  });

  it('rejects wrong arguments with a usage error', async () => {
    const io = captureIO(root);
    await expect(df40Command.run(['check', root], io)).rejects.toThrow(UsageError);
    await expect(df40Command.run(['verify'], io)).rejects.toThrow(UsageError);
    await expect(df40Command.run(['verify', root, '--bogus'], io)).rejects.toThrow(/unknown option --bogus/);
  });
});
