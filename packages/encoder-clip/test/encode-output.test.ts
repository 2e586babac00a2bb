/**
 * `dfd encode`'s output (encode-output.ts): a checkpoint appends only its new rows as a part; a run that
 * died without finishing (no `finish`) leaves whole parts that the next run resumes from; `finish` joins
 * the output and the parts into the file one write of all rows gives, byte for byte. Real files on disk.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, writeSafetensors } from '@dfd/core';
import { EncodeOutput } from '../src/cli/encode-output.js';

const FACTS = { model: '/m', engine: 'onnxruntime-cpu', precision: 'fp32', weights_digest: 'abc', patch_tokens: 'true' };
const SHAPES = { embeds: [3], patchTokens: [2, 2, 1] };
const accept = () => undefined;
/** Row `i`'s embedding and patch tokens: distinct values, so a misplaced row shows. */
const embed = (i: number) => Float32Array.from([i, i + 0.5, -i]);
const patches = (i: number) => Float32Array.from([i, 2 * i, 3 * i, 4 * i]);

async function addRows(output: EncodeOutput, from: number, count: number): Promise<void> {
  const ids = Array.from({ length: count }, (_, k) => from + k);
  const cat = (f: (i: number) => Float32Array) => Float32Array.from(ids.flatMap((i) => Array.from(f(i))));
  output.add(ids.map((i) => `/img/${i}.png`), cat(embed), cat(patches));
}

async function rowsOf(file: string): Promise<number> {
  const stored = await SafetensorsFile.open(file);
  try {
    return stored.info('embeds').shape[0]!;
  } finally {
    await stored.close();
  }
}

describe('dfd encode output: parts and the final join', () => {
  let dir: string;
  let out: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dfd-encode-output-'));
    out = join(dir, 'feats.safetensors');
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('appends each checkpoint as a part with only its rows; a killed run resumes from them; finish writes the one-shot file', async () => {
    const first = await EncodeOutput.open(out, () => FACTS, SHAPES, accept);
    await addRows(first, 0, 2);
    await first.checkpoint();
    const part0 = join(`${out}.parts`, '00000.safetensors');
    const written = (await stat(part0)).mtimeMs;
    await addRows(first, 2, 1);
    await first.checkpoint();
    expect(await readdir(`${out}.parts`)).toEqual(['00000.safetensors', '00001.safetensors']);
    expect([await rowsOf(part0), await rowsOf(join(`${out}.parts`, '00001.safetensors'))]).toEqual([2, 1]);
    expect((await stat(part0)).mtimeMs).toBe(written); // appended, not rewritten
    await addRows(first, 3, 5); // never checkpointed: lost with the killed run

    // The run dies here (no finish). The next one finds the three checkpointed rows.
    const second = await EncodeOutput.open(out, () => FACTS, SHAPES, accept);
    expect(second.paths).toEqual(['/img/0.png', '/img/1.png', '/img/2.png']);
    expect(existsSync(out)).toBe(false);
    await addRows(second, 3, 2);
    await second.finish({ model: '/m' }, [{ path: '/img/bad.png', reason: 'corrupt' }]);
    expect(existsSync(`${out}.parts`)).toBe(false);

    const ids = [0, 1, 2, 3, 4];
    const expected = join(dir, 'expected.safetensors');
    const cat = (f: (i: number) => Float32Array) => Float32Array.from(ids.flatMap((i) => Array.from(f(i))));
    const paths = ids.map((i) => `/img/${i}.png`);
    await writeSafetensors(expected, { embeds: { shape: [5, 3], data: cat(embed) }, patch_tokens: { shape: [5, 2, 2, 1], data: cat(patches) } }, { ...FACTS, paths: JSON.stringify(paths) });
    expect(Buffer.compare(await readFile(out), await readFile(expected))).toBe(0);
    expect(JSON.parse(await readFile(`${out}.index.json`, 'utf8'))).toEqual({ model: '/m', rows: paths, skipped: [{ path: '/img/bad.png', reason: 'corrupt' }] });
  });

  it('resumes from the joined file plus new parts, and every stored file must pass the settings check', async () => {
    const third = await EncodeOutput.open(out, () => FACTS, SHAPES, accept);
    expect(third.paths).toHaveLength(5);
    await addRows(third, 5, 1);
    await third.checkpoint();
    const fourth = await EncodeOutput.open(out, () => FACTS, SHAPES, accept);
    expect(fourth.paths.at(-1)).toBe('/img/5.png');
    await fourth.finish({}, []);
    expect(await rowsOf(out)).toBe(6);
    // A part left with other settings is refused, naming it.
    const other = await EncodeOutput.open(out, () => ({ ...FACTS, weights_digest: 'zzz' }), SHAPES, accept);
    await addRows(other, 6, 1);
    await other.checkpoint();
    const refuse = (metadata: Record<string, string>, file: string) => {
      if (metadata.weights_digest !== 'abc') throw new Error(`${file}: other weights`);
    };
    await expect(EncodeOutput.open(out, () => FACTS, SHAPES, refuse)).rejects.toThrow(/feats\.safetensors\.parts\/00000\.safetensors: other weights/);
  });
});
