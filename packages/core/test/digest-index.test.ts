/** The persistent path → digest index of the feature cache, on real files. */
import { createHash } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContentHashError, FileDigestIndex, rememberedSha256, sha256File } from '@dfd/core';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

describe('FileDigestIndex', () => {
  let dir: string;
  let hashed: string[];
  const counting = async (path: string) => {
    hashed.push(path);
    return createHash('sha256').update(await readFile(path)).digest('hex');
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dfd-digest-index-'));
    for (const name of ['a', 'b', 'c']) await writeFile(join(dir, `${name}.png`), `bytes of ${name}`);
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('hashes each file once; a later process (a new index on the same file) reads no image again', async () => {
    hashed = [];
    const file = join(dir, 'index.jsonl');
    const first = await FileDigestIndex.open(file, { hash: counting });
    for (const name of ['a', 'b', 'c', 'a']) expect(await first.digest(join(dir, `${name}.png`))).toBe(sha(`bytes of ${name}`));
    expect(hashed).toHaveLength(3);
    await first.flush();
    hashed = [];
    const second = await FileDigestIndex.open(file, { hash: counting });
    for (const name of ['a', 'b', 'c']) expect(await second.digest(join(dir, `${name}.png`))).toBe(sha(`bytes of ${name}`));
    expect(hashed).toEqual([]);
    expect(second.counts).toEqual({ known: 3, hashed: 0 });
  });

  it('re-hashes an edited file, even when its size and mtime are put back', async () => {
    const file = join(dir, 'index2.jsonl');
    const path = join(dir, 'edited.png');
    await writeFile(path, 'original');
    const when = new Date('2024-01-01T00:00:00Z');
    await utimes(path, when, when);
    const first = await FileDigestIndex.open(file);
    expect(await first.digest(path)).toBe(sha('original'));
    await first.flush();
    await writeFile(path, 'replaced'); // same length
    await utimes(path, when, when); // as `cp -p` would: size and mtime unchanged, ctime is not
    hashed = [];
    const second = await FileDigestIndex.open(file, { hash: counting });
    expect(await second.digest(path)).toBe(sha('replaced'));
    expect(hashed).toHaveLength(1);
  });

  it('skips torn lines and compacts when stale lines outnumber live ones; a missing file names itself', async () => {
    const file = join(dir, 'index3.jsonl');
    const index = await FileDigestIndex.open(file);
    await index.digest(join(dir, 'a.png'));
    await index.flush();
    await appendFile(file, '{"p": "/x", "s": 1, "m"\nnot json\n{"p":"/y","d":"nothex"}\n');
    const reopened = await FileDigestIndex.open(file);
    expect(await reopened.digest(join(dir, 'a.png'))).toBe(sha('bytes of a'));
    expect(reopened.counts.known).toBe(1);
    expect((await readFile(file, 'utf8')).trim().split('\n')).toHaveLength(1);
    await expect(reopened.digest(join(dir, 'gone.png'))).rejects.toThrow(ContentHashError);
    await expect(reopened.digest(join(dir, 'gone.png'))).rejects.toThrow(/gone\.png: ENOENT/);
  });

  it('sha256File reads small files whole and streams large ones, with the same digests', async () => {
    const small = join(dir, 'small.bin');
    const large = join(dir, 'large.bin'); // past the 4 MiB chunk, so it is streamed
    await writeFile(small, 'tiny');
    const bytes = Buffer.alloc((1 << 22) + 12345, 7).fill(3, 1000, 2000);
    await writeFile(large, bytes);
    expect(await sha256File(small)).toBe(sha('tiny'));
    expect(await sha256File(large)).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('rememberedSha256 keeps model digests in <dfd cache>/file-digests.jsonl for later processes', async () => {
    const cache = join(dir, 'cache');
    const env = { DFD_CACHE_DIR: cache };
    const weights = join(dir, 'weights.bin');
    await writeFile(weights, 'model weights');
    expect(await rememberedSha256(weights, env)).toBe(sha('model weights'));
    // What a later process finds: the digest, read from the index without hashing.
    hashed = [];
    const later = await FileDigestIndex.open(join(cache, 'file-digests.jsonl'), { hash: counting });
    expect(await later.digest(weights)).toBe(sha('model weights'));
    expect(hashed).toEqual([]);
  });
});
