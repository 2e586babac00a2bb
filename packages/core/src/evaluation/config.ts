/** Config schemas of the built-in evaluators (`binary`, `df40`). */
import { z } from 'zod';

/** DF40's unknown-type test subsets (protocol P3 without deepfacelab), in the order of its tables. */
export const DF40_TEST_SUBSETS = [
  'heygen',
  'MidJourney',
  'whichfaceisreal',
  'stargan',
  'starganv2',
  'styleclip',
  'e4e',
  'CollabDiff',
] as const;

const shared = {
  /** Bootstrap replicates for the 95% AUC interval (0 = off). Seeded, so a report is reproducible. */
  bootstrap: z.number().int().min(0).max(100_000).default(1000),
  bootstrapSeed: z.number().int().min(0).default(0),
  /** Report the best-threshold accuracy, always under the name `oracle_acc` (it is chosen on the evaluated data). */
  oracle: z.boolean().default(true),
  /** Video-level metrics (mean frame score per video id) when the scored set has video ids. */
  videoLevel: z.boolean().default(true),
  /** Also write PNG copies of the ROC plots (for trackers that show images, not HTML). */
  png: z.boolean().default(true),
};

export const BinaryEvaluatorConfigSchema = z
  .object({
    ...shared,
    /** Report order of subsets; subsets not listed follow in alphabetical order. */
    subsets: z.array(z.string().min(1)).optional(),
  })
  .strict();
export type BinaryEvaluatorConfig = z.output<typeof BinaryEvaluatorConfigSchema>;

export const Df40EvaluatorConfigSchema = z
  .object({
    ...shared,
    /** The test subsets of the protocol, in report order. */
    subsets: z.array(z.string().min(1)).min(1).default([...DF40_TEST_SUBSETS]),
    /** Other spellings of subset names (DF40's JSON keys differ from its folders). Matching also ignores case and punctuation. */
    aliases: z.record(z.string(), z.string()).default({ whichisreal: 'whichfaceisreal' }),
    /** A label for the protocol, recorded on the run. */
    protocolName: z.string().default('DF40 P3: unknown forgery types and domains'),
  })
  .strict();
export type Df40EvaluatorConfig = z.output<typeof Df40EvaluatorConfigSchema>;
