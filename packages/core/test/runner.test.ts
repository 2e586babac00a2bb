import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { stopWhen, afterFirstEpoch, atStep } from '../../../test/support/stop-when.js';
import { filter } from 'rxjs';
import { currentBackend, formatSweepSummary, readSafetensors, readEvents, resumeRun, runExperiment, summariseSweep, tf, type EvalEvent, type SweepChild, type Tracker } from '@dfd/core';
import { toyExperiment, toyPlugin } from './support/toy-plugin.js';

const tempRuns = () => mkdtempSync(join(tmpdir(), 'dfd-runs-'));

async function modelWeights(path: string): Promise<Record<string, Float32Array>> {
  const { tensors } = await readSafetensors(path);
  return Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith('model/')).map(([k, t]) => [k, t.data as Float32Array]));
}

describe('experiment runner', () => {
  test('trains, selects on validation, evaluates on test and writes the run directory', async () => {
    const runsDir = tempRuns();
    const result = await runExperiment(toyExperiment(runsDir));
    expect(result.status).toBe('finished');
    expect(result.steps).toBe(3 * 4); // 64 samples / batch 16 × 3 epochs
    expect(result.selected?.by).toBe('val');
    expect(result.test!.overall.auc).toBeGreaterThan(0.8);
    const config = JSON.parse(readFileSync(join(result.runDir, 'config.json'), 'utf8'));
    expect(config.detector).toMatchObject({ use: 'toy-linear', plugin: 'toy-plugin', config: { dim: 8 } });
    expect(config.trainer.optimizer).toEqual({ type: 'sgd', lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: false });
    const events = readEvents(result.runDir);
    expect(events[0]!.type).toBe('run-start');
    expect(events.at(-1)).toMatchObject({ type: 'end', status: 'finished' });
    expect(events.filter((e) => e.type === 'step')).toHaveLength(12);
    expect(events.filter((e) => e.type === 'eval' && e.split === 'val')).toHaveLength(3);
    const testEvals = events.filter((e): e is EvalEvent => e.type === 'eval' && e.split === 'test');
    expect(testEvals).toHaveLength(1);
    // Recorded at the step of the weights it measures: the checkpoint selected on validation.
    expect(testEvals[0]!.step).toBe(result.selected!.step);
    const metrics = readFileSync(join(result.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.filter((m) => m.key === 'train/loss').map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(metrics.some((m) => m.key === 'test/a/auc')).toBe(true);
    const scores = readFileSync(join(result.runDir, 'test-scores.csv'), 'utf8').trim().split('\n');
    expect(scores[0]).toBe('path,subset,video,label,score');
    expect(scores).toHaveLength(33);
  });

  test('two experiments in one process share no state', async () => {
    const runsDir = tempRuns();
    // Concurrently: same seed twice and a different seed. Shared mutable state would make the twins differ.
    const [a, b, c] = await Promise.all([
      runExperiment(toyExperiment(runsDir, { name: 'twin-a' })),
      runExperiment(toyExperiment(runsDir, { name: 'twin-b' })),
      runExperiment(toyExperiment(runsDir, { name: 'other', seed: 11 })),
    ]);
    const [wa, wb, wc] = await Promise.all([a, b, c].map((r) => modelWeights(join(r.runDir, 'checkpoints/last.safetensors'))));
    expect(wa).toEqual(wb);
    expect(wa!['model/weight']).not.toEqual(wc!['model/weight']);
    expect(a.test).toEqual(b.test);
  });

  test('a run killed after epoch 1 and resumed ends with the same weights as an uninterrupted run', async () => {
    const runsDir = tempRuns();
    const optimizer = { type: 'adamw' as const, lr: 0.05, weightDecay: 0.01 };
    const schedule = { type: 'cosine' as const, warmupEpochs: 1 };
    const straight = await runExperiment(toyExperiment(runsDir, { name: 'straight', trainer: { epochs: 3, batchSize: 16, optimizer, schedule, clipGradNorm: 1 } }));

    const { signal, tracker: killer } = stopWhen(afterFirstEpoch);
    const killed = await runExperiment(toyExperiment(runsDir, { name: 'killed', trainer: { epochs: 3, batchSize: 16, optimizer, schedule, clipGradNorm: 1 } }), {
      signal,
      trackers: [killer],
    });
    expect(killed.status).toBe('killed');
    expect(killed.steps).toBe(4);
    // Plugins given as objects (not installed packages) are passed again, as `dfd resume` passes discovered ones.
    const resumed = await resumeRun(killed.runDir, { plugins: [toyPlugin] });
    expect(resumed.status).toBe('finished');
    expect(resumed.steps).toBe(12);
    const w1 = await modelWeights(join(straight.runDir, 'checkpoints/last.safetensors'));
    const w2 = await modelWeights(join(resumed.runDir, 'checkpoints/last.safetensors'));
    expect(Object.keys(w1).sort()).toEqual(['model/bias', 'model/weight']);
    for (const key of Object.keys(w1)) expect(Array.from(w2[key]!)).toEqual(Array.from(w1[key]!)); // exact, not close
    expect(resumed.test).toEqual(straight.test);
  });

  test('a run killed mid-epoch resumes from the exact batch', async () => {
    const runsDir = tempRuns();
    const trainer = { epochs: 2, batchSize: 16, checkpointEverySteps: 1, optimizer: { type: 'sgd' as const, lr: 0.1, momentum: 0.9 } };
    const straight = await runExperiment(toyExperiment(runsDir, { name: 'straight-mid', trainer }));
    const { signal, tracker: killer } = stopWhen(atStep(6));
    const killed = await runExperiment(toyExperiment(runsDir, { name: 'killed-mid', trainer }), { signal, trackers: [killer] });
    expect(killed).toMatchObject({ status: 'killed', steps: 6 });
    const resumed = await resumeRun(killed.runDir, { plugins: [toyPlugin] });
    const w1 = await modelWeights(join(straight.runDir, 'checkpoints/last.safetensors'));
    const w2 = await modelWeights(join(resumed.runDir, 'checkpoints/last.safetensors'));
    for (const key of Object.keys(w1)) expect(Array.from(w2[key]!)).toEqual(Array.from(w1[key]!));
  });

  test('a tracker that throws does not stop training and is reported as a warning', async () => {
    const runsDir = tempRuns();
    const faulty: Tracker = {
      name: 'faulty',
      attach(events) {
        events.pipe(filter((e) => e.type === 'step')).subscribe(() => {
          throw new Error('tracking backend exploded');
        });
      },
      async close() {},
    };
    const brokenAttach: Tracker = {
      name: 'broken-attach',
      attach() {
        throw new Error('cannot connect');
      },
      async close() {},
    };
    const result = await runExperiment(toyExperiment(runsDir, { trainer: { epochs: 1, batchSize: 16 } }), { trackers: [faulty, brokenAttach] });
    expect(result.status).toBe('finished');
    await new Promise((r) => setTimeout(r, 20)); // rxjs reports subscriber errors on a timer
    const warnings = readEvents(result.runDir).filter((e) => e.type === 'warning').map((e) => (e as { message: string }).message);
    expect(warnings.some((m) => m.includes('tracking backend exploded'))).toBe(true);
    expect(warnings.some((m) => m.includes('broken-attach') || m.includes('cannot connect'))).toBe(true);
  });

  test('tf.memory().numTensors stays flat across 100 training steps', async () => {
    const runsDir = tempRuns();
    const counts: number[] = [];
    const probe: Tracker = {
      name: 'memory-probe',
      attach(events) {
        events.pipe(filter((e) => e.type === 'step')).subscribe(() => counts.push(tf.memory().numTensors));
      },
      async close() {},
    };
    // 64 samples / batch 8 = 8 steps per epoch; 13 epochs capped at 100 steps; Adam creates its slots on step 1.
    const result = await runExperiment(
      toyExperiment(runsDir, { trainer: { epochs: 13, maxSteps: 100, batchSize: 8, evalEveryEpochs: 5, optimizer: { type: 'adam', lr: 0.01 } } }),
      { trackers: [probe] },
    );
    expect(result.steps).toBe(100);
    expect(counts).toHaveLength(100);
    expect(new Set(counts.slice(1)).size).toBe(1);
  });

  test('non-finite losses are skipped with warnings, then fail the run with a clear message', async () => {
    const runsDir = tempRuns();
    const definition = toyExperiment(runsDir, { detector: { use: 'toy-linear', config: { nanAfterStep: 2 } }, trainer: { epochs: 3, batchSize: 16 } });
    await expect(runExperiment(definition)).rejects.toThrow(/non-finite for 5 consecutive steps.*Lower the learning rate/);
  });
});

describe('predict with a trained run', () => {
  test('loadRun scores files with the selected weights, identical to the run\'s own test scores', async () => {
    const runsDir = tempRuns();
    const result = await runExperiment(toyExperiment(runsDir));
    const rows = readFileSync(join(result.runDir, 'test-scores.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
    const { loadRun } = await import('@dfd/core');
    const loaded = await loadRun(result.runDir, { plugins: [toyPlugin] });
    expect(loaded.checkpoint).toMatch(/best\.safetensors$/);
    const scores = await loaded.predict(rows.slice(0, 5).map((r) => r[0]!));
    // Same bits on wasm and cpu; on tensorflow within a float32 rounding step, because its exp/softmax
    // round a value differently with its position in the batch (see describeBackend: not batch-invariant).
    const relative = currentBackend()?.name === 'tensorflow' ? 1e-6 : 0;
    rows.slice(0, 5).forEach((r, i) => expect(Math.abs(scores[i]! - Number(r[4]))).toBeLessThanOrEqual(relative * Number(r[4])));
    await expect(loaded.predict([join(runsDir, 'nope.f32')])).rejects.toThrow(/image not found: .*nope\.f32/);
    const corrupt = join(runsDir, 'corrupt.f32');
    (await import('node:fs')).writeFileSync(corrupt, 'xx');
    await expect(loaded.predict([corrupt])).rejects.toThrow(/could not decode .*corrupt\.f32/);
    // One bad image among good ones: the good ones are still scored, the bad one says why.
    const good = rows.slice(0, 2).map((r) => r[0]!);
    const each = await loaded.predictEach([good[0]!, corrupt, join(runsDir, 'nope.f32'), good[1]!]);
    expect(each.map((p) => ({ path: p.path, error: p.error }))).toEqual([
      { path: good[0], error: undefined },
      { path: corrupt, error: 'could not be decoded (corrupt or not an image)' },
      { path: join(runsDir, 'nope.f32'), error: 'file not found' },
      { path: good[1], error: undefined },
    ]);
    // The good ones scored as in the run's own test pass (the same tolerance as above on tensorflow).
    [each[0]!, each[3]!].forEach((p, i) => expect(Math.abs(p.score! - Number(rows[i]![4]))).toBeLessThanOrEqual(relative * Number(rows[i]![4])));
    loaded.dispose();
  });
});

describe('sweeps', () => {
  test('one parent run and one child per variant, children tagged with the parent', async () => {
    const runsDir = tempRuns();
    const { runSweep } = await import('@dfd/core');
    const sweep = await runSweep(toyExperiment(runsDir, { name: 'lr-sweep', trainer: { epochs: 1, batchSize: 16 } }), [
      { name: 'lr0.1', overrides: { trainer: { optimizer: { type: 'sgd', lr: 0.1 } } } },
      { name: 'lr0.01', overrides: { trainer: { optimizer: { type: 'sgd', lr: 0.01 } } } },
    ]);
    expect(sweep.children.map((c) => c.status)).toEqual(['finished', 'finished']);
    const parentEvents = readEvents(sweep.sweepDir);
    // One val point per child, then the chosen child's test report, then the summary file.
    expect(parentEvents.map((e) => e.type)).toEqual(['run-start', 'eval', 'eval', 'eval', 'artifact', 'end']);
    expect(parentEvents.filter((e): e is EvalEvent => e.type === 'eval').map((e) => e.split)).toEqual(['val', 'val', 'test']);
    // The chosen child is the one whose own run selected the best validation AUC; the parent's test
    // metrics are that child's, and no other child's test metric reaches the parent.
    const vals = sweep.children.map((c) => c.selected!.value!);
    const best = vals.indexOf(Math.max(...vals));
    expect(sweep.summary.chosen!.name).toBe(['lr0.1', 'lr0.01'][best]);
    expect(sweep.summary.ranking.map((r) => r.val)).toEqual([...vals].sort((x, y) => y - x));
    const parentTest = parentEvents.find((e): e is EvalEvent => e.type === 'eval' && e.split === 'test')!;
    expect(parentTest.report.overall).toEqual(sweep.children[best]!.test!.overall);
    expect(JSON.parse(readFileSync(join(sweep.sweepDir, 'sweep-summary.json'), 'utf8')).chosen.runId).toBe(sweep.children[best]!.runId);
    for (const child of sweep.children) {
      const start = readEvents(child.runDir)[0]!;
      expect(start).toMatchObject({ type: 'run-start', parentRunId: sweep.sweepId });
      expect((start as unknown as { config: { trainer: { epochs: number } } }).config.trainer.epochs).toBe(1);
    }
    const configs = sweep.children.map((c) => JSON.parse(readFileSync(join(c.runDir, 'config.json'), 'utf8')).trainer.optimizer.lr);
    expect(configs).toEqual([0.1, 0.01]);
  });
});

describe('sweep summary', () => {
  const report = (auc: number) => ({ overall: { auc }, subsets: {}, protocol: {} });
  const child = (name: string, val: number | undefined, test: number, extra: Partial<SweepChild> = {}): SweepChild => ({
    name,
    runId: `id-${name}`,
    runDir: `/runs/${name}`,
    status: 'finished',
    selected: val === undefined ? { by: 'last', step: 3 } : { by: 'val', step: 2, metric: 'auc', value: val },
    test: report(test),
    ...extra,
  });

  test('ranks on validation only, even when test would rank the other way, and reports only the chosen test metrics', () => {
    const summary = summariseSweep(
      [child('a', 0.7, 0.99), child('b', 0.9, 0.6), child('c', 0.8, 0.95), child('d', undefined, 1), child('e', 0.95, 1, { status: 'failed' })],
      { metric: 'auc', mode: 'max' },
    );
    expect(summary.ranking.map((r) => r.name)).toEqual(['b', 'c', 'a']);
    expect(summary.chosen).toMatchObject({ name: 'b', val: 0.9, test: { overall: { auc: 0.6 } } });
    expect(summary.unranked.map((u) => u.name)).toEqual(['d', 'e']);
    expect(summary.unranked[0]!.reason).toMatch(/no validation selection/);
    expect(summary.unranked[1]!.reason).toMatch(/failed/);
    const text = formatSweepSummary(summary);
    expect(text).toMatch(/chosen: b \(val\/auc=0\.9000\)/);
    expect(text).toMatch(/chosen's test: auc=0\.6000/);
    expect(text).not.toMatch(/0\.99/);
  });

  test('lower is better for a min metric (EER); a child selected on another metric is not ranked', () => {
    const eer = (name: string, value: number, metric = 'eer'): SweepChild => ({ name, status: 'finished', runId: name, runDir: name, selected: { by: 'val', step: 1, metric, value } });
    const summary = summariseSweep([eer('x', 0.3), eer('y', 0.1), eer('z', 0.05, 'auc')], { metric: 'eer', mode: 'min' });
    expect(summary.ranking.map((r) => r.name)).toEqual(['y', 'x']);
    expect(summary.unranked).toEqual([{ name: 'z', reason: "selected on 'auc', not 'eer'" }]);
    expect(summariseSweep([], { metric: 'auc', mode: 'max' }).chosen).toBeUndefined();
  });
});

