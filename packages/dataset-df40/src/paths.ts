/**
 * Frame paths in DF40's JSONs carry the authors' prefix (`/data/home/zhiyuanyan/deepfake_detection_datasets/
 * DF40/...`, `deepfakes_detection_datasets/FaceForensics++/...`). `PathResolver` maps them under the user's
 * root: explicit `{from, to}` rules first, then (auto) the first path segment that names a folder in the root
 * — checked two levels deep, so a stray `data/` segment does not win over `DF40/heygen`.
 */
import { readdir } from 'node:fs/promises';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';

export interface PrefixRule {
  from: string;
  to: string;
}

/** Memoised directory listings: one `readdir` per folder, however many frames point into it. */
export class DirCache {
  private readonly cache = new Map<string, Promise<Set<string> | null>>();

  /** File and folder names in `dir`, or null when it does not exist or is not a folder. */
  list(dir: string): Promise<Set<string> | null> {
    let entry = this.cache.get(dir);
    if (!entry) {
      entry = readdir(dir).then(
        (names) => new Set(names),
        () => null,
      );
      this.cache.set(dir, entry);
    }
    return entry;
  }
}

export class PathResolver {
  private topLevel = new Set<string>();
  private secondLevel = new Map<string, Set<string>>();

  private constructor(
    readonly root: string,
    private readonly rules: PrefixRule[],
    private readonly auto: boolean,
  ) {}

  static async create(root: string, rules: PrefixRule[] = [], auto = true, dirs = new DirCache()): Promise<PathResolver> {
    const resolver = new PathResolver(resolvePath(root), rules.map(normaliseRule), auto);
    const top = await dirs.list(resolver.root);
    if (top) {
      resolver.topLevel = top;
      for (const name of top) {
        const sub = await dirs.list(join(resolver.root, name));
        if (sub) resolver.secondLevel.set(name, sub);
      }
    }
    return resolver;
  }

  /** The absolute on-disk path of a frame path as written in a JSON. */
  resolve(raw: string): string {
    const path = raw.replace(/\\/g, '/');
    for (const rule of this.rules) {
      if (path.startsWith(rule.from)) {
        const rewritten = rule.to + path.slice(rule.from.length);
        return isAbsolute(rewritten) ? rewritten : join(this.root, rewritten);
      }
    }
    if (this.auto) {
      const anchored = this.anchor(path);
      if (anchored) return anchored;
    }
    return isAbsolute(path) ? path : join(this.root, path);
  }

  private anchor(path: string): string | undefined {
    const segments = path.split('/').filter((s) => s !== '' && s !== '.');
    let firstSingle: number | undefined;
    for (let i = 0; i < segments.length - 1; i++) {
      const segment = segments[i]!;
      if (!this.topLevel.has(segment)) continue;
      if (this.secondLevel.get(segment)?.has(segments[i + 1]!)) return join(this.root, ...segments.slice(i));
      firstSingle ??= i;
    }
    return firstSingle === undefined ? undefined : join(this.root, ...segments.slice(firstSingle));
  }
}

function normaliseRule(rule: PrefixRule): PrefixRule {
  return { from: rule.from.replace(/\\/g, '/'), to: rule.to.replace(/\\/g, '/') };
}
