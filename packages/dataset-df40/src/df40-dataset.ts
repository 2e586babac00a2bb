/**
 * The `df40` dataset: DF40/DeepfakeBench JSON trees. Reads every JSON of `jsonDir`, rewrites the authors'
 * path prefixes onto `root`, maps label keys to 0/1 and dataset keys to canonical subset names, and lists
 * samples with missing frames and empty videos counted (never fatal).
 */
import { basename, extname, resolve } from 'node:path';
import type { Split } from '@dfd/core';
import { Df40JsonConfigSchema, type Df40JsonConfig } from './config.js';
import { IndexedDataset, requireFolder } from './dataset-base.js';
import { listJsonFiles, readDatasetJson, type JsonVideoEntry } from './json-index.js';
import type { VideoRef } from './listing.js';
import { canonicalSubset, nameKey } from './names.js';
import { PathResolver } from './paths.js';

export class Df40JsonDataset extends IndexedDataset {
  readonly name = 'df40';
  readonly config: Df40JsonConfig;

  constructor(config: Partial<Df40JsonConfig> & { root: string }) {
    const parsed = Df40JsonConfigSchema.parse(config);
    super({ ...parsed, root: resolve(parsed.root) });
    this.config = { ...parsed, root: resolve(parsed.root) };
  }

  get jsonDir(): string {
    return resolve(this.config.root, this.config.jsonDir ?? 'dataset_json');
  }

  protected async buildIndex(): Promise<VideoRef[]> {
    const { root } = this.config;
    await requireFolder(root, 'DF40 root', 'set the dataset config root to the folder holding DF40/, DF40_train/ ...');
    const only = this.config.datasets ? new Set(this.config.datasets.map((d) => nameKey(canonicalSubset(d)))) : undefined;
    const realExtra = new Set(this.config.realDatasets.map((d) => nameKey(canonicalSubset(d))));
    const entries: JsonVideoEntry[] = [];
    for (const file of await listJsonFiles(this.jsonDir)) {
      const stem = nameKey(canonicalSubset(basename(file, extname(file))));
      const wanted = !only || only.has(stem) || realExtra.has(stem);
      try {
        const result = await readDatasetJson(file, { labelMap: this.config.labelMap, compression: this.config.compression });
        entries.push(...result.entries);
        for (const note of result.notes) this.log.note(note);
      } catch (error) {
        // A broken JSON of a dataset nobody asked for is a note; of a wanted one, an error.
        if (wanted) throw error;
        this.log.note(`${(error as Error).message} (not in datasets: skipped)`);
      }
    }
    const resolver = await PathResolver.create(root, this.config.prefixes, this.config.autoPrefix, this.dirs);
    const refs: VideoRef[] = [];
    const seen = new Set<string>();
    for (const entry of entries) {
      const subset = canonicalSubset(entry.dataset);
      const key = nameKey(subset);
      const isRealSource = realExtra.has(key);
      if (only && !only.has(key) && !isRealSource) continue;
      if (entry.label === 0 && this.config.reals === 'none' && !isRealSource) continue;
      if (isRealSource && entry.label === 1 && !(only?.has(key) ?? false)) continue;
      const id = `${entry.split}\u0000${subset}\u0000${entry.label}\u0000${entry.video}`;
      if (seen.has(id)) {
        this.log.note(`${entry.file}: video "${entry.video}" of ${subset} (${entry.labelKey}, ${entry.split}) listed twice; kept the first`);
        continue;
      }
      seen.add(id);
      refs.push({
        subset,
        label: entry.label,
        split: entry.split,
        video: entry.video,
        frames: entry.frames.map((f) => resolver.resolve(f)),
        source: entry.file,
      });
    }
    return addRealSources(refs, realExtra);
  }
}

/** Real videos of the `realDatasets` are added to every other subset of the same split, under that subset. */
function addRealSources(refs: VideoRef[], realKeys: Set<string>): VideoRef[] {
  if (realKeys.size === 0) return refs;
  const sources = refs.filter((r) => realKeys.has(nameKey(r.subset)) && r.label === 0);
  const others = refs.filter((r) => !realKeys.has(nameKey(r.subset)));
  const splits = new Map<Split, Set<string>>();
  for (const r of others) {
    if (!splits.has(r.split)) splits.set(r.split, new Set());
    splits.get(r.split)!.add(r.subset);
  }
  const added: VideoRef[] = [];
  for (const real of sources) {
    for (const subset of splits.get(real.split) ?? []) added.push({ ...real, subset });
  }
  return [...others, ...added];
}
