import { describe, expect, it } from 'vitest';
import { seededNoise } from '../src/stage1/noise.js';
import { parseShard, shardOf } from '../src/stage1/shard.js';

const shape = { channels: 4, height: 32, width: 32 };

describe('seeded noise', () => {
  it('is a function of (seed, content hash) only, and standard normal', () => {
    const a = seededNoise(0, 'ab'.repeat(32), 4, shape);
    const b = seededNoise(0, 'ab'.repeat(32), 4, shape);
    expect(Buffer.from(a.eps.buffer).equals(Buffer.from(b.eps.buffer))).toBe(true);
    expect(Buffer.from(a.eta.buffer).equals(Buffer.from(seededNoise(1, 'ab'.repeat(32), 4, shape).eta.buffer))).toBe(false);
    expect(Buffer.from(a.eta.buffer).equals(Buffer.from(seededNoise(0, 'cd'.repeat(32), 4, shape).eta.buffer))).toBe(false);
    const all = [...a.eta, ...a.eps];
    const mean = all.reduce((s, v) => s + v, 0) / all.length;
    const std = Math.sqrt(all.reduce((s, v) => s + (v - mean) ** 2, 0) / all.length);
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(std - 1)).toBeLessThan(0.03);
  });

  it('a smaller ensemble is a prefix of a larger one (E changes only the extra copies)', () => {
    const e2 = seededNoise(3, 'ef'.repeat(32), 2, shape);
    const e4 = seededNoise(3, 'ef'.repeat(32), 4, shape);
    expect(Array.from(e4.eps.subarray(0, e2.eps.length))).toEqual(Array.from(e2.eps));
  });
});

describe('--shard K/N', () => {
  it('parses K/N with K from 0 and refuses K >= N', () => {
    expect(parseShard('3/16')).toEqual({ index: 3, count: 16 });
    expect(() => parseShard('16/16')).toThrow(/below N/);
    expect(() => parseShard('a/b')).toThrow(/K\/N/);
  });

  it('is balanced over content hashes', () => {
    const counts = new Array(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[shardOf((i * 2654435761 >>> 0).toString(16).padStart(8, '0') + 'ff', 8)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });
});
