/** Bad input to the metrics is a clear error that says how many and where; the bootstrap is seeded. */
import { describe, expect, it } from 'vitest';
import {
  bootstrapAucInterval,
  computeMetricSet,
  meanAcrossSubsets,
  MetricInputError,
  Rng,
  rocAuc,
  videoScores,
} from '@dfd/core';

describe('metric input errors', () => {
  it('mismatched lengths name both counts', () => {
    expect(() => rocAuc({ labels: [0, 1, 1], scores: [0.1, 0.2] })).toThrow(/3 labels but 2 scores/);
  });

  it('NaN scores are counted and located', () => {
    const scores = [0.1, NaN, 0.3, 0.4, NaN, 0.9];
    const call = () => rocAuc({ labels: [0, 1, 0, 1, 0, 1], scores }, 'subset heygen');
    expect(call).toThrow(MetricInputError);
    expect(call).toThrow(/subset heygen: 2 of 6 scores are not finite numbers \(NaN\) at index 1, 4/);
  });

  it('long lists of bad positions are shortened with a count', () => {
    const scores = Array.from({ length: 20 }, (_, i) => (i % 2 ? Infinity : 0.5));
    const labels = scores.map((_, i) => i % 2);
    expect(() => rocAuc({ labels, scores })).toThrow(/10 of 20 scores .* at index 1, 3, 5, 7, 9, \.\.\. \(5 more\)/);
  });

  it('labels other than 0/1 are rejected with their position', () => {
    expect(() => rocAuc({ labels: [0, 1, 2], scores: [0.1, 0.2, 0.3] })).toThrow(/1 of 3 labels are not 0 \(real\) or 1 \(fake\) at index 2 \(e\.g\. 2\)/);
  });

  it('a single class says which and how many', () => {
    expect(() => rocAuc({ labels: [1, 1, 1, 1], scores: [0.1, 0.2, 0.3, 0.4] }, 'subset heygen')).toThrow(
      /subset heygen: all 4 labels are 1 \(fake\); AUC needs both real \(0\) and fake \(1\)/,
    );
    expect(() => computeMetricSet({ labels: [0, 0], scores: [0.1, 0.2] })).toThrow(/all 2 labels are 0 \(real\)/);
  });

  it('empty input is an error, not NaN', () => {
    expect(() => rocAuc({ labels: [], scores: [] })).toThrow(/no samples/);
  });

  it('a video id shared by real and fake frames is an error naming the video', () => {
    expect(() =>
      videoScores({ labels: [0, 1, 1, 0], scores: [0.1, 0.9, 0.8, 0.2], videoIds: ['a', 'a', 'b', 'b'] }),
    ).toThrow(/2 video ids have both real and fake frames \(e\.g\. 'a' at index 1\); a video id must be unique per \(subset, label, video\)/);
  });

  it('video ids must match the frames', () => {
    expect(() => videoScores({ labels: [0, 1], scores: [0.1, 0.9], videoIds: ['a'] })).toThrow(/1 video ids but 2 scores/);
  });
});

describe('video-level scores', () => {
  it('average the frames of each video in order of first appearance', () => {
    const v = videoScores({
      labels: [1, 0, 1, 0, 1],
      scores: [0.9, 0.2, 0.7, 0.4, 0.2],
      videoIds: ['fake/a', 'real/b', 'fake/a', 'real/b', 'fake/c'],
    });
    expect(v.ids).toEqual(['fake/a', 'real/b', 'fake/c']);
    expect([...v.scores]).toEqual([(0.9 + 0.7) / 2, (0.2 + 0.4) / 2, 0.2]);
    expect([...v.labels]).toEqual([1, 0, 1]);
    expect([...v.frames]).toEqual([2, 2, 1]);
  });
});

describe('bootstrap AUC interval', () => {
  const rng = new Rng(7);
  const labels = Array.from({ length: 400 }, (_, i) => i % 2);
  const scores = labels.map((y) => 1 / (1 + Math.exp(-(rng.normal() + (y - 0.5) * 1.5))));

  it('is deterministic for a seed and changes with the seed', () => {
    const a = bootstrapAucInterval({ labels, scores }, { samples: 200, seed: 3 });
    const b = bootstrapAucInterval({ labels, scores }, { samples: 200, seed: 3 });
    const c = bootstrapAucInterval({ labels, scores }, { samples: 200, seed: 4 });
    expect(b).toEqual(a);
    expect(c.low).not.toBe(a.low);
  });

  it('one replicate equals the exact AUC of the same resample', () => {
    // Redraw the resample the bootstrap makes (Rng(seed), n draws of int(n)), then compute its AUC with the
    // scikit-learn-exact path: the O(n) weighted replicate must agree.
    for (const seed of [1, 2, 3, 4, 5]) {
      const draw = new Rng(seed);
      const idx = labels.map(() => draw.int(labels.length));
      const expected = rocAuc({ labels: idx.map((i) => labels[i]!), scores: idx.map((i) => scores[i]!) });
      const one = bootstrapAucInterval({ labels, scores }, { samples: 1, seed });
      expect(one.samples).toBe(1);
      expect(Math.abs(one.low - expected)).toBeLessThan(1e-12);
      expect(Math.abs(one.high - expected)).toBeLessThan(1e-12);
    }
  });

  it('brackets the AUC and narrows with more data', () => {
    const auc = rocAuc({ labels, scores });
    const ci = bootstrapAucInterval({ labels, scores }, { samples: 500, seed: 1 });
    expect(ci.low).toBeLessThan(auc);
    expect(ci.high).toBeGreaterThan(auc);
    expect(ci.skipped).toBe(0);
    const small = bootstrapAucInterval({ labels: labels.slice(0, 40), scores: scores.slice(0, 40) }, { samples: 500, seed: 1 });
    expect(small.high - small.low).toBeGreaterThan(ci.high - ci.low);
  });

  it('counts replicates that drew one class', () => {
    const ci = bootstrapAucInterval({ labels: [0, 1, 1, 1, 1, 1], scores: [0.1, 0.5, 0.6, 0.7, 0.8, 0.9] }, { samples: 300, seed: 2 });
    // P(no real among 6 draws) = (5/6)^6 ≈ 0.33
    expect(ci.skipped).toBeGreaterThan(50);
    expect(ci.samples + ci.skipped).toBe(300);
  });

  it('appears in the metric set when enabled', () => {
    const set = computeMetricSet({ labels, scores }, { bootstrap: 100, bootstrapSeed: 9 }).values;
    expect(set.auc_ci_low).toBeLessThan(set.auc!);
    expect(set.auc_ci_high).toBeGreaterThan(set.auc!);
  });
});

describe('mean across subsets', () => {
  it('averages rates, sums counts, skips thresholds and metrics missing somewhere', () => {
    const mean = meanAcrossSubsets({
      a: { auc: 0.8, n: 10, oracle_threshold: 0.3, video_auc: 0.9, auc_ci_low: 0.7, auc_ci_high: 0.9 },
      b: { auc: 0.6, n: 30, oracle_threshold: 0.7, auc_ci_low: 0.5, auc_ci_high: 0.7 },
    });
    expect(mean).toEqual({ auc: (0.8 + 0.6) / 2, n: 40 });
  });
});
