/**
 * Safetensors reader/writer: round trips, F16/BF16 widening against files written by the reference
 * `safetensors` Python package (the encoder-clip fixtures), the synchronous reader, and corrupt files.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concatSafetensors, readSafetensors, SafetensorsError, SafetensorsFile, SafetensorsFileSync, writeSafetensors } from '@dfd/core';

const CLIP_FIXTURES = fileURLToPath(new URL('../../../tools/fixtures/clip/out/', import.meta.url));
const TINY_CLIP = fileURLToPath(new URL('../../../examples/models/tiny-clip/model.safetensors', import.meta.url));

describe('safetensors', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dfd-st-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('round-trips several dtypes and metadata, keys sorted, data section 8-byte aligned', async () => {
    const path = join(dir, 'a.safetensors');
    await writeSafetensors(
      path,
      {
        b: { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6.5]) },
        a: { shape: [3], data: Int32Array.from([-1, 0, 7]) },
        c: { shape: [], data: Float64Array.from([Math.PI]) },
      },
      { note: 'hello' },
    );
    const bytes = await readFile(path);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    expect(Object.keys(JSON.parse(bytes.subarray(8, 8 + headerLength).toString()))).toEqual(['__metadata__', 'a', 'b', 'c']);
    const { tensors, metadata } = await readSafetensors(path);
    expect(metadata).toEqual({ note: 'hello' });
    expect(Array.from(tensors.b!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6.5]);
    expect(tensors.a).toMatchObject({ dtype: 'I32', shape: [3] });
    expect(Array.from(tensors.a!.data as Int32Array)).toEqual([-1, 0, 7]);
    expect((tensors.c!.data as Float64Array)[0]).toBe(Math.PI);
  });

  it('widens F16 and BF16 written by the Python safetensors package to within their rounding of the F32 weights', async () => {
    const f32 = await SafetensorsFile.open(TINY_CLIP);
    const f16 = await SafetensorsFile.open(`${CLIP_FIXTURES}tiny-f16/model.safetensors`);
    const bf16 = await SafetensorsFile.open(`${CLIP_FIXTURES}tiny-bf16/model.safetensors`);
    try {
      const name = 'vision_model.encoder.layers.0.mlp.fc1.weight';
      expect(f16.info(name).dtype).toBe('F16');
      expect(bf16.info(name).dtype).toBe('BF16');
      const full = (await f32.readFloat32(name)).data;
      const half = (await f16.readFloat32(name)).data;
      const brain = (await bf16.readFloat32(name)).data;
      for (let i = 0; i < full.length; i++) {
        // F16 keeps 11 significant bits, BF16 8 (round to nearest).
        expect(Math.abs(half[i]! - full[i]!)).toBeLessThanOrEqual(Math.abs(full[i]!) * 2 ** -11 + 2 ** -24);
        expect(Math.abs(brain[i]! - full[i]!)).toBeLessThanOrEqual(Math.abs(full[i]!) * 2 ** -8);
      }
    } finally {
      await Promise.all([f32.close(), f16.close(), bf16.close()]);
    }
  });

  it('the synchronous reader returns what the asynchronous one does', async () => {
    const sync = SafetensorsFileSync.open(`${CLIP_FIXTURES}tiny-bf16/model.safetensors`);
    const async_ = await SafetensorsFile.open(`${CLIP_FIXTURES}tiny-bf16/model.safetensors`);
    try {
      expect(sync.names().sort()).toEqual(async_.names().sort());
      for (const name of sync.names().slice(0, 10)) {
        expect(sync.info(name)).toEqual(async_.info(name));
        expect(sync.readFloat32(name).data).toEqual((await async_.readFloat32(name)).data);
      }
      expect(sync.metadata).toEqual(async_.metadata);
    } finally {
      sync.close();
      await async_.close();
    }
    expect(() => sync.readRaw('logit_scale')).toThrow(/closed/);
  });

  it('concatSafetensors joins files row-wise, in small chunks, into the very bytes writeSafetensors writes for the joined tensors', async () => {
    const rows = (n: number, width: number, from: number) => Float32Array.from({ length: n * width }, (_, i) => from + i * 0.25);
    const parts = [3, 1, 4].map((n, k) => ({ n, a: rows(n, 5, k * 100), b: rows(n, 2 * 3, -k * 7) }));
    const sources: string[] = [];
    for (const [k, part] of parts.entries()) {
      sources.push(join(dir, `part-${k}.safetensors`));
      await writeSafetensors(sources[k]!, { a: { shape: [part.n, 5], data: part.a }, b: { shape: [part.n, 2, 3], data: part.b } }, { part: String(k) });
    }
    const metadata = { paths: JSON.stringify(['x', 'y']), model: 'm' };
    const joined = join(dir, 'joined.safetensors');
    // 12-byte chunks: smaller than one row of a, so every row is copied across chunk boundaries.
    expect(await concatSafetensors(joined, sources, metadata, { chunkBytes: 12 })).toEqual({ rows: 8 });
    const concat = (key: 'a' | 'b') => Float32Array.from(parts.flatMap((p) => Array.from(p[key])));
    const expected = join(dir, 'expected.safetensors');
    await writeSafetensors(expected, { a: { shape: [8, 5], data: concat('a') }, b: { shape: [8, 2, 3], data: concat('b') } }, metadata);
    expect(Buffer.compare(await readFile(joined), await readFile(expected))).toBe(0);
    // Another trailing shape cannot be joined; the message names both files.
    const odd = join(dir, 'odd.safetensors');
    await writeSafetensors(odd, { a: { shape: [1, 4], data: new Float32Array(4) }, b: { shape: [1, 2, 3], data: new Float32Array(6) } });
    // A header no reader would accept (here 100 MB of metadata) is refused before anything is written.
    const huge = join(dir, 'huge.safetensors');
    await expect(concatSafetensors(huge, sources, { paths: 'x'.repeat(100_000_001) })).rejects.toThrow(/huge\.safetensors: its header would be \d+ bytes, past the 100000000-byte limit/);
    expect((await readdir(dir)).filter((n) => n.startsWith('huge'))).toEqual([]);
    await expect(concatSafetensors(join(dir, 'bad.safetensors'), [sources[0]!, odd], {})).rejects.toThrow(/cannot join .*odd\.safetensors to .*part-0\.safetensors: tensor 'a' is F32 \[1,4\], not F32 \[n, 5\]/);
  });

  it('names the file and the problem for corrupt or truncated files, sync and async', async () => {
    const tiny = join(dir, 'tiny.safetensors');
    await writeFile(tiny, Buffer.from([1, 2, 3]));
    await expect(SafetensorsFile.open(tiny)).rejects.toThrow(/tiny\.safetensors is not a safetensors file/);
    expect(() => SafetensorsFileSync.open(tiny)).toThrow(SafetensorsError);
    const good = join(dir, 'good.safetensors');
    await writeSafetensors(good, { x: { shape: [4], data: new Float32Array(4) } });
    const truncated = join(dir, 'truncated.safetensors');
    const bytes = await readFile(good);
    await writeFile(truncated, bytes.subarray(0, bytes.length - 4));
    await expect(SafetensorsFile.open(truncated)).rejects.toThrow(/tensor x .* truncated or corrupt/);
    expect(() => SafetensorsFileSync.open(truncated)).toThrow(/tensor x .* truncated or corrupt/);
    const notJson = join(dir, 'notjson.safetensors');
    const header = Buffer.from('{not json}   ');
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    await writeFile(notJson, Buffer.concat([length, header]));
    expect(() => SafetensorsFileSync.open(notJson)).toThrow(/corrupt safetensors header/);
    expect(() => SafetensorsFileSync.open(join(dir, 'missing.safetensors'))).toThrow(/cannot open safetensors file/);
  });
});
