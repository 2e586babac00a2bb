/**
 * The `folder` dataset: no JSON, the folders are the truth.
 *
 * - DF40 layout: `<splitDir>/<method>/{ff,cdf}/[frames/]<video>/<n>.png` (known methods, fakes; reals from
 *   `realSources` per domain, split by a hash of the video name) and `<splitDir>/<method>/{fake,real}/...`
 *   (the unknown sets with their own reals). Loose images count as one-frame videos.
 * - UFD layout: `<split>/<subset…>/{0_real,1_fake}/<image>`; every image is its own video.
 */
import { readdir, stat } from 'node:fs/promises';
import { extname, join, relative, resolve, sep } from 'node:path';
import { hashString, type Label, type Split } from '@dfd/core';
import { FolderConfigSchema, type FolderConfig } from './config.js';
import { IndexedDataset, requireFolder } from './dataset-base.js';
import type { VideoRef } from './listing.js';
import { canonicalMethod, canonicalSubset } from './names.js';

export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp']);
const SPLITS: Split[] = ['train', 'val', 'test'];

export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

async function entries(dir: string): Promise<{ dirs: string[]; images: string[] } | undefined> {
  try {
    const list = await readdir(dir, { withFileTypes: true });
    const dirs = list.filter((e) => e.isDirectory()).map((e) => e.name).sort();
    const images = list.filter((e) => e.isFile() && isImageFile(e.name)).map((e) => e.name).sort();
    return { dirs, images };
  } catch {
    return undefined;
  }
}

/** Videos under a folder: `[frames/]<video>/<images>`, loose images as one-frame videos. */
async function collectVideos(dir: string): Promise<Array<{ video: string; frames: string[] }>> {
  let base = await entries(dir);
  if (!base) return [];
  if (base.dirs.includes('frames')) {
    dir = join(dir, 'frames');
    base = (await entries(dir)) ?? { dirs: [], images: [] };
  }
  const out: Array<{ video: string; frames: string[] }> = [];
  for (const video of base.dirs) {
    const inner = await entries(join(dir, video));
    out.push({ video, frames: (inner?.images ?? []).map((f) => join(dir, video, f)) });
  }
  for (const image of base.images) out.push({ video: image.slice(0, image.length - extname(image).length), frames: [join(dir, image)] });
  return out;
}

/** A stable split for a name: the same video name lands in the same split on every machine. */
export function hashSplit(name: string, fractions: Record<Split, number>): Split {
  const total = fractions.train + fractions.val + fractions.test;
  const u = (hashString(name) / 4294967296) * total;
  if (u < fractions.train) return 'train';
  if (u < fractions.train + fractions.val) return 'val';
  return 'test';
}

export class FolderDataset extends IndexedDataset {
  readonly name = 'folder';
  readonly config: FolderConfig;

  constructor(config: Partial<FolderConfig> & { root: string }) {
    const parsed = FolderConfigSchema.parse(config);
    const root = resolve(parsed.root);
    super({ ...parsed, root });
    this.config = { ...parsed, root };
  }

  protected async buildIndex(): Promise<VideoRef[]> {
    const { root } = this.config;
    await requireFolder(root, 'dataset root', 'set the dataset config root');
    const layout = this.config.layout === 'auto' ? await detectLayout(root) : this.config.layout;
    return layout === 'ufd' ? this.ufdIndex() : this.df40Index();
  }

  private async df40Index(): Promise<VideoRef[]> {
    const { root, splitDirs, domains, realSources, valFraction } = this.config;
    const refs: VideoRef[] = [];
    const domainSubsets = new Map<string, Map<Split, Set<string>>>();
    const hasVal = (splitDirs.val?.length ?? 0) > 0;
    for (const split of SPLITS) {
      for (const splitDir of splitDirs[split] ?? []) {
        const base = join(root, splitDir);
        const methods = await entries(base);
        if (!methods) {
          this.log.note(`split folder ${base} (${split}) does not exist; check splitDirs in the folder dataset config`);
          continue;
        }
        for (const method of methods.dirs) {
          const methodDir = join(base, method);
          const inner = (await entries(methodDir))?.dirs ?? [];
          const push = (subset: string, label: Label, videos: Array<{ video: string; frames: string[] }>, source: string) => {
            for (const v of videos) {
              const finalSplit = split === 'train' && !hasVal && valFraction > 0 && hashSplit(`${subset}/${v.video}`, { train: 1 - valFraction, val: valFraction, test: 0 }) === 'val' ? 'val' : split;
              if (v.frames.length === 0) this.log.note(`${source}/${v.video}: empty video folder`);
              refs.push({ subset, label, split: finalSplit, video: v.video, frames: v.frames, source, verified: true });
            }
          };
          if (inner.includes('fake') || inner.includes('real')) {
            const subset = canonicalMethod(method);
            for (const [folder, label] of [['fake', 1], ['real', 0]] as const) {
              if (inner.includes(folder)) push(subset, label, await collectVideos(join(methodDir, folder)), join(methodDir, folder));
            }
          } else {
            for (const domain of domains) {
              if (!inner.includes(domain)) continue;
              const subset = canonicalSubset(`${canonicalMethod(method)}_${domain}`);
              push(subset, 1, await collectVideos(join(methodDir, domain)), join(methodDir, domain));
              if (!domainSubsets.has(domain)) domainSubsets.set(domain, new Map());
              const bySplit = domainSubsets.get(domain)!;
              for (const s of hasVal || split !== 'train' ? [split] : (['train', 'val'] as Split[])) {
                if (!bySplit.has(s)) bySplit.set(s, new Set());
                bySplit.get(s)!.add(subset);
              }
            }
          }
        }
      }
    }
    // Domain reals: one copy per known-method subset of the split, so each subset has both classes.
    for (const [domain, bySplit] of domainSubsets) {
      const source = realSources[domain];
      if (!source) {
        this.log.note(`no realSources.${domain} configured: ${domain} subsets have fakes only`);
        continue;
      }
      const dir = join(root, source);
      const videos = await collectVideos(dir);
      if (videos.length === 0) {
        this.log.note(`real source ${dir} (${domain}) is missing or empty; ${domain} subsets have fakes only`);
        continue;
      }
      for (const v of videos) {
        const split = hashSplit(v.video, this.config.realSplit);
        for (const subset of bySplit.get(split) ?? []) {
          refs.push({ subset, label: 0, split, video: v.video, frames: v.frames, source: dir, verified: true });
        }
      }
    }
    return refs;
  }

  private async ufdIndex(): Promise<VideoRef[]> {
    const { root, ufdSplits } = this.config;
    const refs: VideoRef[] = [];
    for (const split of SPLITS) {
      const base = join(root, ufdSplits[split]);
      if (!(await stat(base).catch(() => undefined))?.isDirectory()) continue;
      const walk = async (dir: string, depth: number): Promise<void> => {
        const list = await entries(dir);
        if (!list || depth > 6) return;
        for (const [folder, label] of [['0_real', 0], ['1_fake', 1]] as const) {
          if (!list.dirs.includes(folder)) continue;
          const rel = relative(base, dir).split(sep).join('/');
          const subset = rel === '' ? ufdSplits[split] : rel;
          const images = (await entries(join(dir, folder)))?.images ?? [];
          for (const image of images) {
            refs.push({
              subset,
              label,
              split,
              video: image.slice(0, image.length - extname(image).length),
              frames: [join(dir, folder, image)],
              source: join(dir, folder),
              verified: true,
            });
          }
        }
        for (const sub of list.dirs) if (sub !== '0_real' && sub !== '1_fake') await walk(join(dir, sub), depth + 1);
      };
      await walk(base, 0);
    }
    return refs;
  }
}

/** `ufd` when a `0_real`/`1_fake` folder sits within three levels of the root, else `df40`. */
async function detectLayout(root: string): Promise<'df40' | 'ufd'> {
  const search = async (dir: string, depth: number): Promise<boolean> => {
    const list = await entries(dir);
    if (!list) return false;
    if (list.dirs.includes('0_real') || list.dirs.includes('1_fake')) return true;
    if (depth >= 3) return false;
    for (const sub of list.dirs) if (await search(join(dir, sub), depth + 1)) return true;
    return false;
  };
  return (await search(root, 0)) ? 'ufd' : 'df40';
}
