import { beforeAll, afterAll, describe, expect, test } from 'vitest';
import {
  ClipPromptDetector,
  createOptimizer,
  createSchedule,
  ensureBackend,
  PluginRegistry,
  resolveExperiment,
  Rng,
  tf,
  type Batch,
} from '@dfd/core';
import { loadClip, type ClipEncoder } from '@dfd/encoder-clip';
import { clippingRecipe, coopPlugin, coopRecipe, CoOpConfigSchema, CoOpPromptLearner, type CoOpConfigInput } from '@dfd/plugin-coop';
import { maxAbsDiff, TINY_CLIP, values } from './support.js';

let encoder: ClipEncoder;

beforeAll(async () => {
  await ensureBackend();
  encoder = await loadClip(TINY_CLIP);
});
afterAll(() => encoder?.dispose());

function learner(config: CoOpConfigInput, seed = 1): CoOpPromptLearner {
  return new CoOpPromptLearner(CoOpConfigSchema.parse(config), encoder, new Rng(seed));
}

/** Token ids of a prompt laid out by hand: SOS, the given ids, EOT, padding with EOT (as HF's tokenizer). */
function layout(ids: number[]): number[] {
  const sos = encoder.tokenizer.sosId;
  const eot = encoder.tokenizer.eotId;
  const row = [sos, ...ids, eot];
  while (row.length < 77) row.push(encoder.tokenizer.padId);
  return row;
}

function embedRow(ids: number[]): tf.Tensor2D {
  return tf.tidy(() => encoder.embedTokens(tf.tensor2d(ids, [1, ids.length], 'int32')).reshape([ids.length, encoder.info.textWidth]) as tf.Tensor2D);
}

describe('CoOp prompt construction', () => {
  test('word initialisation sets n_ctx to the word count, copies the init embeddings and ignores CSC', () => {
    const coop = learner({ nCtx: 16, ctxInit: 'a_photo_of_a', csc: true });
    expect(coop.template.nCtx).toBe(4);
    expect(coop.classSpecific).toBe(false);
    expect(coop.ctx.shape).toEqual([4, encoder.info.textWidth]);
    expect(coop.template.prompts).toEqual(['a photo of a real.', 'a photo of a fake.']);
    const ids = encoder.tokenizer.encode('a photo of a');
    expect(ids).toHaveLength(4); // the tiny vocabulary keeps the words whole
    const expected = embedRow(ids);
    expect(maxAbsDiff(values(coop.ctx), values(expected))).toBe(0);
    expected.dispose();
    coop.dispose();
  });

  test('random context is N(0, 0.02) in the generic or class-specific shape', () => {
    const generic = learner({ nCtx: 16 });
    expect(generic.ctx.shape).toEqual([16, 48]);
    const csc = learner({ nCtx: 16, csc: true });
    expect(csc.ctx.shape).toEqual([2, 16, 48]);
    const v = values(csc.ctx);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    expect(Math.abs(mean)).toBeLessThan(0.003);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
    expect(generic.template.prompts[0]).toBe(`${Array(16).fill('X').join(' ')} real.`);
    generic.dispose();
    csc.dispose();
  });

  test.each(['end', 'middle', 'front'] as const)('class token at the %s: the sequence CoOp builds, token by token', (position) => {
    // A two-token class name makes middle/front differ from a plain substitution.
    const nCtx = 3;
    const coop = learner({ classNames: ['real', 'fake_face'], nCtx, classTokenPosition: position, csc: true, truncateAtEot: false });
    expect(coop.template.nameLens).toEqual([1, 2]);
    const ctx = values(coop.ctx);
    const got = coop.promptEmbeddings();
    expect(got.shape).toEqual([2, 77, 48]);
    const dot = encoder.tokenizer.encode('.');
    const width = 48;
    coop.template.classNames.forEach((name, c) => {
      const nameIds = encoder.tokenizer.encode(name);
      const placeholder = Array(nCtx).fill(-1);
      const order =
        position === 'end'
          ? [...placeholder, ...nameIds, ...dot]
          : position === 'front'
            ? [...nameIds, ...placeholder, ...dot]
            : [-1, ...nameIds, -1, -1, ...dot];
      const ids = layout(order.map((id) => (id === -1 ? encoder.tokenizer.padId : id)));
      const expected = Float32Array.from(values(embedRow(ids)));
      // Write the class's context vectors into the placeholder slots, in order.
      let k = 0;
      order.forEach((id, i) => {
        if (id !== -1) return;
        expected.set(ctx.subarray((c * nCtx + k) * width, (c * nCtx + k + 1) * width), (1 + i) * width);
        k++;
      });
      const row = values(got.slice([c, 0, 0], [1, 77, width]));
      expect(maxAbsDiff(row, expected)).toBe(0);
      expect(coop.template.eotIndices[c]).toBe(1 + order.length);
    });
    got.dispose();
    coop.dispose();
  });

  test('the text pass stopped at the longest EOT equals the full 77-token pass', () => {
    for (const position of ['end', 'middle', 'front'] as const) {
      const cut = learner({ nCtx: 16, classTokenPosition: position }, 5);
      const full = learner({ nCtx: 16, classTokenPosition: position, truncateAtEot: false }, 5);
      expect(cut.template.length).toBe(Math.max(...cut.template.eotIndices) + 1);
      expect(cut.template.length).toBeLessThan(77);
      expect(full.template.length).toBe(77);
      const a = cut.textFeatures({ encoder, training: false });
      const b = full.textFeatures({ encoder, training: false });
      expect(a.shape).toEqual([2, encoder.info.embedDim]);
      // Masked positions add exp(-inf) = 0 exactly; only summation order may differ, at float32 rounding.
      expect(maxAbsDiff(values(a), values(b))).toBeLessThan(1e-5);
      tf.dispose([a, b]);
      cut.dispose();
      full.dispose();
    }
  });

  test('a prompt longer than the context fails with the fix in the message', () => {
    expect(() => learner({ nCtx: 80 })).toThrow(/needs .* tokens but the text tower has 77: use fewer context tokens/);
  });
});

describe('CoOp gradients and training', () => {
  /** CE of 100·cos(image, text) with fixed image features: the CoOp objective. */
  function lossOf(coop: CoOpPromptLearner, image: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
    const text = coop.textFeatures({ encoder, training: true });
    const t = tf.div(text, tf.norm(text, 'euclidean', -1, true));
    const logits = tf.mul(tf.matMul(image, t, false, true), encoder.info.logitScale);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 2), logits) as tf.Scalar;
  }

  test.each([
    ['end, generic', { classTokenPosition: 'end' as const }],
    ['middle, class-specific', { classTokenPosition: 'middle' as const, csc: true }],
    ['front, generic', { classTokenPosition: 'front' as const }],
  ])('finite differences agree with the autodiff gradient of ctx (%s)', (_name, extra) => {
    const coop = learner({ nCtx: 4, initStd: 0.5, ...extra }, 9);
    const rng = new Rng(4);
    const image = tf.tidy(() => {
      const x = tf.tensor2d(rng.normalArray(6 * 32), [6, 32]);
      return tf.div(x, tf.norm(x, 'euclidean', -1, true)) as tf.Tensor2D;
    });
    const labels = tf.tensor1d([0, 1, 1, 0, 1, 0], 'int32');
    const { grads } = tf.variableGrads(() => lossOf(coop, image, labels), [coop.ctx]);
    const grad = values(grads[coop.ctx.name]!);
    const base = Float32Array.from(values(coop.ctx));
    const eps = 1e-2;
    const coordinates = [...new Set(Array.from({ length: 8 }, () => rng.int(base.length)))];
    const lossAt = (data: Float32Array) => {
      coop.ctx.assign(tf.tensor(data, coop.ctx.shape));
      return tf.tidy(() => lossOf(coop, image, labels).dataSync()[0]!);
    };
    let worst = 0;
    const scale = Math.max(...Array.from(grad, Math.abs));
    for (const i of coordinates) {
      const plus = Float32Array.from(base);
      plus[i]! += eps;
      const minus = Float32Array.from(base);
      minus[i]! -= eps;
      // Losses in float64 arithmetic from float32 forwards: central differences, error O(eps²).
      const numeric = (lossAt(plus) - lossAt(minus)) / (2 * eps);
      worst = Math.max(worst, Math.abs(numeric - grad[i]!) / scale);
    }
    coop.ctx.assign(tf.tensor(base, coop.ctx.shape));
    expect(scale).toBeGreaterThan(1e-3);
    expect(worst).toBeLessThan(2e-2);
    tf.dispose([image, labels, ...Object.values(grads)]);
    coop.dispose();
  });

  test('one optimizer step changes every trainable variable and no frozen weight; memory stays flat', async () => {
    const coop = learner({ nCtx: 4, classTokenPosition: 'front' });
    const detector = new ClipPromptDetector({ imageInput: 'pixels' }, { encoder, promptLearner: coop, enhancers: [], rng: new Rng(1) });
    const frozenBefore = Object.fromEntries(Object.entries(encoder.weights()).map(([k, v]) => [k, Float32Array.from(values(v))]));
    const trainable = detector.trainableVariables();
    expect(Object.keys(trainable)).toEqual(['prompt_learner.ctx']);
    const trainableBefore = Object.fromEntries(Object.entries(trainable).map(([k, v]) => [k, Float32Array.from(values(v))]));
    const rng = new Rng(2);
    const pixels = tf.tensor4d(rng.normalArray(4 * 3 * 32 * 32), [4, 3, 32, 32]);
    const labels = tf.tensor1d([0, 1, 0, 1], 'int32');
    const batch: Batch = { samples: [], pixels, labels, dispose: () => tf.dispose([pixels, labels]) };
    const optimizer = createOptimizer({ type: 'sgd', lr: 0.002, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: false });
    const step = () => {
      const { value, grads } = tf.variableGrads(() => detector.loss(detector.forward(batch, true), labels), Object.values(trainable));
      const named = Object.fromEntries(Object.entries(trainable).map(([k, v]) => [k, grads[v.name]!]));
      optimizer.apply(trainable, named, 0.002);
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = tf.memory().numTensors;
    step();
    step();
    expect(tf.memory().numTensors).toBe(before);
    for (const [name, variable] of Object.entries(trainable)) {
      const now = values(variable);
      expect(maxAbsDiff(now, trainableBefore[name]!), `${name} did not change`).toBeGreaterThan(0);
      // Every element moved, not just some.
      const unchanged = now.filter((v, i) => v === trainableBefore[name]![i]).length;
      expect(unchanged, `${name}: ${unchanged} elements never moved`).toBe(0);
    }
    for (const [name, variable] of Object.entries(encoder.weights())) {
      expect(maxAbsDiff(values(variable), frozenBefore[name]!), `frozen ${name} changed`).toBe(0);
    }
    optimizer.dispose();
    batch.dispose();
    coop.dispose();
  });
});

describe('CoOp presets and recipes', () => {
  const registry = new PluginRegistry([coopPlugin]);

  test('the coop preset is the reference default and clipping puts the class at the front', () => {
    expect(registry.resolveConfig('promptLearner', 'coop', {}, 'coop')).toEqual({
      classNames: ['real', 'fake'],
      nCtx: 16,
      ctxInit: '',
      csc: false,
      classTokenPosition: 'end',
      initStd: 0.02,
      truncateAtEot: true,
    });
    expect(registry.resolveConfig('promptLearner', 'coop', {}, 'clipping')).toMatchObject({
      classNames: ['real', 'fake'],
      nCtx: 16,
      ctxInit: '',
      csc: false,
      classTokenPosition: 'front',
    });
    expect(() => registry.resolveConfig('promptLearner', 'coop', { nctx: 4 })).toThrow(/unknown key 'nctx'.*known keys: classNames, nCtx/s);
  });

  test('clippingRecipe(): SGD 0.002/0.9/5e-4, cosine with one 1e-5 warm-up epoch, batch 16, 2 epochs, RRC + flip', () => {
    const recipe = clippingRecipe();
    const experiment = resolveExperiment({ name: 'clipping', dataset: { use: 'df40' }, ...recipe });
    expect(experiment.promptLearner).toEqual({ use: 'coop', preset: 'clipping', config: {} });
    expect(experiment.trainer).toMatchObject({
      epochs: 2,
      batchSize: 16,
      optimizer: { type: 'sgd', lr: 0.002, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: false },
      schedule: { type: 'cosine', warmupEpochs: 1, warmupType: 'constant', warmupLr: 1e-5 },
      select: 'last',
    });
    // Dassl's warm-up quirk: epoch 1 at 1e-5, epoch 2 at the base lr.
    const schedule = createSchedule(experiment.trainer.schedule, 0.002, 2);
    expect([schedule.lrAt(0), schedule.lrAt(1)]).toEqual([1e-5, 0.002]);
    expect(experiment.loader).toEqual({
      use: 'images',
      config: {
        size: 224,
        train: { crop: 'random-resized', scale: [0.08, 1], ratio: [3 / 4, 4 / 3], flip: 0.5, normalize: 'clip' },
        eval: { crop: 'center', normalize: 'clip' },
      },
    });
  });

  test('coopRecipe(): the reference trainer (batch 32, 200 epochs, last step) with the class at the end', () => {
    const experiment = resolveExperiment({ name: 'coop', dataset: { use: 'df40' }, ...coopRecipe({ imageSize: 32, epochs: 3 }) });
    expect(experiment.promptLearner?.preset).toBe('coop');
    expect(experiment.trainer).toMatchObject({ epochs: 3, batchSize: 32, evalBatchSize: 100, optimizer: { lr: 0.002 }, select: 'last' });
    expect(coopRecipe().trainer?.epochs).toBe(200);
    expect((experiment.loader?.config as { size: number }).size).toBe(32);
  });
});
