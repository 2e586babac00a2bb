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

/** Scores of real (label 0) and fake (label 1) samples, each sorted ascending (native numeric sort). */
export function sortedByClass(inputs: BinaryInputs): { real: Float64Array; fake: Float64Array } {
  const { labels, scores } = inputs;
  let nFake = 0;
  for (let i = 0; i < labels.length; i++) nFake += labels[i] === 1 ? 1 : 0;
  const real = new Float64Array(labels.length - nFake);
  const fake = new Float64Array(nFake);
  let r = 0;
  let f = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === 1) fake[f++] = scores[i]!;
    else real[r++] = scores[i]!;
  }
  // Typed-array sort without a comparator is numeric and several times faster than sorting indices with
  // one; NaN cannot occur (inputs are checked) and -0/+0 compare equal below, as in numpy.
  real.sort();
  fake.sort();
  return { real, fake };
}

export function binaryClfCurve(inputs: BinaryInputs, where = 'scores'): ClfCurve {
  checkBinaryInputs(inputs, where);
  const { real, fake } = sortedByClass(inputs);
  const fps: number[] = [];
  const tps: number[] = [];
  const thresholds: number[] = [];
  // Walk both sorted lists from the top: each distinct score consumes all its tied samples of either class,
  // which is sklearn's "last index of each run of equal scores" in the merged descending order.
  let i = fake.length - 1;
  let j = real.length - 1;
  let tp = 0;
  let fp = 0;
  while (i >= 0 || j >= 0) {
    const score = i < 0 ? real[j]! : j < 0 ? fake[i]! : Math.max(fake[i]!, real[j]!);
    while (i >= 0 && fake[i] === score) {
      tp++;
      i--;
    }
    while (j >= 0 && real[j] === score) {
      fp++;
      j--;
    }
    tps.push(tp);
    fps.push(fp);
    thresholds.push(score);
  }
  return { fps: Float64Array.from(fps), tps: Float64Array.from(tps), thresholds: Float64Array.from(thresholds) };
}
