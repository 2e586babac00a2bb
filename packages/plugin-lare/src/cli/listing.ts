/**
 * The images a `dfd lare` command reads (`--dataset LIST`): a text file with one image path per line (a tab
 * and anything after it, such as LaRE's `<path>\t<label>`, is ignored), or a JSON array of paths or of
 * objects with a `path` (and optionally `split` and `subset`, used by `verify` for its coverage table).
 *
 * Labels are never read: extraction takes image paths only, so a sample's class cannot reach its map.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { UsageError } from '@dfd/core';

export interface ListedImage {
  path: string;
  split?: string;
  subset?: string;
}

export async function readImageList(file: string, cwd: string): Promise<ListedImage[]> {
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --dataset list ${path}: ${(error as Error).message}`);
  }
  let items: ListedImage[];
  if (/\.json$/i.test(path)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new UsageError(`${path} is not valid JSON; expected an array of image paths or of {"path": ...} objects`);
    }
    if (!Array.isArray(parsed)) throw new UsageError(`${path}: expected a JSON array of image paths or of {"path": ...} objects`);
    items = parsed.map((item, i) => {
      if (typeof item === 'string') return { path: item };
      const o = item as { path?: unknown; split?: unknown; subset?: unknown } | null;
      if (typeof o?.path !== 'string') throw new UsageError(`${path}: entry ${i} is neither a path nor an object with a "path" string`);
      return { path: o.path, ...(typeof o.split === 'string' ? { split: o.split } : {}), ...(typeof o.subset === 'string' ? { subset: o.subset } : {}) };
    });
  } else {
    items = text
      .split(/\r?\n/)
      .map((l) => l.split('\t')[0]!.trim())
      .filter((l) => l && !l.startsWith('#'))
      .map((p) => ({ path: p }));
  }
  if (!items.length) throw new UsageError(`${path} lists no images`);
  const base = dirname(path);
  const seen = new Set<string>();
  const out: ListedImage[] = [];
  for (const item of items) {
    const abs = isAbsolute(item.path) ? item.path : resolve(base, item.path);
    if (seen.has(abs)) continue;
    seen.add(abs);
    out.push({ ...item, path: abs });
  }
  return out;
}
