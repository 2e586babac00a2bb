/**
 * Refuses pseudo-filesystems (procfs, sysfs ...) as places to write runs or caches. They accept some
 * operations and fail others in odd ways: Node's recursive mkdir loops forever on /proc at 100% CPU, in a
 * synchronous call that no signal handler can interrupt. The check runs before anything is created.
 */
import { statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** statfs(2) f_type magic numbers of kernel pseudo-filesystems (linux/magic.h). */
const PSEUDO_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0xcafe4a11, 'bpf'],
  [0x62656570, 'configfs'],
  [0x6165676c, 'pstore'],
  [0x1cd1, 'devpts'],
  [0x42494e4d, 'binfmt_misc'],
  [0xf97cff8c, 'selinuxfs'],
  [0x67596969, 'rpc_pipefs'],
  [0x19800202, 'mqueue'],
]);

/** The pseudo-filesystem holding `path` (or its nearest existing ancestor), or undefined for a real one. */
export function pseudoFilesystemOf(path: string): string | undefined {
  let current = resolve(path);
  for (;;) {
    try {
      const type = Number(statfsSync(current).type) >>> 0;
      return PSEUDO_FILESYSTEMS.get(type);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const parent = dirname(current);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === current) return undefined;
      current = parent;
    }
  }
}

/** Throws when `path` lies on a pseudo-filesystem, naming it and the fix. */
export function assertRealFilesystem(path: string, what: string): void {
  const pseudo = pseudoFilesystemOf(path);
  if (pseudo) {
    throw new Error(`${what} ${resolve(path)} is on ${pseudo}, a kernel pseudo-filesystem that cannot hold files; choose a folder on a disk (e.g. --runs-dir ./runs)`);
  }
}
