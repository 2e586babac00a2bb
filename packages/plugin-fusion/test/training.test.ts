/**
 * Real training steps of small composed models: the committed tiny CLIP + CoOp + LaRE stage-2 enhancers + a
 * fuser (built through the plugin registry and DI, as a run builds them) in the `clip-prompt` detector, on
 * synthetic pixels, LaRE maps and face boxes. After one optimizer step every trainable variable of the prompt
 * learner, each enhancer, the fuser and the text projection has changed and no frozen CLIP weight has
 * (CLaRE's optimiser held only the prompt learner, so its fusion modules never trained); tensor count is flat
 * from step to step.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  ClipPromptDetector,
  createOptimizer,
  ensureBackend,
  ExperimentContainer,
  instantiateComponent,
  PluginRegistry,
  Rng,
  tf,
  TOKENS,
  type Batch,
  type ComponentKind,
  type FeatureEnhancer,
  type Fuser,
  type PromptLearner,
} from '@dfd/core';
import { loadClip, type ClipEncoder } from '@dfd/encoder-clip';
import { cocoopPlugin, CoCoOpPromptLearner } from '@dfd/plugin-cocoop';
import { coopPlugin } from '@dfd/plugin-coop';
import { fusionPlugin } from '@dfd/plugin-fusion';
import { larePlugin } from '@dfd/plugin-lare';

const TINY_CLIP = fileURLToPath(new URL('../../../examples/models/tiny-clip', import.meta.url));
const registry = new PluginRegistry([coopPlugin, cocoopPlugin, larePlugin, fusionPlugin]);
let encoder: ClipEncoder;

beforeAll(async () => {
  await ensureBackend();
  encoder = await loadClip(TINY_CLIP);
});
afterAll(() => encoder?.dispose());

type Ref = { use: string; config?: Record<string, unknown>; preset?: string };

function build(container: ExperimentContainer, kind: ComponentKind, ref: Ref) {
  return instantiateComponent(container, registry, kind, ref.use, registry.resolveConfig(kind, ref.use, ref.config ?? {}, ref.preset));
}

/** Four images of the tiny CLIP's 32 px with LaRE maps and five face boxes (one image misses its jaw box). */
function syntheticBatch(seed: number): Batch {
  const rng = new Rng(seed);
  const n = 4;
  const pixels = tf.tensor4d(rng.normalArray(n * 3 * 32 * 32), [n, 3, 32, 32]);
  const lare = tf.tensor4d(rng.uniformArray(n * 4 * 32 * 32, 0, 0.2), [n, 4, 32, 32]);
  const template = [6, 8, 14, 13, 18, 8, 26, 13, 12, 12, 20, 20, 10, 21, 22, 26, 4, 16, 28, 31];
  const boxes = Float32Array.from({ length: n * 20 }, (_, i) => template[i % 20]! + rng.uniform(-1.5, 1.5));
  boxes.fill(0, 16, 20); // image 0: jaw missing (a zero box)
  const labels = tf.tensor1d([0, 1, 0, 1], 'int32');
  const boxTensor = tf.tensor3d(boxes, [n, 5, 4]);
  return { samples: [], pixels, labels, extras: { lare }, boxes: boxTensor, dispose: () => tf.dispose([pixels, lare, labels, boxTensor]) };
}

const small = { heads: 2, headDim: 8 };
const COOP: Ref = { use: 'coop', config: { nCtx: 4 } };
const COMBOS: Array<[string, Ref[], Ref, Ref?]> = [
  ['CLaRE with RoI: lare-egre + lare-roi, concat fusion-clip', [{ use: 'lare-egre', config: small }, { use: 'lare-roi', config: { outputSize: 4 } }], { use: 'concat', preset: 'fusion-clip' }],
  ['lare-egre + attention', [{ use: 'lare-egre', config: small }], { use: 'attention', config: small }],
  // CLaRE's CoCoOp variant: the meta-net is conditioned on the L2-normalised fused feature (§8.2), wider than the embedding.
  ['CoCoOp + lare-egre, concat fusion-clip (meta-net on the fused width)', [{ use: 'lare-egre', config: small }], { use: 'concat', preset: 'fusion-clip' }, { use: 'cocoop' }],
  ['lare-mlp + lare-roi (concat) + sum', [{ use: 'lare-mlp', config: { hidden: [32], outputDim: 16 } }, { use: 'lare-roi', config: { aggregate: 'concat' } }], { use: 'sum', config: { width: 24 } }],
  ['lare-mlp + roi fuser', [{ use: 'lare-mlp', config: { hidden: [32], outputDim: 16, dropout: 0.1 } }], { use: 'roi', config: { outputSize: 3 } }],
];

test.each(COMBOS)('%s: one Adam step moves every trainable variable, no frozen weight; memory flat', (_, enhancerRefs, fuserRef, learnerRef = COOP) => {
  const container = ExperimentContainer.create();
  container.registerValue(TOKENS.Encoder, encoder);
  container.registerValue(TOKENS.Rng, new Rng(5));
  const promptLearner = build(container, 'promptLearner', learnerRef) as PromptLearner;
  const enhancers = enhancerRefs.map((ref) => build(container, 'enhancer', ref) as FeatureEnhancer);
  const fuser = build(container, 'fuser', fuserRef) as Fuser;
  const detector = new ClipPromptDetector({ imageInput: 'pixels' }, { encoder, promptLearner, enhancers, fuser, rng: new Rng(6) });
  if (promptLearner instanceof CoCoOpPromptLearner) {
    // The fused feature is wider than the embedding, and the meta-net was rebuilt for it: vis → vis/16 → ctx_dim (CoCoOp's reduction).
    expect(detector.imageWidth).toBeGreaterThan(encoder.info.embedDim);
    const { metaNet } = promptLearner;
    expect([metaNet.inputDim, metaNet.hiddenDim, metaNet.outputDim]).toEqual([detector.imageWidth, Math.floor(detector.imageWidth / 16), promptLearner.template.width]);
    expect(Object.keys(detector.trainableVariables())).toContain('prompt_learner.meta_net.linear1.weight');
  }
  expect(detector.needs.boxes).toBe(enhancers.some((e) => e.needsBoxes) || Boolean(fuser.needsBoxes));
  const trainable = detector.trainableVariables();
  const names = Object.keys(trainable);
  expect(names).toContain('prompt_learner.ctx');
  expect(names.some((n) => n.startsWith('fuser.'))).toBe(true);
  for (const [i, e] of enhancers.entries()) {
    expect(names.filter((n) => n.startsWith(`enhancer${i}.`)).length).toBe(Object.keys(e.trainableVariables()).length);
  }
  const frozen = encoder.weights();
  const snapshot = (vars: Record<string, tf.Variable>) => Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, Float32Array.from(v.dataSync())]));
  const frozenBefore = snapshot(frozen);
  const trainableBefore = snapshot(trainable);
  const batch = syntheticBatch(11);
  const optimizer = createOptimizer({ type: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
  const step = () => {
    const { value, grads } = tf.variableGrads(() => detector.loss(detector.forward(batch, true), batch.labels), Object.values(trainable));
    const named = Object.fromEntries(Object.entries(trainable).map(([k, v]) => [k, grads[v.name]!]));
    optimizer.apply(trainable, named, 1e-3);
    const loss = value.dataSync()[0]!;
    tf.dispose([value, ...Object.values(grads)]);
    return loss;
  };
  expect(Number.isFinite(step())).toBe(true);
  for (const [name, variable] of Object.entries(trainable)) {
    const before = trainableBefore[name]!;
    const moved = variable.dataSync().some((v, i) => v !== before[i]);
    expect(moved, `${name} did not change after one step`).toBe(true);
  }
  for (const [name, variable] of Object.entries(frozen)) {
    const before = frozenBefore[name]!;
    expect(variable.dataSync().every((v, i) => v === before[i]), `frozen ${name} changed`).toBe(true);
  }
  const tensors = tf.memory().numTensors;
  step();
  step();
  expect(tf.memory().numTensors).toBe(tensors);
  optimizer.dispose();
  batch.dispose();
  detector.dispose();
  container.dispose();
});
