/** Half precision of the feature store against NumPy's float32 → float16 (tools/fixtures/float16). */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { fromFloat16, toFloat16 } from '@dfd/core';

const fixture = JSON.parse(readFileSync(new URL('./fixtures/float16.json', import.meta.url), 'utf8')) as { float32_bits: number[]; float16_bits: number[] };

describe('float16 conversion', () => {
  test('float32 → float16 gives NumPy’s bits for every case (ties to even, subnormals, overflow, specials)', () => {
    const values = new Float32Array(Uint32Array.from(fixture.float32_bits).buffer);
    const halves = toFloat16(values);
    const wrong = [...halves.keys()].filter((i) => halves[i] !== fixture.float16_bits[i]).map((i) => `${values[i]}: ${halves[i]} vs ${fixture.float16_bits[i]}`);
    expect(wrong).toEqual([]);
  });

  test('float16 → float32 is exact: converting back to half gives the same bits for all 65536 patterns but NaNs', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const back = toFloat16(fromFloat16(all));
    const isNaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    const wrong = [...all].filter((h) => !isNaN(h) && back[h] !== h);
    expect(wrong).toEqual([]);
    expect(Number.isNaN(fromFloat16(Uint16Array.of(0x7e00))[0])).toBe(true);
  });
});
