/**
 * `df40`: the DF40 evaluation protocol. Frame- and video-level metrics on each configured test subset (by
 * default the 8 unknown-type subsets of P3 without deepfacelab), their unweighted mean, and the protocol
 * facts that make the numbers comparable: which subsets, which split selected the checkpoint (`selection`,
 * passed by the runner), frames per video (observed min/max, plus what the caller passes), sampling.
 *
 * On test data (`protocol.split === 'test'`, or when the split is not given and the data holds any of the
 * configured subsets) the protocol is strict: every configured subset must be present with both classes —
 * otherwise the mean would silently cover a different protocol. Scores of other subsets are left out of
 * the report (overall included) and listed in the protocol facts as `excluded_subsets`. On validation data
 * (model selection) it evaluates whatever subsets are there.
 */
import { configToken, inject, injectable } from '../di.js';
import type { EvaluationReport, Evaluator, ScoredSet } from '../contracts.js';
import { classCounts, MetricInputError } from '../metrics/errors.js';
import type { Df40EvaluatorConfig } from './config.js';
import { evaluateScored, type ProtocolFacts } from './evaluate.js';
import { subsetGroups, subsetNamer, type SubsetNaming } from './groups.js';
import { writeEvaluationReport } from './report-writer.js';

@injectable()
export class Df40Evaluator implements Evaluator {
  readonly name = 'df40';
  readonly subsets: string[];
  private readonly naming: SubsetNaming;

  constructor(@inject(configToken('evaluator')) private readonly config: Df40EvaluatorConfig) {
    this.subsets = [...config.subsets];
    this.naming = { order: this.subsets, aliases: config.aliases };
  }

  evaluate(scored: ScoredSet, protocol: ProtocolFacts = {}): EvaluationReport {
    const strict = this.isTestProtocol(scored, protocol);
    let excluded: string | undefined;
    if (strict) {
      ({ scored, excluded } = this.protocolSubsets(scored));
      this.checkTestSubsets(scored);
    }
    const facts: ProtocolFacts = {
      protocol: this.config.protocolName,
      test_subsets: this.subsets.join(','),
      primary_metric: 'frame-level AUC',
      ...(excluded ? { excluded_subsets: excluded } : {}),
      ...(strict && protocol.selection === undefined ? { selection: 'not recorded by the caller' } : {}),
      ...protocol,
    };
    return evaluateScored(scored, facts, {
      evaluator: this.name,
      ...this.naming,
      bootstrap: this.config.bootstrap,
      bootstrapSeed: this.config.bootstrapSeed,
      oracle: this.config.oracle,
      videoLevel: this.config.videoLevel,
      singleClassSubsets: strict ? 'error' : 'partial',
    });
  }

  writeReport(report: EvaluationReport, scored: ScoredSet, dir: string): Promise<string[]> {
    // The plots show what the numbers cover: the same exclusion as evaluate() made.
    if (report.protocol.excluded_subsets !== undefined) scored = this.protocolSubsets(scored).scored;
    return writeEvaluationReport(report, scored, dir, {
      evaluator: this.name,
      ...this.naming,
      videoLevel: this.config.videoLevel,
      png: this.config.png,
    });
  }

  private isTestProtocol(scored: ScoredSet, protocol: ProtocolFacts): boolean {
    if (protocol.split !== undefined) return protocol.split === 'test';
    if (!scored.subsets) return false;
    const configured = new Set(this.subsets);
    return subsetGroups(scored, this.naming, false).some((g) => configured.has(g.name));
  }

  /** Only the scores of configured subsets, and a description of what was left out. */
  private protocolSubsets(scored: ScoredSet): { scored: ScoredSet; excluded?: string } {
    if (!scored.subsets) return { scored };
    const configured = new Set(this.subsets);
    const keep: number[] = [];
    const dropped = new Map<string, number>();
    const nameOf = subsetNamer(this.naming);
    scored.subsets.forEach((raw, i) => {
      const name = nameOf(raw);
      if (configured.has(name)) keep.push(i);
      else dropped.set(name, (dropped.get(name) ?? 0) + 1);
    });
    if (dropped.size === 0) return { scored };
    const pick = <T>(values: ArrayLike<T>) => keep.map((i) => values[i]!);
    return {
      scored: {
        scores: pick(scored.scores),
        labels: pick(scored.labels),
        subsets: pick(scored.subsets),
        ...(scored.videoIds ? { videoIds: pick(scored.videoIds) } : {}),
      },
      excluded: [...dropped].map(([name, count]) => `${name} (${count} frames)`).join(', '),
    };
  }

  private checkTestSubsets(scored: ScoredSet): void {
    if (!scored.subsets) {
      throw new MetricInputError(
        `df40 evaluator: the test scores carry no subset names; per-subset metrics need Sample.subset for every score`,
      );
    }
    const groups = subsetGroups(scored, this.naming, false);
    const present = new Set(groups.map((g) => g.name));
    const missing = this.subsets.filter((s) => !present.has(s));
    const fix = `set the evaluator's config.subsets (now: ${this.subsets.join(', ')}) to the subsets you evaluate`;
    if (missing.length > 0) {
      throw new MetricInputError(
        `df40 evaluator: ${missing.length} configured test subset(s) have no scores: ${missing.join(', ')} ` +
          `(present: ${[...present].join(', ') || 'none'}); load them or ${fix}`,
      );
    }
    for (const group of groups) {
      const counts = classCounts(group.labels);
      if (counts.real === 0 || counts.fake === 0) {
        throw new MetricInputError(
          `df40 evaluator: test subset ${group.name} has ${counts.real} real and ${counts.fake} fake frames; ` +
            `its AUC needs both (DF40 pairs every test subset with real frames: check the dataset's real entries for ${group.name})`,
        );
      }
    }
  }
}
