/**
 * Frame ordering and per-video sampling. DeepfakeBench sorts frames by the integer file stem; DF40's
 * loader then takes the FIRST N frames (its "evenly distributed" comment does not match the code, see
 * shared/reference/methods.md §7.5). We default to evenly spaced frames and offer `first-n` by name.
 */
import { basename, extname } from 'node:path';

export type FrameSampling = 'even' | 'first-n';

/** Integer stem of a frame file (`012.png` → 12), or undefined for non-numeric names. */
export function frameNumber(path: string): number | undefined {
  const stem = basename(path, extname(path));
  return /^\d+$/.test(stem) ? Number.parseInt(stem, 10) : undefined;
}

/** Sorts by integer stem (numeric names first, in numeric order), then by name; returns a new array. */
export function sortFrames(paths: readonly string[]): string[] {
  return [...paths].sort((a, b) => {
    const na = frameNumber(a);
    const nb = frameNumber(b);
    if (na !== undefined && nb !== undefined && na !== nb) return na - nb;
    if (na !== undefined && nb === undefined) return -1;
    if (na === undefined && nb !== undefined) return 1;
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

/**
 * Indices of the frames to keep from `count` sorted frames. `even`: numpy's
 * `linspace(0, count-1, n, dtype=int)` (what DeepfakeBench's preprocessing used to pick its 32 frames:
 * i·step truncated, last index exactly count-1), which never repeats an index when n ≤ count;
 * `first-n`: 0..n-1. `n` ≤ 0 or n ≥ count keeps every frame.
 */
export function sampleFrameIndices(count: number, n: number, mode: FrameSampling = 'even'): number[] {
  if (count <= 0) return [];
  if (n <= 0 || n >= count) return Array.from({ length: count }, (_, i) => i);
  if (mode === 'first-n') return Array.from({ length: n }, (_, i) => i);
  if (n === 1) return [0];
  const step = (count - 1) / (n - 1);
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? count - 1 : Math.trunc(i * step)));
}
