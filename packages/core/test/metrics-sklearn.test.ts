/**
 * Parity with scikit-learn: every value in tools/fixtures/metrics/sklearn-cases.json was computed by
 * tools/fixtures/metrics/make_fixtures.py (scikit-learn + numpy; regeneration command in the script).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  accuracyAt,
  averagePrecision,
  computeMetricSet,
  equalErrorRate,
  macroF1,
  oracleAccuracy,
  percentileSorted,
  rocAuc,
  rocCurve,
  trapezoidArea,
  videoScores,
} from '@dfd/core';

interface Roc {
  fpr: number[];
  tpr: number[];
  thresholds: Array<number | null>;
}
interface Case {
  name: string;
  labels: number[];
  scores: number[];
  videos?: string[];
  roc: Roc;
  roc_all: Roc;
  auc: number;
  auc_trapz: number;
  ap: number;
  eer: number;
  acc: number;
  real_acc: number;
  fake_acc: number;
  macro_f1: number;
  oracle_acc: number;
  oracle_threshold: number;
  video_auc?: number;
  video_n?: number;
}
interface Fixture {
  sklearn: string;
  numpy: string;
  cases: Case[];
  percentiles: Array<{ values: number[]; q: number[]; expected: number[] }>;
}

const fixturePath = fileURLToPath(new URL('../../../tools/fixtures/metrics/sklearn-cases.json', import.meta.url));
const fixture = JSON.parse(readFileSync(fixturePath, 'utf8')) as Fixture;
const TOL = 1e-12;

/** Largest absolute difference seen per metric, printed once so the parity figure is on record. */
const worst = new Map<string, number>();
function close(metric: string, actual: number, expected: number): void {
  const err = Math.abs(actual - expected);
  worst.set(metric, Math.max(worst.get(metric) ?? 0, err));
  expect(err, `${metric}: ${actual} vs scikit-learn ${expected}`).toBeLessThanOrEqual(TOL);
}

function sameCurve(name: string, actual: { fpr: Float64Array; tpr: Float64Array; thresholds: Float64Array }, expected: Roc): void {
  expect(actual.fpr.length, `${name}: number of ROC points`).toBe(expected.fpr.length);
  expected.fpr.forEach((v, i) => close(`${name}.fpr`, actual.fpr[i]!, v));
  expected.tpr.forEach((v, i) => close(`${name}.tpr`, actual.tpr[i]!, v));
  expected.thresholds.forEach((v, i) => {
    if (v === null) expect(actual.thresholds[i]).toBe(Infinity);
    else close(`${name}.thresholds`, actual.thresholds[i]!, v);
  });
}

describe(`metrics match scikit-learn ${fixture.sklearn} / numpy ${fixture.numpy}`, () => {
  it('has at least 50 cases covering ties, imbalance, separation, constant scores, small n and videos', () => {
    expect(fixture.cases.length).toBeGreaterThanOrEqual(50);
    const names = fixture.cases.map((c) => c.name).join(' ');
    for (const kind of ['ties', 'imbalance', 'perfect', 'constant', 'n2', 'video']) expect(names).toContain(kind);
  });

  for (const c of fixture.cases) {
    it(c.name, () => {
      const inputs = { labels: c.labels, scores: c.scores };
      sameCurve('roc', rocCurve(inputs), c.roc);
      sameCurve('roc_all', rocCurve(inputs, { dropIntermediate: false }), c.roc_all);
      close('auc', rocAuc(inputs), c.auc);
      const roc = rocCurve(inputs);
      close('auc_trapz', trapezoidArea(roc.fpr, roc.tpr), c.auc_trapz);
      close('ap', averagePrecision(inputs), c.ap);
      close('eer', equalErrorRate(inputs), c.eer);
      const acc = accuracyAt(inputs);
      close('acc', acc.acc, c.acc);
      close('real_acc', acc.realAcc, c.real_acc);
      close('fake_acc', acc.fakeAcc, c.fake_acc);
      close('macro_f1', macroF1(inputs), c.macro_f1);
      const oracle = oracleAccuracy(inputs);
      close('oracle_acc', oracle.acc, c.oracle_acc);
      close('oracle_threshold', oracle.threshold, c.oracle_threshold);

      // The combined metric set gives the same numbers as the single functions.
      const set = computeMetricSet({ ...inputs, videoIds: c.videos }).values;
      close('set.auc', set.auc!, c.auc);
      close('set.ap', set.ap!, c.ap);
      close('set.eer', set.eer!, c.eer);
      close('set.acc', set.acc!, c.acc);
      if (c.videos) {
        const videos = videoScores({ ...inputs, videoIds: c.videos });
        expect(videos.ids.length).toBe(c.video_n);
        close('video_auc', rocAuc({ labels: videos.labels, scores: videos.scores }), c.video_auc!);
        close('set.video_auc', set.video_auc!, c.video_auc!);
        expect(set.video_n).toBe(c.video_n);
      }
    });
  }

  it('percentiles match numpy.percentile (linear)', () => {
    for (const p of fixture.percentiles) {
      const sorted = [...p.values].sort((a, b) => a - b);
      p.q.forEach((q, i) => close('percentile', percentileSorted(sorted, q), p.expected[i]!));
    }
  });

  it('reports the largest deviation from scikit-learn', () => {
    const summary = [...worst.entries()].map(([k, v]) => `${k}=${v.toExponential(2)}`).join(' ');
    console.log(`max |ours - sklearn| per metric: ${summary}`);
    expect(worst.size).toBeGreaterThan(10);
  });
});
