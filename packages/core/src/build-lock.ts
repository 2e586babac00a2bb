/**
 * One builder of a cached artefact (an ONNX graph, a quantised model) across processes and machines. A
 * Slurm array started together on a fresh model would otherwise have every shard build it at once (for
 * LaRE's int8 UNet: rewrite 3.4 GB, and calibrate it), and a shard could open a file another shard's rename
 * then replaces. The caller checks its cache again once it holds the lock.
 *
 * The lock is a file created exclusively beside the artefact (`O_EXCL`, atomic on local disks and on NFS v3+)
 * holding its owner; the builder refreshes its mtime while it works. Others wait for it to go and then find
 * the cached artefact. A lock not refreshed for `staleMs` belongs to a builder that died and is taken over.
 * The builder stamps the refresh with its own clock and waiters compare with theirs, so the default (2 min)
 * also absorbs ordinary clock skew between cluster nodes.
 */
import { hostname } from 'node:os';
import { open, readFile, rm, stat, utimes } from 'node:fs/promises';

export interface BuildLockOptions {
  /** A lock older than this without a refresh is stale (default 2 min; the builder refreshes every staleMs / 8). */
  staleMs?: number;
  /** How often a waiter looks again (default 2 s). */
  pollMs?: number;
  log?: (message: string) => void;
}

async function tryCreate(path: string, owner: string): Promise<boolean> {
  try {
    const handle = await open(path, 'wx');
    await handle.writeFile(owner);
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/** The lock's age since its last refresh, or undefined when it is gone. */
async function lockAge(path: string): Promise<number | undefined> {
  try {
    return Date.now() - (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Runs `build` holding the lock at `path`, after waiting for any live holder to finish. */
export async function withBuildLock<T>(path: string, build: () => Promise<T>, options: BuildLockOptions = {}): Promise<T> {
  const staleMs = options.staleMs ?? 120_000;
  const pollMs = options.pollMs ?? 2_000;
  const owner = `${hostname()} pid ${process.pid} since ${new Date().toISOString()}`;
  let told = false;
  while (!(await tryCreate(path, owner))) {
    const age = await lockAge(path);
    if (age !== undefined && age > staleMs) {
      options.log?.(`taking over ${path}: its builder (${(await readFile(path, 'utf8').catch(() => '?')).trim()}) stopped refreshing it ${Math.round(age / 1000)} s ago`);
      await rm(path, { force: true });
      continue;
    }
    if (!told && age !== undefined) {
      options.log?.(`waiting for ${(await readFile(path, 'utf8').catch(() => 'another process')).trim()}, which holds ${path} while it builds; the result will be reused`);
      told = true;
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  const refresh = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => undefined);
  }, Math.max(10, staleMs / 8));
  try {
    return await build();
  } finally {
    clearInterval(refresh);
    await rm(path, { force: true });
  }
}
