/**
 * ROC curve and ROC AUC exactly as scikit-learn computes them (`roc_curve`, `auc`, `roc_auc_score`),
 * including `drop_intermediate`, which removes collinear interior points. DeepfakeBench's EER is read off
 * the dropped curve, so the dropping has to match for the EER to match.
 */
import { binaryClfCurve } from './curve.js';
import { checkBothClasses, MetricInputError, type BinaryInputs } from './errors.js';
import { numpySum } from './sum.js';

export interface RocCurve {
  fpr: Float64Array;
  tpr: Float64Array;
  /** Descending; the first is `Infinity` (the point (0, 0)), as in scikit-learn >= 1.3. */
  thresholds: Float64Array;
}

export interface RocOptions {
  /** Drop suboptimal collinear points (scikit-learn's default: true). */
  dropIntermediate?: boolean;
  /** Names the data in error messages. */
  where?: string;
}

export function rocCurve(inputs: BinaryInputs, options: RocOptions = {}): RocCurve {
  const where = options.where ?? 'scores';
  checkBothClasses(inputs, where, 'a ROC curve');
  let { fps, tps, thresholds } = binaryClfCurve(inputs, where);
  if ((options.dropIntermediate ?? true) && fps.length > 2) {
    const keep: number[] = [0];
    for (let i = 1; i < fps.length - 1; i++) {
      // np.diff(x, 2)[i-1] = (x[i+1] - x[i]) - (x[i] - x[i-1]); integers, so exact.
      const dfp = fps[i + 1]! - fps[i]! - (fps[i]! - fps[i - 1]!);
      const dtp = tps[i + 1]! - tps[i]! - (tps[i]! - tps[i - 1]!);
      if (dfp !== 0 || dtp !== 0) keep.push(i);
    }
    keep.push(fps.length - 1);
    fps = Float64Array.from(keep, (i) => fps[i]!);
    tps = Float64Array.from(keep, (i) => tps[i]!);
    thresholds = Float64Array.from(keep, (i) => thresholds[i]!);
  }
  const m = fps.length + 1;
  const fpr = new Float64Array(m);
  const tpr = new Float64Array(m);
  const thr = new Float64Array(m);
  thr[0] = Infinity;
  const negatives = fps[fps.length - 1]!;
  const positives = tps[tps.length - 1]!;
  for (let i = 1; i < m; i++) {
    fpr[i] = fps[i - 1]! / negatives;
    tpr[i] = tps[i - 1]! / positives;
    thr[i] = thresholds[i - 1]!;
  }
  return { fpr, tpr, thresholds: thr };
}

/** `sklearn.metrics.auc`: trapezoidal area under (x, y); x must be monotonic. */
export function trapezoidArea(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw new MetricInputError(`auc: x has ${x.length} points but y has ${y.length}`);
  if (x.length < 2) throw new MetricInputError(`auc: at least 2 points are needed, got ${x.length}`);
  let increasing = true;
  let decreasing = true;
  for (let i = 1; i < x.length; i++) {
    if (x[i]! < x[i - 1]!) increasing = false;
    if (x[i]! > x[i - 1]!) decreasing = false;
  }
  if (!increasing && !decreasing) throw new MetricInputError('auc: x is neither increasing nor decreasing');
  const direction = increasing ? 1 : -1;
  // np.trapezoid: (d * (y[1:] + y[:-1]) / 2.0).sum(), summed pairwise as numpy does.
  const terms = new Float64Array(x.length - 1);
  for (let i = 0; i < terms.length; i++) terms[i] = ((x[i + 1]! - x[i]!) * (y[i + 1]! + y[i]!)) / 2.0;
  return direction * numpySum(terms);
}

/** `sklearn.metrics.roc_auc_score` for binary labels. */
export function rocAuc(inputs: BinaryInputs, where = 'scores'): number {
  checkBothClasses(inputs, where, 'AUC');
  const { fpr, tpr } = rocCurve(inputs, { where });
  return trapezoidArea(fpr, tpr);
}
