/**
 * The standard metric set of one evaluated set (overall, or one subset), and the mean across subsets.
 * Names are stable: they become tracker metric keys and report columns.
 *
 * - `auc`, `ap`, `eer`: threshold-free, scikit-learn/DeepfakeBench definitions;
 * - `acc`, `real_acc`, `fake_acc`: fake iff `p > 0.5`;
 * - `macro_f1`: argmax predictions (CLIPping);
 * - `oracle_acc`, `oracle_threshold`: best threshold chosen on the evaluated data itself — an oracle, never
 *   a result to compare with fixed-threshold accuracies;
 * - `auc_ci_low`, `auc_ci_high`: seeded bootstrap interval (when enabled);
 * - `video_*`: the same on video-level scores (mean frame score per video), when video ids are given;
 * - `n`, `n_real`, `n_fake`, `video_n`: counts.
 */
import type { MetricValues } from '../contracts.js';
import { accuracyAt, macroF1, oracleAccuracy } from './accuracy.js';
import { averagePrecision } from './average-precision.js';
import { bootstrapAucInterval } from './bootstrap.js';
import { eerFromRoc } from './eer.js';
import { checkBothClasses, MetricInputError } from './errors.js';
import { rocCurve, trapezoidArea, type RocCurve } from './roc.js';
import { videoScores } from './video.js';

export interface MetricSetInput {
  labels: ArrayLike<number>;
  scores: ArrayLike<number>;
  /** One per frame; unique per (subset, label, video). Enables the `video_*` metrics. */
  videoIds?: ArrayLike<string>;
}

export interface MetricSetOptions {
  /** Bootstrap replicates for the AUC interval; 0 disables it. Default 0. */
  bootstrap?: number;
  bootstrapSeed?: number;
  /** Include `oracle_acc`/`oracle_threshold` (default true). */
  oracle?: boolean;
  where?: string;
}

export interface MetricSet {
  values: MetricValues;
  /** Frame-level ROC (dropped points), for plots. */
  roc: RocCurve;
  /** Video-level ROC, when video ids were given. */
  videoRoc?: RocCurve;
}

export function computeMetricSet(input: MetricSetInput, options: MetricSetOptions = {}): MetricSet {
  const where = options.where ?? 'scores';
  const inputs = { labels: input.labels, scores: input.scores };
  checkBothClasses(inputs, where, 'AUC/AP/EER');
  const roc = rocCurve(inputs, { where });
  const threshold = accuracyAt(inputs, undefined, where);
  const values: MetricValues = {
    n: input.labels.length,
    n_real: threshold.nReal,
    n_fake: threshold.nFake,
    auc: trapezoidArea(roc.fpr, roc.tpr),
    ap: averagePrecision(inputs, where),
    eer: eerFromRoc(roc),
    acc: threshold.acc,
    real_acc: threshold.realAcc,
    fake_acc: threshold.fakeAcc,
    macro_f1: macroF1(inputs, where),
  };
  if (options.oracle ?? true) {
    const oracle = oracleAccuracy(inputs, where);
    values.oracle_acc = oracle.acc;
    values.oracle_threshold = oracle.threshold;
  }
  if ((options.bootstrap ?? 0) > 0) {
    const ci = bootstrapAucInterval(inputs, { samples: options.bootstrap!, seed: options.bootstrapSeed ?? 0, where });
    values.auc_ci_low = ci.low;
    values.auc_ci_high = ci.high;
  }
  const result: MetricSet = { values, roc };
  if (input.videoIds) {
    const videos = videoScores({ ...inputs, videoIds: input.videoIds }, where);
    const videoInputs = { labels: videos.labels, scores: videos.scores };
    const videoWhere = `${where} (video level)`;
    const videoRoc = rocCurve(videoInputs, { where: videoWhere });
    const videoAcc = accuracyAt(videoInputs, undefined, videoWhere);
    values.video_n = videos.ids.length;
    values.video_auc = trapezoidArea(videoRoc.fpr, videoRoc.tpr);
    values.video_ap = averagePrecision(videoInputs, videoWhere);
    values.video_eer = eerFromRoc(videoRoc);
    values.video_acc = videoAcc.acc;
    result.videoRoc = videoRoc;
  }
  return result;
}

/**
 * Mean of each metric across subsets (unweighted: every subset counts once, as in DF40's tables). Count
 * metrics are summed instead. A metric missing from some subset is left out of the mean, not averaged over
 * fewer subsets.
 */
export function meanAcrossSubsets(subsets: Record<string, MetricValues>): MetricValues {
  const names = Object.keys(subsets);
  if (names.length === 0) throw new MetricInputError('mean across subsets: no subsets');
  const first = subsets[names[0]!]!;
  const mean: MetricValues = {};
  for (const metric of Object.keys(first)) {
    if (NOT_AVERAGED.has(metric)) continue;
    if (!names.every((s) => typeof subsets[s]![metric] === 'number')) continue;
    const values = names.map((s) => subsets[s]![metric]!);
    if (COUNT_METRICS.has(metric)) mean[metric] = values.reduce((a, b) => a + b, 0);
    else mean[metric] = values.reduce((a, b) => a + b, 0) / values.length;
  }
  return mean;
}

const COUNT_METRICS = new Set(['n', 'n_real', 'n_fake', 'video_n']);
/**
 * Per-subset thresholds have no meaningful mean, and the mean of interval bounds is not an interval of the
 * mean (that would need a bootstrap over all subsets at once).
 */
const NOT_AVERAGED = new Set(['oracle_threshold', 'auc_ci_low', 'auc_ci_high']);
