/**
 * numpy's summation order. `np.sum` and the reductions inside `np.trapz`/`average_precision_score` add
 * float64 values pairwise (8 accumulators per block of up to 128 values), not left to right; matching the
 * order keeps our values bit-for-bit equal to scikit-learn's in the common case instead of ~1e-16 apart.
 */
const BLOCK = 128;

function pairwise(values: ArrayLike<number>, start: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += values[start + i]!;
    return res;
  }
  if (n <= BLOCK) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = values[start + j]!;
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j]! += values[start + i + j]!;
    }
    let res = r[0]! + r[1]! + (r[2]! + r[3]!) + (r[4]! + r[5]! + (r[6]! + r[7]!));
    for (; i < n; i++) res += values[start + i]!;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwise(values, start, n2) + pairwise(values, start + n2, n - n2);
}

/** `np.sum` of a 1-D float64 array. */
export function numpySum(values: ArrayLike<number>): number {
  return pairwise(values, 0, values.length);
}

/** `np.mean` of a 1-D float64 array. */
export function numpyMean(values: ArrayLike<number>): number {
  return numpySum(values) / values.length;
}
