/**
 * The root of dfd's caches outside any project (built graphs, digests, fetched runs, computed extras):
 * `$DFD_CACHE_DIR`, else `$DFD_CACHE` (the name the graph caches read first, still honoured), else
 * `~/.cache/dfd`. One place, so moving the cache off a small home quota moves all of it.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function dfdCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const given = env.DFD_CACHE_DIR || env.DFD_CACHE;
  return given ? resolve(given) : join(homedir(), '.cache', 'dfd');
}
