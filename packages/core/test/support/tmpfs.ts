/**
 * A real full disk for tests: a small tmpfs mounted under the system temp folder (the tests run as root
 * in CI; `mount` needs CAP_SYS_ADMIN). It is not skipped when it cannot be mounted: the test fails and
 * says why, so a full-disk guarantee is never silently untested.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, rmdirSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SmallDisk {
  dir: string;
  /** Writes zeros into a filler file until the file system is full (ENOSPC). */
  fill(): void;
  /** Removes the filler: space is back. */
  free(): void;
  unmount(): void;
}

export function mountSmallDisk(megabytes = 3): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), 'dfd-small-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    rmdirSync(dir);
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(
      `cannot mount a ${megabytes} MB tmpfs at ${dir} for the full-disk tests (${stderr || (error as Error).message}). ` +
        'These tests need root (or CAP_SYS_ADMIN) and mount(8): run the suite as root, e.g. in the CI container.',
    );
  }
  const filler = join(dir, 'filler');
  return {
    dir,
    fill() {
      const fd = openSync(filler, 'a');
      const chunk = Buffer.alloc(64 * 1024);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
        // The last pages: fill byte by byte so not even a small JSON file fits.
        try {
          for (;;) writeSync(fd, chunk, 0, 1);
        } catch (last) {
          if ((last as NodeJS.ErrnoException).code !== 'ENOSPC') throw last;
        }
      } finally {
        closeSync(fd);
      }
    },
    free() {
      rmSync(filler, { force: true });
    },
    unmount() {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      rmdirSync(dir);
    },
  };
}
