/**
 * The on-disk feature store: one folder per cache namespace (encoder weights + preprocessing + view + what
 * is stored), one small file of raw little-endian float32 (or float16) per image content digest. Writes go
 * to a temporary name and are renamed into place, so a killed run or two processes filling the same cache
 * never leave a torn entry.
 *
 *   <dir>/<namespace>/manifest.json       what the namespace covers (human-readable key material)
 *   <dir>/<namespace>/<ab>/<digest>.f32   one embedding (or `.f16`: patch tokens in half precision)
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { assertRealFilesystem } from '../run/filesystem.js';
import { join } from 'node:path';
import { fromFloat16, toFloat16 } from './float16.js';

export type StoreDType = 'float32' | 'float16';

export interface StoreManifest {
  format: string;
  /** Everything the namespace key was computed from. */
  key: Record<string, unknown>;
  dim: number;
  dtype?: StoreDType;
  createdAt: string;
}

export const FEATURE_STORE_FORMAT = 'dfd-feature-cache/1';

let tmpCounter = 0;

export class FeatureStore {
  readonly path: string;
  private readonly dirs = new Set<string>();

  private readonly bytes: number;
  private readonly extension: string;

  constructor(
    root: string,
    readonly namespace: string,
    /** Values per entry. */
    readonly dim: number,
    /** On-disk precision; reads always return float32. */
    readonly dtype: StoreDType = 'float32',
  ) {
    this.path = join(root, namespace);
    this.bytes = dtype === 'float16' ? 2 : 4;
    this.extension = dtype === 'float16' ? '.f16' : '.f32';
  }

  /** Creates the namespace folder and its manifest (once), and removes what killed fills left behind. */
  async open(manifestKey: Record<string, unknown>): Promise<void> {
    assertRealFilesystem(this.path, 'feature cache folder');
    await mkdir(this.path, { recursive: true });
    await removeAbandonedTemporaries(this.path);
    const manifestPath = join(this.path, 'manifest.json');
    if (!existsSync(manifestPath)) {
      const manifest: StoreManifest = { format: FEATURE_STORE_FORMAT, key: manifestKey, dim: this.dim, dtype: this.dtype, createdAt: new Date().toISOString() };
      await this.atomicWrite(manifestPath, JSON.stringify(manifest, null, 2));
    }
  }

  private entryPath(digest: string): string {
    return join(this.path, digest.slice(0, 2), `${digest}${this.extension}`);
  }

  /** True when a complete entry exists; a damaged one (wrong size: a torn copy, a full disk) counts as absent. */
  has(digest: string): boolean {
    try {
      return statSync(this.entryPath(digest)).size === this.dim * this.bytes;
    } catch {
      return false;
    }
  }

  /** The embedding, or undefined when absent or damaged (a damaged entry is removed so it is re-encoded). */
  async read(digest: string): Promise<Float32Array | undefined> {
    const path = this.entryPath(digest);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch {
      return undefined;
    }
    if (bytes.byteLength !== this.dim * this.bytes) {
      await rm(path, { force: true });
      return undefined;
    }
    if (this.dtype === 'float16') {
      const halves = new Uint16Array(this.dim);
      new Uint8Array(halves.buffer).set(bytes);
      return fromFloat16(halves);
    }
    const out = new Float32Array(this.dim);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }

  async write(digest: string, embedding: Float32Array): Promise<void> {
    if (embedding.length !== this.dim) throw new Error(`feature store ${this.path}: embedding of ${embedding.length} values, expected ${this.dim}`);
    const folder = join(this.path, digest.slice(0, 2));
    if (!this.dirs.has(folder)) {
      await mkdir(folder, { recursive: true });
      this.dirs.add(folder);
    }
    const stored = this.dtype === 'float16' ? toFloat16(embedding) : embedding;
    await this.atomicWrite(this.entryPath(digest), new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength));
  }

  private async atomicWrite(path: string, data: string | Uint8Array): Promise<void> {
    // The writer's pid and host are in the name, so a later open can tell an abandoned file from a live one.
    const tmp = `${path}.${process.pid}@${hostname()}.${++tmpCounter}.tmp`;
    try {
      await writeFile(tmp, data);
      await rename(tmp, path);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
  }
}

/** Temporary entries from another host are abandoned after this long (a write takes milliseconds). */
const FOREIGN_TMP_MAX_AGE_MS = 10 * 60 * 1000;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A `*.tmp` entry whose writer is gone: a dead process on this host, or an old file from another host. */
function abandoned(folder: string, name: string): boolean {
  const match = /\.(\d+)(?:@(.+))?\.\d+\.tmp$/.exec(name);
  if (!match) return false;
  const host = match[2];
  if (host === undefined || host === hostname()) return !processAlive(Number(match[1]));
  try {
    return Date.now() - statSync(join(folder, name)).mtimeMs > FOREIGN_TMP_MAX_AGE_MS;
  } catch {
    return false;
  }
}

/**
 * Removes the temporary files of fills that were killed (kill -9, a node crash) before renaming them into
 * place. Shards filling the same cache at once keep theirs: only dead writers' files go.
 */
export async function removeAbandonedTemporaries(root: string): Promise<string[]> {
  const removed: string[] = [];
  const folders = [root, ...(await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => join(root, e.name))];
  for (const folder of folders) {
    for (const name of await readdir(folder).catch(() => [] as string[])) {
      if (!name.endsWith('.tmp') || !abandoned(folder, name)) continue;
      await rm(join(folder, name), { force: true });
      removed.push(join(folder, name));
    }
  }
  return removed;
}
