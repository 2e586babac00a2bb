/**
 * Splitting a scored set by subset. Subset names are matched to the configured ones ignoring case and
 * punctuation (`midjourney` = `MidJourney`) and through aliases, and reported under the configured spelling.
 */
import type { ScoredSet } from '../contracts.js';
import { MetricInputError } from '../metrics/errors.js';

export interface ScoredGroup {
  name: string;
  labels: number[];
  scores: number[];
  videoIds?: string[];
}

/** Lower case, letters and digits only. */
export function subsetKey(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

export interface SubsetNaming {
  /** Configured names, in report order. */
  order?: readonly string[];
  /** alias → configured name. */
  aliases?: Record<string, string>;
}

/** A name → report-name function; raw names are resolved once each, not once per sample. */
export function subsetNamer(naming: SubsetNaming): (name: string) => string {
  const byKey = new Map<string, string>();
  for (const configured of naming.order ?? []) byKey.set(subsetKey(configured), configured);
  for (const [alias, target] of Object.entries(naming.aliases ?? {})) {
    byKey.set(subsetKey(alias), byKey.get(subsetKey(target)) ?? target);
  }
  const seen = new Map<string, string>();
  return (name) => {
    let resolved = seen.get(name);
    if (resolved === undefined) {
      resolved = byKey.get(subsetKey(name)) ?? name;
      seen.set(name, resolved);
    }
    return resolved;
  };
}

export function canonicalSubsetName(name: string, naming: SubsetNaming): string {
  return subsetNamer(naming)(name);
}

/** Checks the parallel arrays of a scored set and returns its overall group (video ids made subset-unique). */
export function overallGroup(scored: ScoredSet, videoLevel: boolean): ScoredGroup {
  const n = scored.scores.length;
  if (scored.labels.length !== n) {
    throw new MetricInputError(`scored set: ${scored.labels.length} labels but ${n} scores`);
  }
  if (scored.subsets && scored.subsets.length !== n) {
    throw new MetricInputError(`scored set: ${scored.subsets.length} subset names but ${n} scores`);
  }
  if (scored.videoIds && scored.videoIds.length !== n) {
    throw new MetricInputError(`scored set: ${scored.videoIds.length} video ids but ${n} scores`);
  }
  const group: ScoredGroup = { name: 'overall', labels: Array.from(scored.labels), scores: Array.from(scored.scores) };
  if (videoLevel && scored.videoIds) {
    // Ids are unique per (subset, label, video) by contract; prefixing the subset also protects the overall
    // grouping from datasets whose ids are only unique within a subset.
    group.videoIds = scored.videoIds.map((id, i) => (scored.subsets ? `${scored.subsets[i]}\u0000${id}` : id));
  }
  return group;
}

/** Groups by (canonical) subset, in report order: configured names first, then the rest alphabetically. */
export function subsetGroups(scored: ScoredSet, naming: SubsetNaming, videoLevel: boolean): ScoredGroup[] {
  if (!scored.subsets) return [];
  const groups = new Map<string, ScoredGroup>();
  const nameOf = subsetNamer(naming);
  for (let i = 0; i < scored.subsets.length; i++) {
    const name = nameOf(scored.subsets[i]!);
    let group = groups.get(name);
    if (!group) {
      group = { name, labels: [], scores: [], ...(videoLevel && scored.videoIds ? { videoIds: [] } : {}) };
      groups.set(name, group);
    }
    group.labels.push(scored.labels[i]!);
    group.scores.push(scored.scores[i]!);
    group.videoIds?.push(scored.videoIds![i]!);
  }
  const order = naming.order ?? [];
  const rank = (name: string) => {
    const i = order.indexOf(name);
    return i < 0 ? order.length : i;
  };
  return [...groups.values()].sort((a, b) => rank(a.name) - rank(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
