/**
 * Threshold metrics. The fixed-threshold accuracy is the honest one (UFD/DF40/LaRE: fake iff `p > 0.5`);
 * the best-threshold accuracy picks its threshold on the very data it scores, so it is an oracle and is
 * only ever reported under a name that says so.
 */
import { sortedByClass } from './curve.js';
import { checkBinaryInputs, checkBothClasses, type BinaryInputs } from './errors.js';

/** The decision threshold of every fixed-threshold metric here: fake iff `p > 0.5`. */
export const DECISION_THRESHOLD = 0.5;

export interface ThresholdAccuracy {
  /** Fraction of all samples classified correctly. */
  acc: number;
  /** Fraction of real samples (label 0) with `p <= threshold`; NaN when there are none. */
  realAcc: number;
  /** Fraction of fake samples (label 1) with `p > threshold`; NaN when there are none. */
  fakeAcc: number;
  nReal: number;
  nFake: number;
}

export function accuracyAt(inputs: BinaryInputs, threshold = DECISION_THRESHOLD, where = 'scores'): ThresholdAccuracy {
  checkBinaryInputs(inputs, where);
  const { labels, scores } = inputs;
  let realCorrect = 0;
  let fakeCorrect = 0;
  let nFake = 0;
  for (let i = 0; i < labels.length; i++) {
    const fake = scores[i]! > threshold;
    if (labels[i] === 1) {
      nFake++;
      if (fake) fakeCorrect++;
    } else if (!fake) {
      realCorrect++;
    }
  }
  const nReal = labels.length - nFake;
  return {
    acc: (realCorrect + fakeCorrect) / labels.length,
    realAcc: nReal > 0 ? realCorrect / nReal : NaN,
    fakeAcc: nFake > 0 ? fakeCorrect / nFake : NaN,
    nReal,
    nFake,
  };
}

/**
 * Macro-F1 of argmax predictions (CLIPping): class 1 iff P(fake) > P(real) = 1 − p, ties → class 0 (argmax
 * returns the first maximum). Per-class F1 = 2·TP / (true + predicted), scikit-learn's form; a class with
 * no true and no predicted samples scores 0 (`zero_division=0`).
 */
export function macroF1(inputs: BinaryInputs, where = 'scores'): number {
  checkBinaryInputs(inputs, where);
  const { labels, scores } = inputs;
  const tp = [0, 0];
  const trueCount = [0, 0];
  const predCount = [0, 0];
  for (let i = 0; i < labels.length; i++) {
    const p = scores[i]!;
    const pred = p > 1 - p ? 1 : 0;
    const label = labels[i] as 0 | 1;
    trueCount[label]!++;
    predCount[pred]!++;
    if (pred === label) tp[label]!++;
  }
  const f = [0, 1].map((c) => {
    const denom = trueCount[c]! + predCount[c]!;
    return denom === 0 ? 0 : (2 * tp[c]!) / denom;
  });
  return (f[0]! + f[1]!) / 2;
}

export interface OracleAccuracy {
  /** Best accuracy of `p > t` over thresholds t taken from the evaluated scores: a test-set oracle. */
  acc: number;
  /** The smallest threshold reaching it. */
  threshold: number;
}

/**
 * Best-threshold accuracy as LaRE/CLaRE compute it: t ranges over the evaluated scores, predictions are
 * `p > t`. O(n log n): one sort, then a sweep over distinct scores.
 */
export function oracleAccuracy(inputs: BinaryInputs, where = 'scores'): OracleAccuracy {
  checkBothClasses(inputs, where, 'the best-threshold (oracle) accuracy');
  const { real, fake } = sortedByClass(inputs);
  const n = real.length + fake.length;
  // Ascending sweep over distinct scores t: correct(t) = (reals with p <= t) + (fakes with p > t).
  let i = 0;
  let j = 0;
  let bestCorrect = -1;
  let bestThreshold = NaN;
  while (i < fake.length || j < real.length) {
    const t = i >= fake.length ? real[j]! : j >= real.length ? fake[i]! : Math.min(fake[i]!, real[j]!);
    while (i < fake.length && fake[i] === t) i++;
    while (j < real.length && real[j] === t) j++;
    const correct = j + (fake.length - i);
    if (correct > bestCorrect) {
      bestCorrect = correct;
      bestThreshold = t;
    }
  }
  return { acc: bestCorrect / n, threshold: bestThreshold };
}
