/**
 * Video-level scores as DF40/DeepfakeBench form them (`get_video_metrics`): the frames of one video are
 * averaged (a running float sum divided by the frame count, in frame order) and the video takes its
 * frames' label. Unlike DeepfakeBench, the grouping key is the caller's video id, which must be unique per
 * (subset, label, video): grouping by the bare parent-folder name merges a real and a fake video of the
 * same name (EFS fakes live under the real video's id), which DeepfakeBench silently labels real.
 */
import { checkBinaryInputs, describePositions, MetricInputError, type BinaryInputs } from './errors.js';

export interface VideoScores {
  /** Video ids in order of first appearance. */
  ids: string[];
  scores: Float64Array;
  labels: Uint8Array;
  /** Frames per video. */
  frames: Uint32Array;
}

export function videoScores(inputs: BinaryInputs & { videoIds: ArrayLike<string> }, where = 'scores'): VideoScores {
  checkBinaryInputs(inputs, where);
  const { labels, scores, videoIds } = inputs;
  if (videoIds.length !== labels.length) {
    throw new MetricInputError(`${where}: ${videoIds.length} video ids but ${labels.length} scores; give one video id per frame`);
  }
  const index = new Map<string, number>();
  const ids: string[] = [];
  const sums: number[] = [];
  const counts: number[] = [];
  const videoLabels: number[] = [];
  const mixed = new Map<string, number[]>();
  const emptyIds: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    const id = videoIds[i]!;
    if (typeof id !== 'string' || id.length === 0) {
      emptyIds.push(i);
      continue;
    }
    let v = index.get(id);
    if (v === undefined) {
      v = ids.length;
      index.set(id, v);
      ids.push(id);
      sums.push(0);
      counts.push(0);
      videoLabels.push(labels[i]!);
    } else if (videoLabels[v] !== labels[i]) {
      const at = mixed.get(id) ?? [];
      at.push(i);
      mixed.set(id, at);
    }
    sums[v]! += scores[i]!;
    counts[v]!++;
  }
  if (emptyIds.length > 0) {
    throw new MetricInputError(`${where}: ${emptyIds.length} frames have an empty video id, at index ${describePositions(emptyIds)}`);
  }
  if (mixed.size > 0) {
    const [first, at] = [...mixed.entries()][0]!;
    throw new MetricInputError(
      `${where}: ${mixed.size} video ids have both real and fake frames (e.g. '${first}' at index ${describePositions(at)}); ` +
        `a video id must be unique per (subset, label, video): prefix it with the subset and label`,
    );
  }
  return {
    ids,
    scores: Float64Array.from(sums, (s, v) => s / counts[v]!),
    labels: Uint8Array.from(videoLabels),
    frames: Uint32Array.from(counts),
  };
}
