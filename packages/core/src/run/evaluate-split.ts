/**
 * Evaluation inside a run: list a split (and what listing dropped), score it, state its coverage, and for
 * test write the scores, the dropped files and the report into the run directory.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BatchSource, Coverage, Detector, DroppedInput, EvaluationReport, Sample, ScoredSet, SkipCount, Split } from '../contracts.js';
import type { RunEventBus } from '../events.js';
import type { ResolvedExperiment } from '../experiment.js';
import { rngFor } from '../rng.js';
import { computeCoverage, droppedCsv, incompleteSubsets } from '../evaluation/coverage.js';
import type { AssembledExperiment } from './assemble.js';
import { RunInterrupted } from './interrupt.js';
import { continueHint, recordWriteError, writeFileAtomic, type RunDirectory } from './run-directory.js';

/** What evaluating inside a run needs (a subset of the runner's session). */
export interface EvaluationContext {
  experiment: ResolvedExperiment;
  run: RunDirectory;
  bus: RunEventBus;
  assembled?: AssembledExperiment;
  signal?: AbortSignal;
}

/** The subsets of a split: the experiment's choice, else for test the evaluator's protocol subsets (DF40's 8). */
export function subsetsOf(assembled: AssembledExperiment, experiment: ResolvedExperiment, split: Split): string[] | undefined {
  return experiment.data[split].subsets ?? (split === 'test' ? assembled.evaluator.subsets : undefined);
}

export async function listSamples(assembled: AssembledExperiment, experiment: ResolvedExperiment, split: Split): Promise<Sample[]> {
  const selection = experiment.data[split];
  const samples = await assembled.dataset.samples({ split, subsets: subsetsOf(assembled, experiment, split) });
  if (selection.limit !== undefined && samples.length > selection.limit) {
    // A seeded subset, stable across runs, in listing order (so evaluation order stays readable).
    const keep = new Set(rngFor(experiment.seed, `limit/${split}`).shuffle([...samples.keys()]).slice(0, selection.limit));
    return samples.filter((_, index) => keep.has(index));
  }
  return samples;
}

/** Scores every sample of a source with the detector in eval mode; an abort stops it between batches. */
export async function scoreSource(detector: Detector, source: BatchSource, signal?: AbortSignal): Promise<ScoredSet & { paths: string[] }> {
  const scores: number[] = [];
  const labels: number[] = [];
  const subsets: string[] = [];
  const videoIds: string[] = [];
  const paths: string[] = [];
  for await (const batch of source.batches(0)) {
    if (signal?.aborted) {
      batch.dispose();
      throw new RunInterrupted('scoring');
    }
    const probabilities = tf.tidy(() => detector.probabilities(detector.forward(batch, false)));
    const values = await probabilities.data();
    probabilities.dispose();
    batch.samples.forEach((sample, i) => {
      scores.push(values[i]!);
      labels.push(sample.label);
      subsets.push(sample.subset);
      videoIds.push(sample.videoId);
      paths.push(sample.path);
    });
    batch.dispose();
  }
  return { scores, labels, subsets, videoIds, paths };
}

function csvField(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function scoresCsv(scored: ScoredSet & { paths: string[] }): string {
  const lines = ['path,subset,video,label,score'];
  for (let i = 0; i < scored.paths.length; i++) {
    lines.push(
      [csvField(scored.paths[i]!), csvField(scored.subsets![i]!), csvField(scored.videoIds![i]!), String(scored.labels[i]), String(scored.scores[i])].join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** A split's listed samples and what listing already left out of them (for coverage). */
export interface SplitListing {
  split: Split;
  samples: Sample[];
  listingDrops: DroppedInput[];
}

export async function listSplit(assembled: AssembledExperiment, experiment: ResolvedExperiment, split: Split): Promise<SplitListing> {
  const samples = await listSamples(assembled, experiment, split);
  // With a `limit` the listing is a seeded subset: what listing dropped is not part of it.
  const limited = experiment.data[split].limit !== undefined;
  const listingDrops = split === 'train' || limited ? [] : ((await assembled.dataset.dropped?.({ split, subsets: subsetsOf(assembled, experiment, split) })) ?? []);
  return { split, samples, listingDrops };
}

/**
 * The loader's policy skips of evaluation splits as protocol facts of the test report, e.g.
 * `test_skipped_no_extras: 3` and `test_skipped_no_extras_subsets: "heygen:2, stargan:1"`. (The coverage
 * table states the same drops per subset with every other reason; these flat facts travel with the protocol.)
 */
export function skipFacts(counts: SkipCount[], splits: Split[]): Record<string, string | number> {
  const facts: Record<string, string | number> = {};
  const groups = new Map<string, SkipCount[]>();
  for (const count of counts) {
    if (!splits.includes(count.split) || count.count === 0) continue;
    const key = `${count.split}_skipped_${count.reason.replace(/[^a-z0-9]+/gi, '_')}`;
    groups.set(key, [...(groups.get(key) ?? []), count]);
  }
  for (const [key, group] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    facts[key] = group.reduce((sum, c) => sum + c.count, 0);
    facts[`${key}_subsets`] = group
      .sort((a, b) => a.subset.localeCompare(b.subset))
      .map((c) => `${c.subset}:${c.count}`)
      .join(', ');
  }
  return facts;
}

/** Any evaluation that did not score every listed frame fails under `evaluation.requireComplete`. */
export class IncompleteEvaluationError extends Error {
  override name = 'IncompleteEvaluationError';
}

export interface ScoredSplit {
  scored: ScoredSet & { paths: string[] };
  coverage: Coverage;
  dropped: DroppedInput[];
}

/** Scores a split and states its coverage: what was listed, scored and dropped, per subset. */
export async function scoreSplit(assembled: AssembledExperiment, listing: SplitListing, source: BatchSource, signal?: AbortSignal): Promise<ScoredSplit> {
  const scored = await scoreSource(assembled.detector, source, signal);
  const loader = assembled.loader;
  const { coverage, dropped } = computeCoverage({
    listed: listing.samples,
    listingDrops: listing.listingDrops,
    scored: { subsets: scored.subsets!, paths: scored.paths },
    reasonOf: loader.dropReason ? (sample) => loader.dropReason!(sample) : undefined,
  });
  return { scored, coverage, dropped };
}

export function requireComplete(experiment: ResolvedExperiment, split: Split, coverage: Coverage, droppedFile?: string): void {
  if (!experiment.evaluation.requireComplete || coverage.complete) return;
  throw new IncompleteEvaluationError(
    `${split} evaluation is incomplete and evaluation.requireComplete is set: ${incompleteSubsets(coverage).join('; ')}. ` +
      `${droppedFile ? `The dropped files are listed in ${droppedFile}. ` : ''}Restore them (or set evaluation.requireComplete to false to report the coverage instead).`,
  );
}

/** Writes a file of the run record, emits it as an artifact; a failure names the path and what to do. */
async function writeRecordFile(run: RunDirectory, bus: RunEventBus, name: string, text: string): Promise<string> {
  const path = join(run.dir, name);
  try {
    writeFileAtomic(path, text);
  } catch (error) {
    throw recordWriteError(name, path, error, continueHint(run.dir));
  }
  bus.emit({ type: 'artifact', path, name });
  return path;
}

/** Test scores, coverage and report: the raw scores and dropped files are on disk before the evaluator runs. */
export async function evaluateTest(
  session: EvaluationContext,
  listing: SplitListing,
  protocol: Record<string, string | number | boolean>,
  selectedStep: number,
  /** The test source, when the runner made it before training (so a loader refusing the test set fails early). */
  source: BatchSource = evalSourceFor(session, listing),
): Promise<EvaluationReport> {
  const { assembled, run, bus, experiment } = session;
  const { scored, coverage, dropped } = await scoreSplit(assembled!, listing, source, session.signal);
  // If the evaluator rejects the data (a missing subset, a one-class subset), the scores are kept and
  // `dfd metrics test-scores.csv` still works.
  await writeRecordFile(run, bus, 'test-scores.csv', scoresCsv(scored));
  const droppedFile = dropped.length ? await writeRecordFile(run, bus, 'test-dropped.csv', droppedCsv(dropped)) : undefined;
  if (!coverage.complete) {
    bus.emit({ type: 'warning', source: 'coverage', message: `test coverage below 100%: ${incompleteSubsets(coverage).join('; ')} (dropped files: ${droppedFile})` });
  }
  requireComplete(experiment, 'test', coverage, droppedFile);
  const skips = skipFacts(assembled!.loader.skipCounts?.() ?? [], ['val', 'test']);
  if (Object.keys(skips).length) bus.emit({ type: 'warning', source: 'loader', message: `samples left out of evaluation by the loader: ${JSON.stringify(skips)}` });
  const report: EvaluationReport = { ...assembled!.evaluator.evaluate(scored, { split: 'test', ...protocol, selected_step: selectedStep, ...skips }), coverage };
  // Test metrics are recorded at the step of the weights they measure (the selected checkpoint).
  bus.emit({ type: 'eval', split: 'test', step: selectedStep, epoch: experiment.trainer.epochs - 1, report });
  let written: string[];
  try {
    written = (await assembled!.evaluator.writeReport?.(report, scored, run.dir)) ?? [];
  } catch (error) {
    throw recordWriteError('the evaluation report in', run.dir, error, continueHint(run.dir));
  }
  for (const path of written) bus.emit({ type: 'artifact', path, name: path.slice(run.dir.length + 1) });
  return report;
}

export function evalSourceFor(session: EvaluationContext, listing: SplitListing): BatchSource {
  const { assembled, experiment } = session;
  return assembled!.loader.create(listing.samples, {
    split: listing.split,
    batchSize: experiment.trainer.evalBatchSize,
    shuffle: false,
    augment: false,
    seed: experiment.seed,
    needs: assembled!.detector.needs,
  });
}
