/**
 * Evaluation coverage: which listed frames and videos were scored, and why the others were not. Two runs
 * on different copies of DF40 are comparable only when this says so; a smaller `n` alone hides it.
 *
 * Inputs: the listed samples, what listing already left out (a missing video costs its frames before any
 * sample exists), the scored paths, and the loader's reason for each sample it left out.
 */
import type { Coverage, CoverageCounts, DropReason, DroppedInput, Sample } from '../contracts.js';

export const DROP_REASONS: readonly DropReason[] = ['missing', 'empty', 'corrupt', 'no-extras'];

function emptyCounts(): CoverageCounts {
  return {
    frames: { listed: 0, scored: 0, dropped: { missing: 0, empty: 0, corrupt: 0, 'no-extras': 0 }, replaced: 0 },
    videos: { listed: 0, scored: 0 },
  };
}

export interface CoverageInputs {
  listed: readonly Sample[];
  /** Left out while listing (missing/empty videos, missing frames). */
  listingDrops: readonly DroppedInput[];
  /** Subset and path of each scored frame. */
  scored: { subsets: readonly string[]; paths: readonly string[] };
  /** The loader's reason for a listed sample it did not deliver. */
  reasonOf?(sample: Sample): { reason: DropReason; message: string } | undefined;
}

const key = (subset: string, path: string) => `${subset}\u0000${path}`;

/** The samples that were listed but not scored, with the loader's reason (or `corrupt`: unreadable). */
export function unscoredSamples(inputs: CoverageInputs): DroppedInput[] {
  const remaining = new Map<string, number>();
  inputs.scored.paths.forEach((path, i) => {
    const k = key(inputs.scored.subsets[i]!, path);
    remaining.set(k, (remaining.get(k) ?? 0) + 1);
  });
  const dropped: DroppedInput[] = [];
  for (const sample of inputs.listed) {
    const k = key(sample.subset, sample.path);
    const left = remaining.get(k) ?? 0;
    if (left > 0) {
      remaining.set(k, left - 1);
      continue;
    }
    const why = inputs.reasonOf?.(sample) ?? { reason: 'corrupt' as const, message: 'the loader left it out (unreadable)' };
    dropped.push({ subset: sample.subset, videoId: sample.videoId, path: sample.path, reason: why.reason, frames: 1, message: why.message });
  }
  return dropped;
}

/** Coverage per subset and overall, and every dropped input (listing drops first, then loader drops). */
export function computeCoverage(inputs: CoverageInputs): { coverage: Coverage; dropped: DroppedInput[] } {
  const dropped = [...inputs.listingDrops, ...unscoredSamples(inputs)];
  const subsets: Record<string, CoverageCounts> = {};
  const videos = new Map<string, { listed: Set<string>; scored: Set<string> }>();
  const at = (subset: string) => {
    subsets[subset] ??= emptyCounts();
    if (!videos.has(subset)) videos.set(subset, { listed: new Set(), scored: new Set() });
    return { counts: subsets[subset]!, videos: videos.get(subset)! };
  };
  for (const drop of dropped) {
    const { counts, videos: v } = at(drop.subset);
    counts.frames.dropped[drop.reason] += drop.frames;
    if (drop.frames === 0) counts.frames.replaced += 1;
    v.listed.add(drop.videoId);
  }
  for (const sample of inputs.listed) {
    const { counts, videos: v } = at(sample.subset);
    counts.frames.listed += 1;
    v.listed.add(sample.videoId);
  }
  // Listing drops are frames that never became samples: they add to what was listed.
  for (const drop of inputs.listingDrops) at(drop.subset).counts.frames.listed += drop.frames;
  const videoOf = new Map(inputs.listed.map((s) => [key(s.subset, s.path), s.videoId]));
  inputs.scored.paths.forEach((path, i) => {
    const subset = inputs.scored.subsets[i]!;
    const { counts, videos: v } = at(subset);
    counts.frames.scored += 1;
    const videoId = videoOf.get(key(subset, path));
    if (videoId !== undefined) v.scored.add(videoId);
  });
  for (const [subset, v] of videos) {
    subsets[subset]!.videos = { listed: v.listed.size, scored: v.scored.size };
  }
  const overall = emptyCounts();
  for (const counts of Object.values(subsets)) {
    overall.frames.listed += counts.frames.listed;
    overall.frames.scored += counts.frames.scored;
    overall.frames.replaced += counts.frames.replaced;
    for (const reason of DROP_REASONS) overall.frames.dropped[reason] += counts.frames.dropped[reason];
    overall.videos.listed += counts.videos.listed;
    overall.videos.scored += counts.videos.scored;
  }
  const ordered = Object.fromEntries(Object.keys(subsets).sort((a, b) => a.localeCompare(b)).map((s) => [s, subsets[s]!]));
  // Complete means nothing was left out at all, not even a missing frame the sampling replaced.
  const complete = dropped.length === 0 && overall.frames.scored === overall.frames.listed;
  return { coverage: { complete, overall, subsets: ordered }, dropped };
}

export function framesDropped(counts: CoverageCounts): number {
  return DROP_REASONS.reduce((sum, reason) => sum + counts.frames.dropped[reason], 0);
}

/** `4 missing, 1 corrupt, 2 missing files replaced` (reasons with a count only). */
export function dropSummary(counts: CoverageCounts): string {
  const parts = DROP_REASONS.filter((r) => counts.frames.dropped[r] > 0).map((r) => `${counts.frames.dropped[r]} ${r}`);
  if (counts.frames.replaced > 0) parts.push(`${counts.frames.replaced} missing file${counts.frames.replaced > 1 ? 's' : ''} replaced by other frames`);
  return parts.join(', ');
}

export function isSubsetComplete(counts: CoverageCounts): boolean {
  return counts.frames.scored === counts.frames.listed && framesDropped(counts) === 0 && counts.frames.replaced === 0;
}

/** `60/64 frames (4 missing), 15/16 videos`, or `64/64 frames, 16/16 videos`. */
export function describeCoverage(counts: CoverageCounts): string {
  const reasons = dropSummary(counts);
  return `${counts.frames.scored}/${counts.frames.listed} frames${reasons ? ` (${reasons})` : ''}, ${counts.videos.scored}/${counts.videos.listed} videos`;
}

/** One line per subset below 100%, for a printed table or an error. */
export function incompleteSubsets(coverage: Coverage): string[] {
  return Object.entries(coverage.subsets)
    .filter(([, c]) => !isSubsetComplete(c))
    .map(([name, c]) => `${name}: ${describeCoverage(c)}`);
}

function csvField(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** The dropped inputs as CSV (one row per file or video folder). */
export function droppedCsv(dropped: readonly DroppedInput[]): string {
  const lines = ['path,subset,video,reason,frames,message'];
  for (const d of dropped) {
    lines.push([d.path, d.subset, d.videoId, d.reason, String(d.frames), d.message ?? ''].map(csvField).join(','));
  }
  return `${lines.join('\n')}\n`;
}
