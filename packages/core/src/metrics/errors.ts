/**
 * Input checks shared by every metric. A metric on bad input must fail loudly with what is wrong, how
 * often and where (index positions), never return a silent NaN or a number computed on half the data.
 */
export class MetricInputError extends Error {
  override name = 'MetricInputError';
}

export interface BinaryInputs {
  labels: ArrayLike<number>;
  scores: ArrayLike<number>;
}

/** Positions listed in a message: the first few, then a count of the rest. */
export function describePositions(positions: number[], limit = 5): string {
  const shown = positions.slice(0, limit).join(', ');
  return positions.length > limit ? `${shown}, ... (${positions.length - limit} more)` : shown;
}

/**
 * Checks lengths, label values and score finiteness. `where` names the data in messages
 * (e.g. `subset heygen`); positions are 0-based indices into the arrays.
 */
export function checkBinaryInputs(inputs: BinaryInputs, where = 'scores'): void {
  const { labels, scores } = inputs;
  if (labels.length !== scores.length) {
    throw new MetricInputError(
      `${where}: ${labels.length} labels but ${scores.length} scores; each sample needs exactly one label and one score`,
    );
  }
  if (labels.length === 0) throw new MetricInputError(`${where}: no samples to evaluate`);
  const badScores: number[] = [];
  const badLabels: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (!Number.isFinite(scores[i])) badScores.push(i);
    const label = labels[i];
    if (label !== 0 && label !== 1) badLabels.push(i);
  }
  if (badScores.length > 0) {
    const kinds = new Set(badScores.map((i) => String(scores[i])));
    throw new MetricInputError(
      `${where}: ${badScores.length} of ${scores.length} scores are not finite numbers (${[...kinds].join(', ')}) ` +
        `at index ${describePositions(badScores)}; a score must be P(fake) in [0, 1] (a NaN usually means the model diverged)`,
    );
  }
  if (badLabels.length > 0) {
    throw new MetricInputError(
      `${where}: ${badLabels.length} of ${labels.length} labels are not 0 (real) or 1 (fake) ` +
        `at index ${describePositions(badLabels)} (e.g. ${String(labels[badLabels[0]!])})`,
    );
  }
}

/** Counts of real (0) and fake (1) labels. */
export function classCounts(labels: ArrayLike<number>): { real: number; fake: number } {
  let fake = 0;
  for (let i = 0; i < labels.length; i++) fake += labels[i] === 1 ? 1 : 0;
  return { real: labels.length - fake, fake };
}

/** Threshold-free metrics (AUC, AP, EER) need both classes; says which one is missing and how many there are. */
export function checkBothClasses(inputs: BinaryInputs, where = 'scores', metric = 'AUC'): void {
  checkBinaryInputs(inputs, where);
  const { real, fake } = classCounts(inputs.labels);
  if (real === 0 || fake === 0) {
    const present = real === 0 ? `all ${fake} labels are 1 (fake)` : `all ${real} labels are 0 (real)`;
    throw new MetricInputError(
      `${where}: ${present}; ${metric} needs both real (0) and fake (1) samples. ` +
        `Evaluate this set together with the other class (DF40 pairs each test subset with real frames).`,
    );
  }
}
