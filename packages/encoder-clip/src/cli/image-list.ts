/**
 * The images a command reads: a glob (`--images 'data/**\/*.jpg'`) or a list file (`--dataset`): a text file
 * with one path per line (a tab and anything after it, such as LaRE's `<path>\t<label>`, is ignored), or a JSON
 * array of paths or of objects with a `path` (and optionally `split` and `subset`, e.g. a DeepfakeBench JSON
 * flattened by `dfd df40`). Relative paths resolve against the list file's folder; repeated paths are kept once.
 * Shared by `dfd encode` and `dfd lare` (which never reads labels: a sample's class cannot reach its map).
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { glob } from 'tinyglobby';
import { UsageError } from '@dfd/core';

const IMAGE_EXTENSIONS = /\.(jpe?g|png|webp|tiff?|gif|bmp|avif)$/i;

export async function imagesFromGlob(pattern: string, cwd: string): Promise<string[]> {
  const found = await glob(pattern, { cwd, absolute: true, onlyFiles: true, expandDirectories: false });
  const images = found.filter((p) => IMAGE_EXTENSIONS.test(p)).sort();
  if (!images.length) throw new UsageError(`--images '${pattern}' matched no image files under ${cwd}`);
  return images;
}

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

export async function imagesFromList(file: string, cwd: string): Promise<string[]> {
  return (await readImageList(file, cwd)).map((item) => item.path);
}
