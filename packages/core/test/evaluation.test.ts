/**
 * The `binary` and `df40` evaluators, resolved the way the runner resolves them (plugin registry →
 * validated config → experiment container), on synthetic scored sets with subsets and videos.
 */
import { describe, expect, it } from 'vitest';
import {
  COMPONENT_KINDS,
  computeMetricSet,
  configToken,
  corePlugin,
  DF40_TEST_SUBSETS,
  ExperimentContainer,
  PluginRegistry,
  Rng,
  parseSubsetGroups,
  type Evaluator,
  type ScoredSet,
} from '@dfd/core';

function evaluatorFor(name: string, config: Record<string, unknown> = {}): Evaluator {
  const registry = new PluginRegistry([corePlugin]);
  const definition = registry.get('evaluator', name);
  const container = ExperimentContainer.create();
  container.registerValue(configToken('evaluator'), registry.resolveConfig('evaluator', name, config));
  container.registerClass(COMPONENT_KINDS.evaluator, definition.useClass as never);
  return container.resolve<Evaluator>(COMPONENT_KINDS.evaluator);
}

/** Videos of `frames` frames per subset; fakes score higher by `separation` (in logit units). */
function scoredSet(subsets: Array<{ name: string; real: number; fake: number; separation: number }>, frames = 4, seed = 1): ScoredSet {
  const rng = new Rng(seed);
  const out = { scores: [] as number[], labels: [] as number[], subsets: [] as string[], videoIds: [] as string[] };
  for (const s of subsets) {
    for (const [label, count] of [[0, s.real], [1, s.fake]] as const) {
      for (let v = 0; v < count; v++) {
        const videoShift = rng.normal() * 0.5;
        for (let f = 0; f < frames; f++) {
          const logit = (label - 0.5) * s.separation + videoShift + rng.normal();
          out.scores.push(1 / (1 + Math.exp(-logit)));
          out.labels.push(label);
          out.subsets.push(s.name);
          out.videoIds.push(`${s.name}/${label ? 'fake' : 'real'}/v${v}`);
        }
      }
    }
  }
  return out;
}

function pick(scored: ScoredSet, subset: string) {
  const idx = scored.subsets!.map((s, i) => (s === subset ? i : -1)).filter((i) => i >= 0);
  return {
    scores: idx.map((i) => scored.scores[i]!),
    labels: idx.map((i) => scored.labels[i]!),
    videoIds: idx.map((i) => scored.videoIds![i]!),
  };
}

describe('binary evaluator', () => {
  const scored = scoredSet([
    { name: 'b-set', real: 20, fake: 25, separation: 2 },
    { name: 'a-set', real: 30, fake: 10, separation: 0.5 },
  ]);

  it('resolves through the registry with defaults, and rejects unknown config keys', () => {
    expect(evaluatorFor('binary').name).toBe('binary');
    expect(() => evaluatorFor('binary', { bootstrapp: 10 })).toThrow(/unknown key 'bootstrapp'.*known keys: .*bootstrap/s);
  });

  it('reports overall, per-subset (alphabetical) and mean metrics equal to the metric functions', () => {
    const report = evaluatorFor('binary', { bootstrap: 0 }).evaluate(scored, { split: 'test', selection: 'val' });
    expect(Object.keys(report.subsets)).toEqual(['a-set', 'b-set', 'mean']);
    for (const name of ['a-set', 'b-set']) {
      expect(report.subsets[name]).toEqual(computeMetricSet(pick(scored, name)).values);
    }
    const a = report.subsets['a-set']!;
    const b = report.subsets['b-set']!;
    expect(report.subsets.mean!.auc).toBe((a.auc! + b.auc!) / 2);
    expect(report.subsets.mean!.n).toBe(a.n! + b.n!);
    expect(report.overall.n).toBe(scored.scores.length);
    expect(report.overall.video_n).toBe(85);
    // the subsets differ as generated: the well-separated one has the higher AUC
    expect(b.auc!).toBeGreaterThan(a.auc!);
    expect(report.protocol).toMatchObject({ evaluator: 'binary', split: 'test', selection: 'val', videos: 85, frames_per_video_min: 4, frames_per_video_max: 4 });
  });

  it('adds a seeded bootstrap interval on test but not on validation', () => {
    const evaluator = evaluatorFor('binary', { bootstrap: 200, bootstrapSeed: 5 });
    const test = evaluator.evaluate(scored, { split: 'test' });
    expect(test.overall.auc_ci_low).toBeLessThan(test.overall.auc!);
    expect(test.overall.auc_ci_high).toBeGreaterThan(test.overall.auc!);
    expect(evaluator.evaluate(scored, { split: 'test' })).toEqual(test);
    const val = evaluator.evaluate(scored, { split: 'val' });
    expect(val.overall.auc_ci_low).toBeUndefined();
    expect(val.overall.auc).toBe(test.overall.auc);
  });

  it('gives a one-class validation subset its accuracies only and names it in the protocol', () => {
    const withReal = scoredSet([
      { name: 'FF-real', real: 10, fake: 0, separation: 1 },
      { name: 'simswap', real: 0, fake: 10, separation: 1 },
    ]);
    const report = evaluatorFor('binary', { bootstrap: 0 }).evaluate(withReal, { split: 'val' });
    expect(report.subsets['FF-real']).toMatchObject({ n: 40, n_real: 40, n_fake: 0, video_n: 10 });
    expect(report.subsets['FF-real']!.auc).toBeUndefined();
    expect(report.subsets['FF-real']!.real_acc).toBe(report.subsets['FF-real']!.acc);
    expect(report.protocol.single_class_subsets).toBe('FF-real (real only: 40); simswap (fake only: 40)');
    expect(report.subsets.mean!.auc).toBeUndefined(); // no mean over a metric some subsets lack
    expect(report.overall.auc).toBeGreaterThan(0.5);
  });

  it('without subsets or videos reports overall only', () => {
    const report = evaluatorFor('binary', { bootstrap: 0 }).evaluate({ scores: [0.1, 0.8, 0.3, 0.9], labels: [0, 1, 0, 1] }, {});
    expect(report.subsets).toEqual({});
    expect(report.overall).toMatchObject({ auc: 1, acc: 1, n: 4 });
    expect(report.overall.video_auc).toBeUndefined();
  });

  it('NaN scores fail with the count and position', () => {
    const bad = { scores: [0.1, NaN, 0.3, 0.9], labels: [0, 1, 0, 1] };
    expect(() => evaluatorFor('binary').evaluate(bad, {})).toThrow(/1 of 4 scores are not finite numbers \(NaN\) at index 1/);
  });
});

describe('df40 evaluator', () => {
  const all = DF40_TEST_SUBSETS.map((name, k) => ({ name, real: 8, fake: 8, separation: 0.5 + k * 0.4 }));

  it('defaults to the 8 DF40 test subsets and reports them in protocol order with their mean', () => {
    const evaluator = evaluatorFor('df40', { bootstrap: 0 });
    expect(evaluator.subsets).toEqual(['heygen', 'MidJourney', 'whichfaceisreal', 'stargan', 'starganv2', 'styleclip', 'e4e', 'CollabDiff']);
    // reversed input order, DF40's `whichisreal` spelling and lower-cased MidJourney: all mapped back
    const input = scoredSet(
      [...all].reverse().map((s) => ({ ...s, name: s.name === 'whichfaceisreal' ? 'whichisreal' : s.name === 'MidJourney' ? 'midjourney' : s.name })),
    );
    const report = evaluator.evaluate(input, { split: 'test', selection: 'val', select_metric: 'auc', frames_per_video: 4, sampling: 'even' });
    expect(Object.keys(report.subsets)).toEqual([...DF40_TEST_SUBSETS, 'mean']);
    for (const name of DF40_TEST_SUBSETS) {
      expect(report.subsets[name]).toHaveProperty('video_auc');
      expect(report.subsets[name]!.video_n).toBe(16);
    }
    const mean = DF40_TEST_SUBSETS.reduce((sum, s) => sum + report.subsets[s]!.auc!, 0) / 8;
    expect(report.subsets.mean!.auc).toBeCloseTo(mean, 15);
    expect(report.protocol).toMatchObject({
      evaluator: 'df40',
      protocol: 'DF40 P3: unknown forgery types and domains',
      test_subsets: DF40_TEST_SUBSETS.join(','),
      selection: 'val',
      frames_per_video: 4,
      sampling: 'even',
      frames_per_video_min: 4,
    });
  });

  it('reports the mean of each subset group the dataset declares (protocol fact subset_groups), any spelling', () => {
    const evaluator = evaluatorFor('df40', { bootstrap: 0 });
    const input = scoredSet(all);
    const groups = 'seen-family=heygen,midjourney,whichisreal,stargan,e4e; unseen-family=starganv2,styleclip,CollabDiff';
    const report = evaluator.evaluate(input, { split: 'test', selection: 'val', subset_groups: groups });
    const mean = (names: string[]) => names.reduce((sum, s) => sum + report.subsets[s]!.auc!, 0) / names.length;
    expect(Object.keys(report.groups!)).toEqual(['seen-family', 'unseen-family']);
    expect(report.groups!['seen-family']!.auc).toBeCloseTo(mean(['heygen', 'MidJourney', 'whichfaceisreal', 'stargan', 'e4e']), 15);
    expect(report.groups!['unseen-family']!.auc).toBeCloseTo(mean(['starganv2', 'styleclip', 'CollabDiff']), 15);
    expect(report.groups!['unseen-family']!.n).toBe(report.subsets.starganv2!.n! + report.subsets.styleclip!.n! + report.subsets.CollabDiff!.n!);
    // A group with a member that was not evaluated has no mean (it would describe another protocol).
    const partial = evaluatorFor('binary', { bootstrap: 0 }).evaluate(scoredSet(all.slice(0, 2)), { subset_groups: `a=${all[0]!.name}; b=${all[0]!.name},${all[5]!.name}` });
    expect(Object.keys(partial.groups ?? {})).toEqual(['a']);
    expect(parseSubsetGroups('x=a, b;;y=c; bad')).toEqual({ x: ['a', 'b'], y: ['c'] });
  });

  it('on test, a missing configured subset is an error naming it and the fix', () => {
    const input = scoredSet(all.filter((s) => s.name !== 'e4e'));
    expect(() => evaluatorFor('df40').evaluate(input, { split: 'test' })).toThrow(
      /1 configured test subset\(s\) have no scores: e4e .*set the evaluator's config.subsets/,
    );
  });

  it('on test, subsets outside the protocol are left out of every number and listed', () => {
    const evaluator = evaluatorFor('df40', { bootstrap: 0 });
    const protocolOnly = scoredSet(all);
    const input = scoredSet([...all, { name: 'simswap_ff', real: 2, fake: 3, separation: 1 }]);
    const report = evaluator.evaluate(input, { split: 'test', selection: 'val' });
    expect(report.protocol.excluded_subsets).toBe('simswap_ff (20 frames)');
    expect(Object.keys(report.subsets)).toEqual([...DF40_TEST_SUBSETS, 'mean']);
    const clean = evaluator.evaluate(protocolOnly, { split: 'test', selection: 'val' });
    expect(report.overall).toEqual(clean.overall);
    expect(report.subsets).toEqual(clean.subsets);
  });

  it('on test, a one-class subset is an error with its counts', () => {
    const input = scoredSet(all.map((s) => (s.name === 'heygen' ? { ...s, real: 0 } : s)));
    expect(() => evaluatorFor('df40').evaluate(input, { split: 'test' })).toThrow(/test subset heygen has 0 real and 32 fake frames/);
  });

  it('is strict when the split is not given but the data holds protocol subsets', () => {
    const input = scoredSet(all.slice(0, 3));
    expect(() => evaluatorFor('df40').evaluate(input, {})).toThrow(/have no scores: stargan, starganv2, styleclip, e4e, CollabDiff/);
  });

  it('evaluates a configured subset list, and validation data of other subsets leniently', () => {
    const evaluator = evaluatorFor('df40', { subsets: ['stargan', 'e4e'], bootstrap: 0 });
    const test = evaluator.evaluate(scoredSet(all.filter((s) => ['stargan', 'e4e'].includes(s.name))), { split: 'test' });
    expect(Object.keys(test.subsets)).toEqual(['stargan', 'e4e', 'mean']);
    const val = evaluator.evaluate(scoredSet([{ name: 'pixart', real: 5, fake: 5, separation: 1 }]), { split: 'val', selection: 'val' });
    expect(Object.keys(val.subsets)).toEqual(['pixart', 'mean']);
    expect(val.overall.auc).toBeGreaterThan(0);
  });
});
