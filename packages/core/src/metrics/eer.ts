/**
 * Equal error rate as DeepfakeBench/DF40 compute it (`metrics/utils.py:get_test_metrics`):
 * `fpr[nanargmin(|fnr − fpr|)]` over the points of scikit-learn's ROC curve with its default
 * `drop_intermediate=True`; the first minimum wins. No interpolation between points.
 */
import { checkBothClasses, type BinaryInputs } from './errors.js';
import { rocCurve, type RocCurve } from './roc.js';

export function eerFromRoc(roc: RocCurve): number {
  let best = 0;
  let bestGap = Infinity;
  for (let i = 0; i < roc.fpr.length; i++) {
    const gap = Math.abs(1 - roc.tpr[i]! - roc.fpr[i]!);
    if (gap < bestGap) {
      bestGap = gap;
      best = i;
    }
  }
  return roc.fpr[best]!;
}

export function equalErrorRate(inputs: BinaryInputs, where = 'scores'): number {
  checkBothClasses(inputs, where, 'EER');
  return eerFromRoc(rocCurve(inputs, { where }));
}
