/**
 * Content digests of image files: the part of a feature-cache key that says *which image*. Keyed by
 * content, not path, so a renamed or copied dataset still hits, and an edited file misses. Digests are
 * remembered per (path, size, mtime) within the process, so later epochs do not re-read the files.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

const memo = new Map<string, { size: number; mtimeMs: number; digest: string }>();

export class ContentHashError extends Error {
  override name = 'ContentHashError';
}

/** sha256 (hex) of a file's bytes. */
export async function contentDigest(path: string): Promise<string> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw new ContentHashError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; restore the file or remove it from the dataset`);
  }
  const known = memo.get(path);
  if (known && known.size === info.size && known.mtimeMs === info.mtimeMs) return known.digest;
  const digest = createHash('sha256').update(await readFile(path)).digest('hex');
  memo.set(path, { size: info.size, mtimeMs: info.mtimeMs, digest });
  return digest;
}

/** sha256 (hex) of a canonical JSON rendering (object keys sorted), for keys built from configs. */
export function digestOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
