/**
 * The clip-prompt detector with enhancers and a fuser, through core's real assembly, trainer, runner and
 * checkpoints, with the small toy modules of test/support/toy-fusion.ts: enhancer names, boxes and patch
 * tokens reaching the parts that ask, wrong compositions failing at assembly with the widths named, one
 * training step moving every trainable variable and no frozen one, flat memory, and module state tensors
 * surviving checkpoints (resume bit-identical, selection, loadRun).
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { stopWhen, afterFirstEpoch } from '../../../test/support/stop-when.js';
import { filter } from 'rxjs';
import {
  assemble,
  buildRegistry,
  ClipPromptDetector,
  loadRun,
  readSafetensors,
  resolveExperiment,
  resolveSlots,
  resumeRun,
  runExperiment,
  RunEventBus,
  Rng,
  tf,
  Trainer,
  type Tracker,
} from '@dfd/core';
import { toyExperiment, toyPlugin } from './support/toy-plugin.js';
import { ToyConcatFuser, ToyMapEnhancer, toyFusionPlugin } from './support/toy-fusion.js';

const tempRuns = () => mkdtempSync(join(tmpdir(), 'dfd-fusion-'));

function fusionExperiment(runsDir: string, overrides: Record<string, unknown> = {}) {
  return toyExperiment(runsDir, {
    name: 'fusion',
    pluginObjects: [toyPlugin, toyFusionPlugin],
    dataset: { use: 'toy', config: { root: join(runsDir, 'toy-data'), dim: 6, perSplit: { train: 32, val: 16, test: 16 } } },
    loader: { use: 'toy-fusion-features' },
    encoder: { use: 'toy-encoder' },
    promptLearner: { use: 'toy-prompt' },
    enhancers: [{ use: 'toy-map', config: { boxes: true, patchTokens: true } }],
    fuser: { use: 'toy-concat', config: { out: 10 } },
    detector: { use: 'clip-prompt', config: { imageInput: 'features' } },
    trainer: { epochs: 2, batchSize: 8, evalBatchSize: 16, optimizer: { type: 'adam' as const, lr: 0.01 } },
    ...overrides,
  });
}

function assembleFusion(runsDir: string, overrides: Record<string, unknown> = {}) {
  const experiment = resolveExperiment(fusionExperiment(runsDir, overrides));
  const registry = buildRegistry([toyPlugin, toyFusionPlugin]);
  return { experiment, assembled: assemble(experiment, registry, resolveSlots(experiment, registry), { seed: experiment.seed }) };
}

function snapshot(variables: Record<string, tf.Variable>): Record<string, number[]> {
  return Object.fromEntries(Object.entries(variables).map(([name, v]) => [name, Array.from(v.dataSync())]));
}

describe('clip-prompt with enhancers and a fuser', () => {
  test('enhancers are named by their component names (repeats told apart), and the fuser is built with those names', async () => {
    await tf.setBackend('cpu');
    const { assembled } = assembleFusion(tempRuns(), {
      enhancers: [{ use: 'toy-map' }, { use: 'toy-map', config: { outputDim: 3 } }, { use: 'toy-map', config: { name: 'own-name', outputDim: 2 } }],
    });
    try {
      const detector = assembled.detector as ClipPromptDetector;
      expect(detector.enhancerNames).toEqual(['toy-map', 'toy-map#2', 'own-name']);
      const fuser = assembled.container.resolve<ToyConcatFuser>(Symbol.for('dfd.Fuser'));
      expect(fuser.dims).toMatchObject({ image: 6, enhanced: [{ name: 'toy-map', dim: 4 }, { name: 'toy-map#2', dim: 3 }, { name: 'own-name', dim: 2 }], visionWidth: 8, gridSize: 4, imageSize: 16 });
      expect(detector.needs).toEqual({ pixels: false, features: true, extras: ['lare'], boxes: false, patchTokens: false });
    } finally {
      assembled.dispose();
    }
  });

  test('boxes and cached patch tokens reach the enhancer and the fuser that ask for them (features mode)', async () => {
    const runsDir = tempRuns();
    const { experiment, assembled } = assembleFusion(runsDir, { fuser: { use: 'toy-concat', config: { out: 10, boxes: true, patchTokens: true } } });
    try {
      const detector = assembled.detector;
      expect(detector.needs).toEqual({ pixels: false, features: true, extras: ['lare'], boxes: true, patchTokens: true });
      const samples = await assembled.dataset.samples({ split: 'train' });
      const source = assembled.loader.create(samples, { split: 'train', batchSize: 8, shuffle: false, augment: false, seed: experiment.seed, needs: detector.needs });
      for await (const batch of source.batches(0)) {
        tf.dispose(detector.forward(batch, false));
        batch.dispose();
      }
      const enhancer = assembled.container.resolve<ToyMapEnhancer[]>(Symbol.for('dfd.FeatureEnhancers'))[0]!;
      const fuser = assembled.container.resolve<ToyConcatFuser>(Symbol.for('dfd.Fuser'));
      expect(enhancer.seen).toMatchObject({ calls: 4, boxes: 32, patchTokens: 32 });
      // A fuser that needs boxes is not probed at assembly, so these are exactly the 32 training images.
      expect(fuser.seen).toMatchObject({ names: ['toy-map'], boxes: 32, patchTokens: 32 });
    } finally {
      assembled.dispose();
    }
  });

  test('a conditional prompt learner trains on the fused feature when the fuser keeps the embedding width', async () => {
    const result = await runExperiment(fusionExperiment(tempRuns(), { promptLearner: { use: 'toy-prompt', config: { conditional: true } }, fuser: { use: 'toy-concat' }, trainer: { epochs: 1, batchSize: 8 } }));
    expect(result.status).toBe('finished');
  });

  test('pixels mode asks the image tower for patch tokens only when a part wants them', async () => {
    const { assembled } = assembleFusion(tempRuns(), { detector: { use: 'clip-prompt' }, enhancers: [{ use: 'toy-map', config: { patchTokens: true } }] });
    try {
      expect(assembled.detector.needs).toEqual({ pixels: true, features: false, extras: ['lare'], boxes: false, patchTokens: false });
    } finally {
      assembled.dispose();
    }
  });
});

describe('wrong compositions fail at assembly, naming the parts and their widths', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a fuser without enhancers', { enhancers: [] }, /fuser toy-concat is configured but no enhancer.*image embedding \(6 wide\)/],
    ['enhancers without a fuser', { fuser: undefined }, /enhancers are configured \(toy-map: 4 wide\) but no fuser.*\(6 wide\)/],
    [
      'a fuser whose build rejects the widths',
      { fuser: { use: 'toy-checked-sum' }, enhancers: [{ use: 'toy-map' }, { use: 'toy-map', config: { outputDim: 6 } }] },
      /fuser toy-checked-sum cannot fuse image embedding: 6 wide, toy-map: 4 wide, toy-map#2: 6 wide: sum needs every input 6 wide.*toy-map is 4/,
    ],
    [
      'a naive fuser that accepts any widths and would fail inside tfjs',
      { fuser: { use: 'toy-naive-sum' } },
      /fuser toy-naive-sum cannot fuse image embedding: 6 wide, toy-map: 4 wide: a probe call with these widths failed/,
    ],
    ['an enhancer with a non-integer width', { enhancers: [{ use: 'toy-map', config: { outputDim: 0 } }] }, /enhancer toy-map declares outputDim 0/],
    [
      'a conditional prompt learner whose meta-net cannot take the fused width',
      { promptLearner: { use: 'toy-prompt', config: { conditional: true } } },
      /prompt learner is conditional.*fuser toy-concat makes 10 wide \(the image embedding is 6\)/,
    ],
  ];
  test.each(cases)('%s', async (_what, overrides, message) => {
    const runsDir = tempRuns();
    const steps: number[] = [];
    const error = await runExperiment(fusionExperiment(runsDir, overrides), {
      trackers: [{ name: 'steps', attach: (events) => void events.subscribe((e) => e.type === 'step' && steps.push(e.step)), close: async () => {} }],
    }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).name).toBe('CompositionError');
    expect(steps).toEqual([]);
  });

  test('an enhancer whose output is not its declared width is named at the first step', async () => {
    const error = await runExperiment(fusionExperiment(tempRuns(), { enhancers: [{ use: 'toy-map', config: { lieAboutWidth: true } }] })).catch((e: Error) => e);
    expect((error as Error).message).toMatch(/enhancer toy-map returned \[8, 8\] but declares outputDim 4/);
  });
});

describe('training a fused detector', () => {
  test('one step changes every trainable variable (prompt, enhancer, fuser, text projection) and no frozen weight', async () => {
    const runsDir = tempRuns();
    const before = new Set(Object.keys(tf.engine().registeredVariables));
    const { experiment, assembled } = assembleFusion(runsDir);
    try {
      const detector = assembled.detector;
      const trainable = detector.trainableVariables();
      expect(Object.keys(trainable).sort()).toEqual([
        'enhancer0.bias',
        'enhancer0.box_weight',
        'enhancer0.patch_weight',
        'enhancer0.weight',
        'fuser.weight',
        'prompt_learner.ctx',
        'text_projection',
      ]);
      const state = detector.stateTensors!();
      expect(Object.keys(state)).toEqual(['enhancer0.running_mean']);
      const ours = Object.values(tf.engine().registeredVariables).filter((v) => !before.has(v.name));
      const trainableNames = new Set(Object.values(trainable).map((v) => v.name));
      const stateNames = new Set(Object.values(state).map((v) => v.name));
      const frozen = Object.fromEntries(ours.filter((v) => !trainableNames.has(v.name) && !stateNames.has(v.name)).map((v) => [v.name, v]));
      expect(Object.keys(frozen).length).toBe(4); // the toy encoder's four frozen matrices
      const [t0, f0, s0] = [snapshot(trainable), snapshot(frozen), snapshot(state)];
      const samples = await assembled.dataset.samples({ split: 'train' });
      const train = assembled.loader.create(samples, { split: 'train', batchSize: 8, shuffle: true, augment: true, seed: 1, needs: detector.needs });
      mkdirSync(join(runsDir, 'ckpt'));
      const trainer = new Trainer({
        detector,
        train,
        config: { ...experiment.trainer, maxSteps: 1 },
        rng: new Rng(1),
        bus: new RunEventBus(),
        checkpointsDir: join(runsDir, 'ckpt'),
      });
      await trainer.fit();
      trainer.dispose();
      const [t1, f1, s1] = [snapshot(trainable), snapshot(frozen), snapshot(state)];
      const unchanged = Object.keys(t0).filter((name) => t1[name]!.every((v, i) => v === t0[name]![i]));
      expect(unchanged).toEqual([]);
      for (const name of Object.keys(f0)) expect(f1[name], `${name} is frozen`).toEqual(f0[name]);
      expect(s1['enhancer0.running_mean']).not.toEqual(s0['enhancer0.running_mean']);
    } finally {
      assembled.dispose();
    }
  });

  test.each([
    ['features (cached embeddings and patch tokens)', 'features'],
    ['pixels (image tower every step)', 'pixels'],
  ])('tf.memory().numTensors is flat per step with imageInput %s', async (_what, imageInput) => {
    const counts: number[] = [];
    const probe: Tracker = {
      name: 'memory-probe',
      attach(events) {
        events.pipe(filter((e) => e.type === 'step')).subscribe(() => counts.push(tf.memory().numTensors));
      },
      async close() {},
    };
    const result = await runExperiment(
      fusionExperiment(tempRuns(), {
        detector: { use: 'clip-prompt', config: { imageInput } },
        fuser: { use: 'toy-concat', config: { out: 10, boxes: true, patchTokens: true } },
        trainer: { epochs: 5, batchSize: 8, evalEveryEpochs: 2, optimizer: { type: 'adam', lr: 0.01 } },
      }),
      { trackers: [probe] },
    );
    expect(result.status).toBe('finished');
    expect(counts).toHaveLength(20);
    expect(new Set(counts.slice(1)).size).toBe(1);
  });
});

describe('module state tensors in checkpoints', () => {
  async function stored(path: string, prefix: string): Promise<Record<string, number[]>> {
    const { tensors } = await readSafetensors(path);
    return Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k, Array.from(t.data as Float32Array)]));
  }

  test('a fusion run killed after epoch 1 and resumed ends with the same weights and state as an uninterrupted run', async () => {
    const runsDir = tempRuns();
    const trainer = { epochs: 3, batchSize: 8, evalBatchSize: 16, optimizer: { type: 'adamw' as const, lr: 0.02, weightDecay: 0.01 }, schedule: { type: 'cosine' as const, warmupEpochs: 1 } };
    const straight = await runExperiment(fusionExperiment(runsDir, { name: 'straight', trainer }));
    const { signal, tracker: killer } = stopWhen(afterFirstEpoch);
    const killed = await runExperiment(fusionExperiment(runsDir, { name: 'killed', trainer }), { signal, trackers: [killer] });
    expect(killed).toMatchObject({ status: 'killed', steps: 4 });
    const killedState = await stored(join(killed.runDir, 'checkpoints/last.safetensors'), 'state/');
    expect(Object.keys(killedState)).toEqual(['state/enhancer0.running_mean']);
    expect(killedState['state/enhancer0.running_mean']!.some((v) => v !== 0)).toBe(true);

    const resumed = await resumeRun(killed.runDir, { plugins: [toyPlugin, toyFusionPlugin] });
    expect(resumed).toMatchObject({ status: 'finished', steps: 12 });
    for (const prefix of ['model/', 'state/']) {
      const a = await stored(join(straight.runDir, 'checkpoints/last.safetensors'), prefix);
      const b = await stored(join(resumed.runDir, 'checkpoints/last.safetensors'), prefix);
      expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
      for (const key of Object.keys(a)) expect(b[key], key).toEqual(a[key]); // exact, not close
    }
    expect(resumed.test).toEqual(straight.test);
  });

  test('the selected checkpoint carries the state, and loadRun restores it', async () => {
    const runsDir = tempRuns();
    const result = await runExperiment(fusionExperiment(runsDir));
    expect(result.selected?.by).toBe('val');
    const best = await stored(join(result.runDir, 'checkpoints/best.safetensors'), 'state/');
    expect(best['state/enhancer0.running_mean']!.some((v) => v !== 0)).toBe(true);
    const loaded = await loadRun(result.runDir, { plugins: [toyPlugin, toyFusionPlugin] });
    try {
      const restored = snapshot(loaded.assembled.detector.stateTensors!());
      expect(restored['enhancer0.running_mean']).toEqual(best['state/enhancer0.running_mean']);
    } finally {
      loaded.dispose();
    }
  });
});
