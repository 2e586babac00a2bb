import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import { ConfigError, definePlugin, PluginError, PluginRegistry, resolveExperiment, runExperiment } from '@dfd/core';
import { toyExperiment, toyPlugin } from './support/toy-plugin.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const other = definePlugin({
  name: 'other-plugin',
  register(r) {
    r.add({ kind: 'detector', name: 'toy-linear', config: z.object({}), useFactory: () => ({}) as never });
  },
});

describe('plugin registry', () => {
  test('a duplicate component name fails and lists what is registered', () => {
    const registry = new PluginRegistry([toyPlugin]);
    expect(() => registry.use(other)).toThrow(PluginError);
    expect(() => registry.use(other)).toThrow(/duplicate detector 'toy-linear': registered by toy-plugin and again by other-plugin\. Registered detectors: toy-linear/);
  });

  test('an unknown component fails and lists the registered ones of that kind', () => {
    const registry = new PluginRegistry([toyPlugin]);
    expect(() => registry.get('detector', 'toy-linaer')).toThrow(/unknown detector 'toy-linaer'\. Registered detectors: toy-linear; plugins loaded: toy-plugin/);
  });

  test('unknown config keys are rejected with the known keys listed', () => {
    const registry = new PluginRegistry([toyPlugin]);
    expect(() => registry.resolveConfig('detector', 'toy-linear', { dims: 4 })).toThrow(ConfigError);
    expect(() => registry.resolveConfig('detector', 'toy-linear', { dims: 4 })).toThrow(/unknown key 'dims'; known keys: dim, nanAfterStep/);
    // A union without its own message: each alternative and the value given, not "Invalid input".
    const unionPlugin = definePlugin({
      name: 'union-plugin',
      register(r) {
        r.add({ kind: 'fuser', name: 'u', config: z.object({ size: z.union([z.number(), z.array(z.number())]) }), useFactory: () => ({}) });
      },
    });
    expect(() => new PluginRegistry([unionPlugin]).resolveConfig('fuser', 'u', { size: 'big' })).toThrow(/size: expected a number or an array; got "big"/);
  });

  test('configs are validated and defaulted; presets apply under user values', () => {
    const registry = new PluginRegistry([toyPlugin]);
    expect(registry.resolveConfig('detector', 'toy-linear', {})).toEqual({ dim: 8 });
    expect(registry.resolveConfig('detector', 'toy-linear', { dim: 4 }, 'wide')).toEqual({ dim: 4 });
    expect(() => registry.resolveConfig('detector', 'toy-linear', { dim: 'x' })).toThrow(/dim: .*expected number/i);
    expect(() => registry.resolveConfig('detector', 'toy-linear', {}, 'narrow')).toThrow(/no preset 'narrow'\. Presets: wide/);
  });

  test('a component needs exactly one of useClass/useFactory and a known kind', () => {
    expect(() => definePlugin({ name: 'bad', register: (r) => r.add({ kind: 'detector', name: 'x', config: z.object({}) }) })).toThrow(/exactly one of useClass or useFactory/);
    expect(() =>
      definePlugin({ name: 'bad', register: (r) => r.add({ kind: 'decoder' as never, name: 'x', config: z.object({}), useFactory: () => 1 }) }),
    ).toThrow(/unknown kind 'decoder'; kinds are: encoder, promptLearner, enhancer/);
  });

  test('experiment definitions reject unknown keys and fill defaults', () => {
    expect(() => resolveExperiment({ name: 'x', dataset: { use: 'toy' }, trainer: { epoch: 2 } } as never)).toThrow(/trainer: unknown key\(s\) epoch/);
    const resolved = resolveExperiment({ name: 'x', dataset: { use: 'toy' } });
    expect(resolved.trainer.optimizer).toEqual({ type: 'sgd', lr: 0.002, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: false });
    expect(resolved.detector).toEqual({ use: 'clip-prompt', config: {} });
    expect(resolved.trainer.select).toBe('val');
  });

  test('a run with an unknown component fails before writing anything, naming the registered ones', async () => {
    const runsDir = mkdtempSync(join(tmpdir(), 'dfd-runs-'));
    await expect(runExperiment(toyExperiment(runsDir, { evaluator: { use: 'df41' } }))).rejects.toThrow(/unknown evaluator 'df41'\. Registered evaluators: .*toy-auc/);
  });
});
