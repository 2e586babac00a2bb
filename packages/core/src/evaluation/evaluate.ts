/**
 * The evaluation both built-in evaluators share: overall metrics, per-subset metrics, their mean, and the
 * protocol facts that travel with the numbers.
 */
import type { EvaluationReport, MetricValues, ScoredSet } from '../contracts.js';
import { accuracyAt } from '../metrics/accuracy.js';
import { classCounts, MetricInputError } from '../metrics/errors.js';
import { computeMetricSet, meanAcrossSubsets } from '../metrics/summary.js';
import { videoScores } from '../metrics/video.js';
import { overallGroup, subsetGroups, subsetNamer, type ScoredGroup, type SubsetNaming } from './groups.js';

export type ProtocolFacts = Record<string, string | number | boolean>;

export interface EvaluateOptions extends SubsetNaming {
  evaluator: string;
  bootstrap: number;
  bootstrapSeed: number;
  oracle: boolean;
  videoLevel: boolean;
  /**
   * Subsets with a single class: `error` (test protocol: a subset without real or without fake samples is a
   * data bug) or `partial` (validation sets may hold e.g. a real-only subset: only its accuracies are given,
   * and the protocol facts list it).
   */
  singleClassSubsets: 'error' | 'partial';
}

/** The name under which `EvaluationReport.subsets` holds the mean across subsets. */
export const MEAN_KEY = 'mean';

function groupMetrics(group: ScoredGroup, options: EvaluateOptions, where: string): MetricValues {
  return computeMetricSet(group, {
    bootstrap: options.bootstrap,
    bootstrapSeed: options.bootstrapSeed,
    oracle: options.oracle,
    where,
  }).values;
}

/** Accuracy-only metrics of a one-class subset: the threshold-free ones do not exist there. */
function partialMetrics(group: ScoredGroup, where: string): MetricValues {
  const acc = accuracyAt(group, undefined, where);
  const values: MetricValues = { n: group.labels.length, n_real: acc.nReal, n_fake: acc.nFake, acc: acc.acc };
  if (acc.nReal > 0) values.real_acc = acc.realAcc;
  if (acc.nFake > 0) values.fake_acc = acc.fakeAcc;
  if (group.videoIds) values.video_n = videoScores({ ...group, videoIds: group.videoIds }, where).ids.length;
  return values;
}

export function evaluateScored(scored: ScoredSet, facts: ProtocolFacts, options: EvaluateOptions): EvaluationReport {
  // Validation runs only select a checkpoint (by a point metric): the bootstrap interval is reported on
  // test, where it means something, and validation stays cheap.
  if (facts.split === 'val') options = { ...options, bootstrap: 0 };
  const overall = overallGroup(scored, options.videoLevel);
  const subsets: Record<string, MetricValues> = {};
  const oneClass: string[] = [];
  for (const group of subsetGroups(scored, options, options.videoLevel)) {
    if (group.name === MEAN_KEY) {
      throw new MetricInputError(`a subset is named '${MEAN_KEY}', which the report reserves for the mean across subsets; rename it`);
    }
    const where = `subset ${group.name}`;
    const counts = classCounts(group.labels);
    if ((counts.real === 0 || counts.fake === 0) && options.singleClassSubsets === 'partial') {
      subsets[group.name] = partialMetrics(group, where);
      oneClass.push(`${group.name} (${counts.real === 0 ? `fake only: ${counts.fake}` : `real only: ${counts.real}`})`);
      continue;
    }
    subsets[group.name] = groupMetrics(group, options, where);
  }
  const names = Object.keys(subsets);
  if (names.length > 0) subsets[MEAN_KEY] = meanAcrossSubsets(subsets);
  const protocol: ProtocolFacts = {
    evaluator: options.evaluator,
    acc_threshold: 'fake iff p > 0.5',
    auc_definition: 'scikit-learn roc_auc_score; EER = fpr at argmin |fnr - fpr| (DeepfakeBench)',
    subset_mean: 'unweighted mean over subsets (counts summed)',
    ...(options.oracle ? { oracle_acc: 'best threshold chosen on the evaluated data itself (oracle, not comparable to acc)' } : {}),
    ...(options.bootstrap > 0 ? { auc_ci: `95% percentile bootstrap, ${options.bootstrap} replicates, seed ${options.bootstrapSeed}` } : {}),
    ...(overall.videoIds ? videoFacts(overall.videoIds) : {}),
    ...(oneClass.length > 0 ? { single_class_subsets: oneClass.join('; ') } : {}),
    ...facts,
  };
  const groups = groupMeans(subsets, facts.subset_groups, options);
  return { overall: groupMetrics(overall, options, 'overall'), subsets, ...(groups ? { groups } : {}), protocol };
}

/** `name=a,b; other=c` → `{ name: [a, b], other: [c] }` (the flat protocol-fact form of subset groups). */
export function parseSubsetGroups(value: string): Record<string, string[]> {
  const groups: Record<string, string[]> = {};
  for (const part of value.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const members = part.slice(eq + 1).split(',').map((m) => m.trim()).filter(Boolean);
    if (members.length) groups[part.slice(0, eq).trim()] = members;
  }
  return groups;
}

/**
 * The unweighted mean of each declared group over its members' metrics, for groups whose every member was
 * evaluated with both classes (on validation, or with a subset missing, a group mean would mean something else).
 */
function groupMeans(subsets: Record<string, MetricValues>, declared: unknown, naming: SubsetNaming): Record<string, MetricValues> | undefined {
  if (typeof declared !== 'string' || !declared) return undefined;
  const nameOf = subsetNamer(naming);
  const out: Record<string, MetricValues> = {};
  for (const [group, members] of Object.entries(parseSubsetGroups(declared))) {
    const names = members.map(nameOf);
    if (!names.every((name) => subsets[name]?.auc !== undefined)) continue;
    out[group] = meanAcrossSubsets(Object.fromEntries(names.map((name) => [name, subsets[name]!])));
  }
  return Object.keys(out).length ? out : undefined;
}

function videoFacts(videoIds: string[]): ProtocolFacts {
  const frames = new Map<string, number>();
  for (const id of videoIds) frames.set(id, (frames.get(id) ?? 0) + 1);
  let min = Infinity;
  let max = 0;
  for (const count of frames.values()) {
    min = Math.min(min, count);
    max = Math.max(max, count);
  }
  return {
    video_score: 'mean frame score per video id',
    videos: frames.size,
    frames_per_video_min: min,
    frames_per_video_max: max,
  };
}
