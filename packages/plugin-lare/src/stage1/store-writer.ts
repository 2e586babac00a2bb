/**
 * Writes an extras store (the format @dfd/dataset-df40's `ExtrasStore` reads; see its extra-store.ts):
 * maps go to new safetensors parts, append-only, and the writer's index is rewritten atomically after each
 * part, so an interrupted run loses at most the maps since its last flush and a re-run resumes.
 *
 * Several writers may share a root (shards on several machines writing to one shared folder), each with
 * its own tag → `index.<tag>.json` and `parts/<tag>-<n>.safetensors`; none touches another's files.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors } from '@dfd/core';
import { EXTRAS_STORE_FORMAT, readStoreIndexes, type ExtrasStoreIndex } from '@dfd/dataset-df40';

export class StoreError extends Error {
  override name = 'StoreError';
}

/** JSON with sorted keys, so settings compare equal whatever order they were written in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function indexFileName(tag: string | undefined): string {
  return tag ? `index.${tag}.json` : 'index.json';
}

export interface StoreWriterOptions {
  /** Writer tag (e.g. `shard-3-of-16`); none → `index.json`. */
  tag?: string;
  settings: Record<string, unknown>;
  /** Shape of one map, e.g. [4, 32, 32]. */
  shape: number[];
}

export class StoreWriter {
  private pendingPaths: Array<[string, string]> = [];
  private pendingMaps: Float32Array[] = [];
  private readonly skippedNow = new Map<string, string>();

  private constructor(
    readonly root: string,
    private readonly tag: string | undefined,
    private readonly index: ExtrasStoreIndex,
    /** Every image path already in any index of the root (this writer's and others'). */
    private readonly donePaths: Set<string>,
  ) {}

  static async open(root: string, options: StoreWriterOptions): Promise<StoreWriter> {
    await mkdir(join(root, 'parts'), { recursive: true });
    const existing = await readStoreIndexes(root).catch(() => []);
    const want = canonicalJson(options.settings);
    const own = indexFileName(options.tag);
    let index: ExtrasStoreIndex | undefined;
    const done = new Set<string>();
    for (const { file, index: other } of existing) {
      if (canonicalJson(other.settings) !== want || other.shape.join('x') !== options.shape.join('x')) {
        throw new StoreError(
          `${file} holds maps made with other settings (${describeDifference(other.settings, options.settings)}); ` +
            'resume with the same options, or write to another --out',
        );
      }
      for (const [path] of other.entries) done.add(path);
      if (file.endsWith(`/${own}`)) index = other;
    }
    index ??= { format: EXTRAS_STORE_FORMAT, tensor: 'maps', shape: options.shape, settings: options.settings, parts: [], entries: [], skipped: [] };
    return new StoreWriter(root, options.tag, index, done);
  }

  has(path: string): boolean {
    return this.donePaths.has(path);
  }

  get count(): number {
    return this.index.entries.length + this.pendingPaths.length;
  }

  add(path: string, hash: string, map: Float32Array): void {
    if (this.donePaths.has(path)) throw new StoreError(`${path} is already in the store ${this.root}`);
    this.pendingPaths.push([path, hash]);
    this.pendingMaps.push(map);
    this.donePaths.add(path);
    this.skippedNow.delete(path);
  }

  skip(path: string, reason: string): void {
    this.skippedNow.set(path, reason);
  }

  get skipped(): Array<{ path: string; reason: string }> {
    return [...this.skippedNow].map(([path, reason]) => ({ path, reason }));
  }

  /** Writes pending maps as a new part and rewrites the index (atomically: temporary file + rename). */
  async flush(): Promise<void> {
    if (this.pendingMaps.length) {
      const part = `parts/${this.tag ?? 'main'}-${String(this.index.parts.length).padStart(5, '0')}.safetensors`;
      const per = this.index.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(this.pendingMaps.length * per);
      this.pendingMaps.forEach((m, i) => data.set(m, i * per));
      await writeSafetensors(join(this.root, part), { [this.index.tensor]: { shape: [this.pendingMaps.length, ...this.index.shape], data } });
      const partIndex = this.index.parts.length;
      this.index.parts.push(part);
      this.pendingPaths.forEach(([path, hash], row) => this.index.entries.push([path, hash, partIndex, row]));
      this.pendingPaths = [];
      this.pendingMaps = [];
    }
    // Skips of earlier runs stay listed unless this run retried the image.
    const retried = new Set([...this.skippedNow.keys()]);
    const kept = this.index.skipped.filter((s) => !retried.has(s.path) && !this.donePaths.has(s.path));
    this.index.skipped = [...kept, ...this.skipped];
    const file = join(this.root, indexFileName(this.tag));
    await writeFile(`${file}.tmp`, JSON.stringify(this.index));
    await rename(`${file}.tmp`, file);
  }
}

/** The settings keys whose values differ, stored value first (for refusal messages). */
export function describeDifference(a: Record<string, unknown>, b: Record<string, unknown>): string {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  const diff = keys.filter((k) => canonicalJson(a[k]) !== canonicalJson(b[k]));
  return diff.map((k) => `${k}: stored ${canonicalJson(a[k])}, now ${canonicalJson(b[k])}`).join('; ') || 'map shape differs';
}
