/**
 * `sklearn.metrics.average_precision_score` (binary): AP = Σ (R_n − R_{n−1}) · P_n over the distinct
 * thresholds, the step definition without interpolation. Computed in scikit-learn's order of operations
 * (reversed precision/recall arrays, numpy pairwise sum) so the float64 result matches.
 */
import { binaryClfCurve } from './curve.js';
import { checkBothClasses, type BinaryInputs } from './errors.js';
import { numpySum } from './sum.js';

export function averagePrecision(inputs: BinaryInputs, where = 'scores'): number {
  checkBothClasses(inputs, where, 'average precision');
  const { fps, tps } = binaryClfCurve(inputs, where);
  const k = tps.length;
  const positives = tps[k - 1]!;
  // precision_recall_curve returns precision[::-1] + [1] and recall[::-1] + [0].
  const precision = new Float64Array(k + 1);
  const recall = new Float64Array(k + 1);
  for (let j = 0; j < k; j++) {
    const i = k - 1 - j;
    precision[j] = tps[i]! / (tps[i]! + fps[i]!);
    recall[j] = tps[i]! / positives;
  }
  precision[k] = 1;
  recall[k] = 0;
  const terms = new Float64Array(k);
  for (let j = 0; j < k; j++) terms[j] = (recall[j + 1]! - recall[j]!) * precision[j]!;
  return -numpySum(terms);
}
