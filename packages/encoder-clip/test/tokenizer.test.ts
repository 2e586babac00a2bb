import { readFile } from 'node:fs/promises';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, beforeAll } from 'vitest';
import { ClipTokenizer, TokenizerError } from '@dfd/encoder-clip';
import { FIXTURES, TINY_CLIP } from './helpers.js';

interface Cases {
  tokenizer: string;
  pad_token_id: number;
  cases: Array<{ text: string; ids: number[]; tokens_untruncated: number[] }>;
}

describe('ClipTokenizer against transformers CLIPTokenizer (full CLIP vocabulary)', () => {
  let cases: Cases;
  let tokenizer: ClipTokenizer;
  beforeAll(async () => {
    cases = JSON.parse(await readFile(`${FIXTURES}tokenizer/cases.json`, 'utf8')) as Cases;
    tokenizer = await ClipTokenizer.fromOpenAIBpe(`${FIXTURES}tokenizer/bpe_simple_vocab_16e6.txt.gz`, { padId: cases.pad_token_id });
  });

  it('has the 49408-token vocabulary with SOS 49406 and EOT 49407', () => {
    expect(tokenizer.vocabSize).toBe(49408);
    expect(tokenizer.sosId).toBe(49406);
    expect(tokenizer.eotId).toBe(49407);
  });

  it('gives exactly the reference ids on every case (>= 200 strings)', () => {
    expect(cases.cases.length).toBeGreaterThanOrEqual(200);
    const mismatches: string[] = [];
    for (const c of cases.cases) {
      const { ids } = tokenizer.tokenize([c.text]);
      const ours = Array.from(ids);
      if (JSON.stringify(ours) !== JSON.stringify(c.ids)) {
        mismatches.push(`${JSON.stringify(c.text)}: ours ${ours.slice(0, 12)} ref ${c.ids.slice(0, 12)}`);
      }
      expect(tokenizer.encode(c.text)).toEqual(c.tokens_untruncated);
    }
    expect(mismatches).toEqual([]);
  });

  it('truncates long texts to 77 keeping SOS and EOT, and reports it', () => {
    const long = 'deepfake '.repeat(100);
    const out = tokenizer.tokenize([long, 'short']);
    expect(out.ids.length).toBe(2 * 77);
    expect(out.ids[0]).toBe(49406);
    expect(out.ids[76]).toBe(49407);
    expect(out.eotIndices).toEqual([76, 2]);
    expect(out.lengths).toEqual([75, 1]);
    expect(out.truncated).toEqual([true, false]);
  });

  it('tokenizes the empty string to SOS EOT and padding', () => {
    const out = tokenizer.tokenize(['']);
    expect(Array.from(out.ids.slice(0, 3))).toEqual([49406, 49407, cases.pad_token_id]);
    expect(out.eotIndices).toEqual([1]);
  });
});

describe('the tiny checkpoint vocabulary', () => {
  it('keeps prompt words and class names whole and distinct', async () => {
    const tok = await ClipTokenizer.fromFolder(TINY_CLIP);
    const words = ['real', 'fake', 'a', 'photo', 'of', 'x', 'face'];
    const ids = words.map((w) => tok.encode(w));
    for (const id of ids) expect(id).toHaveLength(1);
    expect(new Set(ids.map((i) => i[0])).size).toBe(words.length);
    expect(tok.tokenStrings('a photo of a')).toEqual(['a</w>', 'photo</w>', 'of</w>', 'a</w>']);
    // Text outside the reduced vocabulary still tokenizes (byte-level fallback).
    expect(tok.encode('zebra crossing ✓').length).toBeGreaterThan(2);
    expect(tok.eotId).toBe(tok.vocabSize - 1);
  });

  it('fails with a clear message on a folder without tokenizer files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dfd-tok-'));
    try {
      await expect(ClipTokenizer.fromFolder(dir)).rejects.toThrow(/vocab\.json and merges\.txt/);
      await writeFile(join(dir, 'vocab.json'), '{"a": 0}');
      await writeFile(join(dir, 'merges.txt'), '#version: 0.2\na b\n');
      await expect(ClipTokenizer.fromFolder(dir)).rejects.toThrow(TokenizerError);
      await expect(ClipTokenizer.fromFolder(dir)).rejects.toThrow(/<\|startoftext\|>/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
