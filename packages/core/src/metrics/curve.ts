/**
 * scikit-learn's `_binary_clf_curve`: cumulative true/false positives at each distinct score, scores in
 * descending order. Ties form one threshold (the cumulative counts are taken at the last of the tied
 * samples), so the result does not depend on the order of the input.
 */
import { checkBinaryInputs, type BinaryInputs } from './errors.js';

export interface ClfCurve {
  /** False positives at each threshold (cumulative, float64 holding integers). */
  fps: Float64Array;
  /** True positives at each threshold. */
  tps: Float64Array;
  /** The distinct scores, descending. */
  thresholds: Float64Array;
}

/** Indices that sort `scores` descending. */
export function descendingOrder(scores: ArrayLike<number>): Uint32Array {
  const order = new Uint32Array(scores.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  // Typed-array sort with a comparator is stable in V8; stability is not needed for the counts, which
  // are read at the end of each run of tied scores.
  order.sort((a, b) => scores[b]! - scores[a]!);
  return order;
}

export function binaryClfCurve(inputs: BinaryInputs, where = 'scores'): ClfCurve {
  checkBinaryInputs(inputs, where);
  const { labels, scores } = inputs;
  const order = descendingOrder(scores);
  const n = order.length;
  const fps: number[] = [];
  const tps: number[] = [];
  const thresholds: number[] = [];
  let tp = 0;
  for (let i = 0; i < n; i++) {
    const idx = order[i]!;
    tp += labels[idx]!;
    const score = scores[idx]!;
    // sklearn keeps index i when y_score[i] != y_score[i+1] in the sorted order, and the last index.
    if (i === n - 1 || scores[order[i + 1]!] !== score) {
      tps.push(tp);
      fps.push(i + 1 - tp);
      thresholds.push(score);
    }
  }
  return { fps: Float64Array.from(fps), tps: Float64Array.from(tps), thresholds: Float64Array.from(thresholds) };
}
