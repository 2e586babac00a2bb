/**
 * What the JSON and folder datasets share: a lazily built video index, per-video caching of listed samples
 * (so problems are counted once however often a split is listed), subset selection by any alias, train
 * de-duplication and the listing digest.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DataIssues, Dataset, DroppedInput, Sample, SampleQuery, Split } from '@dfd/core';
import { framesFor, type Df40JsonConfig } from './config.js';
import { IssueLog } from './issues.js';
import { samplesFromVideos, type ListingOptions, type VideoRef } from './listing.js';
import { canonicalSubset, nameKey } from './names.js';
import { DirCache } from './paths.js';
import { Limiter } from './pool.js';

export class DatasetError extends Error {
  override name = 'DatasetError';
}

type CommonConfig = Pick<
  Df40JsonConfig,
  'root' | 'subsets' | 'framesPerVideo' | 'sampling' | 'faceBoxes' | 'alignedSize' | 'extras' | 'dedupeTrain' | 'maxMessages' | 'subsetGroups'
>;

/** The groups a config names, else those a synthetic root records in synth.json (unreadable: none). */
export function subsetGroupsOf(config: Pick<CommonConfig, 'root' | 'subsetGroups'>): Record<string, string[]> | undefined {
  if (config.subsetGroups) return config.subsetGroups;
  const manifest = join(config.root, 'synth.json');
  if (!existsSync(manifest)) return undefined;
  try {
    const groups = (JSON.parse(readFileSync(manifest, 'utf8')) as { subsetGroups?: Record<string, string[]> }).subsetGroups;
    return groups && Object.keys(groups).length ? groups : undefined;
  } catch {
    return undefined;
  }
}

/** `seen-family=a,b; unseen-family=c`: the flat protocol-fact form core's evaluation reads (`subset_groups`). */
export function formatSubsetGroups(groups: Record<string, string[]>): string {
  return Object.entries(groups)
    .map(([name, members]) => `${name}=${members.join(',')}`)
    .join('; ');
}

export async function requireFolder(path: string, what: string, fix: string): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isDirectory()) throw new DatasetError(`${what} ${path} does not exist or is not a folder; ${fix}`);
}

export abstract class IndexedDataset implements Dataset {
  abstract readonly name: string;
  protected readonly dirs = new DirCache();
  protected readonly log: IssueLog;
  private index?: Promise<VideoRef[]>;
  private readonly listed = new Map<string, Promise<Sample[]>>();
  /** Bounds the folder listings in flight (DF40 has tens of thousands of videos). */
  private readonly listing = new Limiter(32);

  constructor(protected readonly common: CommonConfig) {
    this.log = new IssueLog(common.maxMessages);
  }

  /** Every video of every split, subsets already canonical. */
  protected abstract buildIndex(): Promise<VideoRef[]>;

  protected videos(): Promise<VideoRef[]> {
    this.index ??= this.buildIndex();
    return this.index;
  }

  async subsets(split: Split): Promise<string[]> {
    const seen = new Set<string>();
    for (const ref of await this.videos()) if (ref.split === split) seen.add(ref.subset);
    return [...seen].sort((a, b) => a.localeCompare(b));
  }

  async samples(query: SampleQuery): Promise<Sample[]> {
    const wanted = query.subsets ?? this.common.subsets[query.split];
    const available = await this.subsets(query.split);
    let chosen = available;
    if (wanted && wanted.length > 0) {
      const byKey = new Map(available.map((s) => [nameKey(s), s]));
      chosen = wanted.map((name) => {
        const found = byKey.get(nameKey(canonicalSubset(name)));
        if (!found) {
          throw new DatasetError(
            `${this.name}: no subset '${name}' in split '${query.split}' under ${this.common.root}. ` +
              `Available: ${available.join(', ') || '(none)'}`,
          );
        }
        return found;
      });
    }
    const selected = new Set(chosen);
    const refs = (await this.videos()).filter((r) => r.split === query.split && selected.has(r.subset));
    const perVideo = await Promise.all(refs.map((ref) => this.listVideo(ref)));
    let samples = perVideo.flat();
    if (query.split === 'train' && this.common.dedupeTrain) {
      const seen = new Set<string>();
      samples = samples.filter((s) => (seen.has(s.path) ? false : (seen.add(s.path), true)));
    }
    return samples;
  }

  private listVideo(ref: VideoRef): Promise<Sample[]> {
    const key = `${ref.split}\u0000${ref.subset}\u0000${ref.label}\u0000${ref.video}`;
    let entry = this.listed.get(key);
    if (!entry) {
      entry = this.listing.run(() => samplesFromVideos([ref], this.listingOptions(ref.split)));
      this.listed.set(key, entry);
    }
    return entry;
  }

  private listingOptions(split: Split): ListingOptions {
    return {
      root: this.common.root,
      framesPerVideo: framesFor(this.common, split),
      sampling: this.common.sampling,
      faceBoxes: this.common.faceBoxes,
      alignedSize: this.common.alignedSize,
      extras: this.common.extras,
      dirs: this.dirs,
      issues: this.log,
    };
  }

  issues(): DataIssues {
    return this.log.snapshot();
  }

  /** What listing these samples left out (missing/empty videos, missing frames), for the run's coverage. */
  async dropped(query: SampleQuery): Promise<DroppedInput[]> {
    const samples = await this.samples(query); // lists (once) the videos the query covers
    const subsets = new Set(samples.map((s) => s.subset));
    const wanted = query.subsets ?? this.common.subsets[query.split];
    const chosen = wanted?.length ? new Set(wanted.map((n) => nameKey(canonicalSubset(n)))) : undefined;
    return this.log.drops
      .filter((d) => d.split === query.split && (subsets.has(d.subset) || chosen?.has(nameKey(d.subset)) || !chosen))
      .map(({ split: _split, ...drop }) => drop);
  }

  /** Recorded with every evaluation: DF40 numbers are only comparable at the same frames and sampling. */
  protocolFacts(): Record<string, string | number | boolean> {
    return {
      dataset: this.name,
      frames_per_video_train: framesFor(this.common, 'train'),
      frames_per_video_eval: framesFor(this.common, 'test'),
      frame_sampling: this.common.sampling,
      ...this.groupFacts(),
    };
  }

  private groupFacts(): Record<string, string> {
    const groups = subsetGroupsOf(this.common);
    if (!groups) return {};
    const synthetic = !this.common.subsetGroups && existsSync(join(this.common.root, 'synth.json'));
    return { subset_groups: formatSubsetGroups(groups), ...(synthetic ? { data: 'synthetic mini-DF40 (dfd synth)' } : {}) };
  }

  async digest(query: SampleQuery): Promise<string> {
    const lines = (await this.samples(query)).map((s) => `${s.id}\t${s.label}`).sort();
    return createHash('sha256').update(lines.join('\n')).digest('hex');
  }
}
