/**
 * A persistent path → (size, mtime, ctime, inode, sha256) index, so a feature cache over a million frames
 * hashes each image once, not once per process: later runs, epochs and shards `stat` the file and take the
 * digest from the index while those four facts are unchanged. ctime and inode are part of the check because
 * a copy that preserves mtime (`cp -p`, rsync -t) cannot preserve them: a replaced file is re-hashed.
 *
 * Storage: one JSON line per digest appended to `<file>` (several processes may append at once; each line is
 * one small write, and a torn or unparsable line is skipped on load). The file is rewritten without stale
 * lines when they outnumber live ones.
 */
import { appendFile, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { dfdCacheDir } from '../cache-dir.js';
import { sha256File } from '../digest.js';
import { ContentHashError } from './content-hash.js';

interface Entry {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  digest: string;
}

export interface DigestIndexOptions {
  /** How a file's digest is computed when the index has none (default: sha256 of its bytes). */
  hash?: (path: string) => Promise<string>;
}


export class FileDigestIndex {
  private readonly entries = new Map<string, Entry>();
  private pending: string[] = [];
  private staleLines = 0;
  /** Digests taken from the index / computed, since open. */
  readonly counts = { known: 0, hashed: 0 };

  private constructor(
    readonly file: string,
    private readonly hash: (path: string) => Promise<string>,
  ) {}

  static async open(file: string, options: DigestIndexOptions = {}): Promise<FileDigestIndex> {
    const index = new FileDigestIndex(file, options.hash ?? sha256File);
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch {
      return index; // no index yet
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const { p, s, m, c, i, d } = JSON.parse(line) as { p: string; s: number; m: number; c: number; i: number; d: string };
        if (typeof p !== 'string' || typeof d !== 'string' || !/^[0-9a-f]{64}$/.test(d)) throw new Error('bad entry');
        if (index.entries.has(p)) index.staleLines++;
        index.entries.set(p, { size: s, mtimeMs: m, ctimeMs: c, ino: i, digest: d });
      } catch {
        index.staleLines++; // a torn line from a killed writer: the file is simply hashed again
      }
    }
    if (index.staleLines > index.entries.size) await index.compact();
    return index;
  }

  /** The sha256 of the file at `path`, from the index when the file is unchanged. */
  async digest(path: string): Promise<string> {
    const absolute = resolve(path);
    let info;
    try {
      info = await stat(absolute);
    } catch (error) {
      throw new ContentHashError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; restore the file or remove it from the dataset`);
    }
    const known = this.entries.get(absolute);
    if (known && known.size === info.size && known.mtimeMs === info.mtimeMs && known.ctimeMs === info.ctimeMs && known.ino === info.ino) {
      this.counts.known++;
      return known.digest;
    }
    const digest = await this.hash(absolute);
    this.counts.hashed++;
    if (known) this.staleLines++;
    const entry = { size: info.size, mtimeMs: info.mtimeMs, ctimeMs: info.ctimeMs, ino: info.ino, digest };
    this.entries.set(absolute, entry);
    this.pending.push(JSON.stringify({ p: absolute, s: entry.size, m: entry.mtimeMs, c: entry.ctimeMs, i: entry.ino, d: digest }));
    return digest;
  }

  /** Appends the digests computed since the last flush (one write). */
  async flush(): Promise<void> {
    if (!this.pending.length) return;
    const lines = `${this.pending.join('\n')}\n`;
    this.pending = [];
    await mkdir(dirname(this.file), { recursive: true });
    await appendFile(this.file, lines);
  }

  private async compact(): Promise<void> {
    const lines = [...this.entries].map(([p, e]) => JSON.stringify({ p, s: e.size, m: e.mtimeMs, c: e.ctimeMs, i: e.ino, d: e.digest }));
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, lines.length ? `${lines.join('\n')}\n` : '');
    await rename(tmp, this.file);
    this.staleLines = 0;
  }
}

/** One index per cache folder, shared by every caller in the process. */
const sharedIndexes = new Map<string, Promise<FileDigestIndex>>();

/**
 * The sha256 of a file, remembered across processes in `<dfd cache>/file-digests.jsonl` (`dfdCacheDir`):
 * model weights (a 3.4 GB Stable Diffusion UNet, a 1.7 GB CLIP) are hashed once per machine, not once per
 * process, while the file is unchanged. A cache folder that cannot be written only costs the hashing again.
 */
export async function rememberedSha256(path: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const file = join(dfdCacheDir(env), 'file-digests.jsonl');
  let shared = sharedIndexes.get(file);
  if (!shared) {
    shared = FileDigestIndex.open(file);
    sharedIndexes.set(file, shared);
  }
  const index = await shared.catch(() => undefined); // an unreadable index (or one that cannot be compacted): hash
  if (!index) return sha256File(path);
  const digest = await index.digest(path);
  await index.flush().catch(() => undefined);
  return digest;
}
