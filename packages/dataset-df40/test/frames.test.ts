import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sampleFrameIndices, sortFrames } from '@dfd/dataset-df40';

// numpy.linspace(0, count-1, n, dtype=int), from tools/fixtures/df40/make_fixtures.py
const reference = JSON.parse(
  readFileSync(new URL('../../../tools/fixtures/df40/out/sampling.json', import.meta.url), 'utf8'),
) as Array<{ count: number; n: number; indices: number[] }>;

describe('frame sampling', () => {
  it.each(reference.map((r) => [r.count, r.n, r.indices] as const))('even: %i frames, %i kept = numpy linspace', (count, n, indices) => {
    expect(sampleFrameIndices(count, n, 'even')).toEqual(indices);
  });

  it('even spacing spans the whole video and never repeats a frame', () => {
    for (let count = 1; count < 80; count++) {
      for (let n = 1; n <= count; n++) {
        const picked = sampleFrameIndices(count, n, 'even');
        expect(new Set(picked).size).toBe(picked.length);
        expect(picked[0]).toBe(0);
        if (n > 1) expect(picked.at(-1)).toBe(count - 1);
      }
    }
  });

  it('first-n takes the first frames, as DF40 does', () => {
    expect(sampleFrameIndices(32, 8, 'first-n')).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(sampleFrameIndices(5, 8, 'first-n')).toEqual([0, 1, 2, 3, 4]);
    expect(sampleFrameIndices(5, 0, 'even')).toEqual([0, 1, 2, 3, 4]);
  });

  it('sorts frames by integer stem, not as strings', () => {
    expect(sortFrames(['a/10.png', 'a/2.png', 'a/1.png', 'a/x.png', 'a/010.png'])).toEqual([
      'a/1.png',
      'a/2.png',
      'a/010.png',
      'a/10.png',
      'a/x.png',
    ]);
  });
});
