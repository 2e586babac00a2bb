/**
 * Optimizers, gradient clipping and lr schedules against PyTorch's own outputs
 * (tools/fixtures/optim/make_fixtures.py → fixtures/optim.json).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test, beforeAll } from 'vitest';
import { clipGradientsByGlobalNorm, createOptimizer, createSchedule, ensureBackend, tf, type OptimizerConfig, type ScheduleConfig } from '@dfd/core';

interface Case {
  name: string;
  init: Record<string, { shape: number[]; data: number[] }>;
  lrs: number[];
  grads: Array<Record<string, number[]>>;
  after: Array<Record<string, number[]>>;
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/optim.json', import.meta.url), 'utf8')) as {
  optimizers: Case[];
  clip: { maxNorm: number; grads: Record<string, { shape: number[]; data: number[] }>; norm: number; clipped: Record<string, number[]> };
  schedules: Array<{ name: string; epochs: number; baseLr: number; config: ScheduleConfig; lrs: number[]; metrics?: number[] }>;
};

const configs: Record<string, OptimizerConfig> = {
  sgd_momentum_wd: { type: 'sgd', lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: false },
  sgd_dampening_nesterov_off: { type: 'sgd', lr: 0.1, momentum: 0.8, dampening: 0.3, weightDecay: 0, nesterov: false },
  sgd_nesterov: { type: 'sgd', lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 1e-3, nesterov: true },
  sgd_plain: { type: 'sgd', lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false },
  adam_l2: { type: 'adam', lr: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 1e-2 },
  adam: { type: 'adam', lr: 0.1, beta1: 0.8, beta2: 0.99, epsilon: 1e-6 },
  adamw: { type: 'adamw', lr: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.05 },
  adamw_default_decay: { type: 'adamw', lr: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
};

// The backend a run would use (DFD_BACKEND, else auto): CI runs this file on wasm and on tensorflow.
beforeAll(async () => {
  await ensureBackend();
});

function expectClose(actual: ArrayLike<number>, expected: number[], tolerance: number) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(expected[i]!)));
}

describe('optimizers match torch.optim', () => {
  test.each(fixture.optimizers.map((c) => [c.name, c] as const))('%s', (name, c) => {
    const optimizer = createOptimizer(configs[name]!);
    const variables = Object.fromEntries(Object.entries(c.init).map(([k, v]) => [k, tf.variable(tf.tensor(v.data, v.shape))]));
    c.lrs.forEach((lr, step) => {
      const grads = Object.fromEntries(Object.entries(c.grads[step]!).map(([k, data]) => [k, tf.tensor(data, c.init[k]!.shape)]));
      optimizer.apply(variables, grads, lr);
      Object.values(grads).forEach((g) => g.dispose());
      for (const [k, v] of Object.entries(variables)) expectClose(v.dataSync(), c.after[step]![k]!, 2e-6);
    });
    optimizer.dispose();
    Object.values(variables).forEach((v) => v.dispose());
  });

  test('optimizer state round-trips: a restored optimizer continues identically', () => {
    const c = fixture.optimizers.find((o) => o.name === 'adamw')!;
    const run = (restoreAt?: number) => {
      let optimizer = createOptimizer(configs.adamw!);
      const variables = Object.fromEntries(Object.entries(c.init).map(([k, v]) => [k, tf.variable(tf.tensor(v.data, v.shape))]));
      c.lrs.forEach((lr, step) => {
        if (step === restoreAt) {
          const state = optimizer.state();
          const copy = { tensors: Object.fromEntries(Object.entries(state.tensors).map(([k, t]) => [k, t.clone()])), scalars: { ...state.scalars } };
          optimizer.dispose();
          optimizer = createOptimizer(configs.adamw!);
          optimizer.loadState(copy);
        }
        const grads = Object.fromEntries(Object.entries(c.grads[step]!).map(([k, data]) => [k, tf.tensor(data, c.init[k]!.shape)]));
        optimizer.apply(variables, grads, lr);
      });
      return Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, Array.from(v.dataSync())]));
    };
    expect(run(3)).toEqual(run());
  });
});

test('clipGradientsByGlobalNorm matches torch.nn.utils.clip_grad_norm_', () => {
  const grads = Object.fromEntries(Object.entries(fixture.clip.grads).map(([k, v]) => [k, tf.tensor(v.data, v.shape)]));
  const { norm, gradients } = clipGradientsByGlobalNorm(grads, fixture.clip.maxNorm);
  expect(norm).toBeCloseTo(fixture.clip.norm, 5);
  for (const [k, expected] of Object.entries(fixture.clip.clipped)) expectClose(gradients[k]!.dataSync(), expected, 1e-6);
});

describe('lr schedules match PyTorch / Dassl, stepped per epoch', () => {
  test.each(fixture.schedules.map((s) => [s.name, s] as const))('%s', (_name, s) => {
    const schedule = createSchedule(s.config, s.baseLr, s.epochs);
    const lrs: number[] = [];
    for (let epoch = 0; epoch < s.epochs; epoch++) {
      lrs.push(schedule.lrAt(epoch));
      if (s.metrics) schedule.observe(s.metrics[epoch]!);
    }
    expectClose(lrs, s.lrs, 1e-12);
  });

  test("CLIPping's recipe: epoch 1 at the warm-up lr 1e-5, epoch 2 at the base lr 0.002", () => {
    const schedule = createSchedule({ type: 'cosine', warmupEpochs: 1, warmupType: 'constant', warmupLr: 1e-5, minLr: 0 }, 0.002, 2);
    expect([schedule.lrAt(0), schedule.lrAt(1)]).toEqual([1e-5, 0.002]);
  });
});
