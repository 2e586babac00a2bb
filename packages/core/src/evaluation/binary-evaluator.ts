/**
 * `binary`: the generic evaluator. Overall metrics, per-subset metrics for whatever subsets the scored set
 * carries (plus their mean), video-level metrics when video ids are given. Subsets with a single class (a
 * real-only validation subset, say) get their accuracies only, and the protocol facts name them.
 */
import { configToken, inject, injectable } from '../di.js';
import type { EvaluationReport, Evaluator, ScoredSet } from '../contracts.js';
import type { BinaryEvaluatorConfig } from './config.js';
import { evaluateScored, type ProtocolFacts } from './evaluate.js';
import { writeEvaluationReport } from './report-writer.js';

@injectable()
export class BinaryEvaluator implements Evaluator {
  readonly name = 'binary';
  readonly subsets?: string[];

  constructor(@inject(configToken('evaluator')) private readonly config: BinaryEvaluatorConfig) {
    if (config.subsets) this.subsets = [...config.subsets];
  }

  evaluate(scored: ScoredSet, protocol: ProtocolFacts = {}): EvaluationReport {
    return evaluateScored(scored, protocol, {
      evaluator: this.name,
      order: this.config.subsets,
      bootstrap: this.config.bootstrap,
      bootstrapSeed: this.config.bootstrapSeed,
      oracle: this.config.oracle,
      videoLevel: this.config.videoLevel,
      singleClassSubsets: 'partial',
    });
  }

  writeReport(report: EvaluationReport, scored: ScoredSet, dir: string): Promise<string[]> {
    return writeEvaluationReport(report, scored, dir, {
      evaluator: this.name,
      order: this.config.subsets,
      videoLevel: this.config.videoLevel,
      png: this.config.png,
    });
  }
}
