/**
 * An extras store: many per-image maps (LaRE maps from `dfd lare extract` or `dfd lare import`) in safetensors
 * parts plus JSON indexes, found by image path or, failing that, by the image file's content hash.
 *
 * Layout (format `dfd-extras-store/1`):
 *
 *   ROOT/index.json, ROOT/index.<tag>.json   one index per writer (e.g. per shard); all are read together
 *   ROOT/parts/<tag>-<n>.safetensors         `maps [n, ...shape]` float32, rows in the order the index lists
 *
 * An index: `{ format, tensor, shape, settings, parts: [file], entries: [[path, sha256, part, row]], skipped }`.
 * Indexes in one root must share `shape` and `settings` (what made the maps); the reader refuses a mix.
 * By content hash, a map extracted on another machine (other paths) still finds its image.
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export const EXTRAS_STORE_FORMAT = 'dfd-extras-store/1';

export class ExtrasStoreError extends Error {
  override name = 'ExtrasStoreError';
}

export interface ExtrasStoreIndex {
  format: string;
  tensor: string;
  shape: number[];
  settings: Record<string, unknown>;
  parts: string[];
  /** `[absolute image path, sha256 of the file, part index, row]`. */
  entries: Array<[string, string, number, number]>;
  skipped: Array<{ path: string; reason: string }>;
}

export interface StoreEntry {
  path: string;
  hash: string;
  /** Part file path (absolute) and row. */
  part: string;
  row: number;
}

const INDEX_NAME = /^index(\..+)?\.json$/;

/** True when `root` is a folder holding an extras store index (`index.json` or `index.<tag>.json`). */
export function isExtrasStore(root: string): boolean {
  try {
    return readdirSync(root).some((n) => INDEX_NAME.test(n));
  } catch {
    return false;
  }
}

export async function readStoreIndexes(root: string): Promise<Array<{ file: string; index: ExtrasStoreIndex }>> {
  let names: string[];
  try {
    names = (await readdir(root)).filter((n) => INDEX_NAME.test(n)).sort();
  } catch (error) {
    throw new ExtrasStoreError(`cannot read extras store ${root}: ${(error as Error).message}`);
  }
  if (!names.length) throw new ExtrasStoreError(`${root} has no index.json: not an extras store (made by dfd lare extract / dfd lare import)`);
  const out: Array<{ file: string; index: ExtrasStoreIndex }> = [];
  for (const name of names) {
    const file = join(root, name);
    let index: ExtrasStoreIndex;
    try {
      index = JSON.parse(await readFile(file, 'utf8')) as ExtrasStoreIndex;
    } catch (error) {
      throw new ExtrasStoreError(`${file} is not valid JSON (${(error as Error).message}); an interrupted writer leaves the previous index, so this file was damaged otherwise`);
    }
    if (index.format !== EXTRAS_STORE_FORMAT) throw new ExtrasStoreError(`${file}: format '${index.format}', expected '${EXTRAS_STORE_FORMAT}'`);
    out.push({ file, index });
  }
  return out;
}

export async function sha256OfFile(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** Reads rows of `maps` from part files without loading whole parts (one header parse per part). */
class PartReader {
  private handles = new Map<string, Promise<{ handle: FileHandle; dataStart: number; offset: number; rowBytes: number; rows: number }>>();

  constructor(
    private readonly tensor: string,
    private readonly shape: number[],
  ) {}

  private openPart(path: string) {
    let opened = this.handles.get(path);
    if (!opened) {
      opened = (async () => {
        const handle = await open(path, 'r').catch((error: Error) => {
          throw new ExtrasStoreError(`extras store part ${path} cannot be opened (${error.message}); re-run the extraction or merge that wrote it`);
        });
        const head = Buffer.alloc(8);
        await handle.read(head, 0, 8, 0);
        const headerLength = Number(head.readBigUInt64LE(0));
        const header = Buffer.alloc(headerLength);
        await handle.read(header, 0, headerLength, 8);
        const info = (JSON.parse(header.toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>)[this.tensor];
        if (!info || info.dtype !== 'F32' || info.shape.slice(1).join('x') !== this.shape.join('x')) {
          throw new ExtrasStoreError(`${path}: no F32 '${this.tensor}' tensor of shape [n, ${this.shape.join(', ')}]`);
        }
        const rowBytes = this.shape.reduce((a, b) => a * b, 1) * 4;
        return { handle, dataStart: 8 + headerLength, offset: info.data_offsets[0], rowBytes, rows: info.shape[0]! };
      })();
      this.handles.set(path, opened);
    }
    return opened;
  }

  async row(path: string, row: number): Promise<Float32Array> {
    const part = await this.openPart(path);
    if (row >= part.rows) throw new ExtrasStoreError(`${path} has ${part.rows} rows; the index points at row ${row}`);
    const bytes = Buffer.alloc(part.rowBytes);
    await part.handle.read(bytes, 0, part.rowBytes, part.dataStart + part.offset + row * part.rowBytes);
    return new Float32Array(bytes.buffer, bytes.byteOffset, part.rowBytes / 4);
  }

  async close(): Promise<void> {
    for (const p of this.handles.values()) await (await p.catch(() => undefined))?.handle.close();
    this.handles.clear();
  }
}

export class ExtrasStore {
  private readonly parts: PartReader;

  private constructor(
    readonly root: string,
    readonly shape: number[],
    readonly settings: Record<string, unknown>,
    private readonly byPath: Map<string, StoreEntry>,
    private readonly byHash: Map<string, StoreEntry>,
    readonly skipped: Array<{ path: string; reason: string }>,
    tensor: string,
  ) {
    this.parts = new PartReader(tensor, shape);
  }

  static async open(root: string): Promise<ExtrasStore> {
    const dir = resolve(root);
    const indexes = await readStoreIndexes(dir);
    const first = indexes[0]!.index;
    const byPath = new Map<string, StoreEntry>();
    const byHash = new Map<string, StoreEntry>();
    const skipped: ExtrasStore['skipped'] = [];
    for (const { file, index } of indexes) {
      if (index.shape.join('x') !== first.shape.join('x') || JSON.stringify(index.settings) !== JSON.stringify(first.settings)) {
        throw new ExtrasStoreError(
          `${file} holds maps made with other settings or shape than ${indexes[0]!.file}; keep one extraction per store (dfd lare merge refuses such mixes too)`,
        );
      }
      for (const [path, hash, part, row] of index.entries) {
        const entry: StoreEntry = { path, hash, part: join(dir, index.parts[part]!), row };
        byPath.set(path, entry);
        if (!byHash.has(hash)) byHash.set(hash, entry);
      }
      skipped.push(...index.skipped);
    }
    return new ExtrasStore(dir, first.shape, first.settings, byPath, byHash, skipped, first.tensor);
  }

  get size(): number {
    return this.byPath.size;
  }

  entries(): IterableIterator<StoreEntry> {
    return this.byPath.values();
  }

  /** The entry of an image: by its absolute path, else (when `hashFallback`) by the file's content hash. */
  async find(imagePath: string, hashFallback = true): Promise<StoreEntry | undefined> {
    const byPath = this.byPath.get(resolve(imagePath));
    if (byPath || !hashFallback) return byPath;
    try {
      return this.byHash.get(await sha256OfFile(imagePath));
    } catch {
      return undefined;
    }
  }

  findByHash(hash: string): StoreEntry | undefined {
    return this.byHash.get(hash);
  }

  async read(entry: StoreEntry): Promise<{ shape: number[]; data: Float32Array }> {
    return { shape: [...this.shape], data: await this.parts.row(entry.part, entry.row) };
  }

  async close(): Promise<void> {
    await this.parts.close();
  }
}

const opened = new Map<string, Promise<ExtrasStore>>();

/** One shared reader per store root in a process (datasets look maps up sample by sample). */
export function extrasStoreAt(root: string): Promise<ExtrasStore> {
  const key = resolve(root);
  let store = opened.get(key);
  if (!store) {
    store = ExtrasStore.open(key);
    store.catch(() => opened.delete(key));
    opened.set(key, store);
  }
  return store;
}
