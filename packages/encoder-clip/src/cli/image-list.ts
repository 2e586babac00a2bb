/**
 * The images `dfd encode` reads: a glob (`--images 'data/**\/*.jpg'`) or a list file (`--dataset`): a text
 * file with one path per line, or a JSON array of paths or of objects with a `path` (e.g. a DeepfakeBench
 * JSON flattened by `dfd df40`). Relative paths resolve against the list file's folder.
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

export async function imagesFromList(file: string, cwd: string): Promise<string[]> {
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --dataset list ${path}: ${(error as Error).message}`);
  }
  let entries: string[];
  if (/\.json$/i.test(path)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new UsageError(`${path} is not valid JSON; expected an array of image paths or of {"path": ...} objects`);
    }
    if (!Array.isArray(parsed)) throw new UsageError(`${path}: expected a JSON array of image paths or of {"path": ...} objects`);
    entries = parsed.map((item, i) => {
      const p = typeof item === 'string' ? item : (item as { path?: unknown } | null)?.path;
      if (typeof p !== 'string') throw new UsageError(`${path}: entry ${i} is neither a path nor an object with a "path" string`);
      return p;
    });
  } else {
    entries = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  }
  if (!entries.length) throw new UsageError(`${path} lists no images`);
  const base = dirname(path);
  return [...new Set(entries.map((p) => (isAbsolute(p) ? p : resolve(base, p))))];
}
