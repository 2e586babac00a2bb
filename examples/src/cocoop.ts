/**
 * CoCoOp on the synthetic mini-DF40: CoOp's context (4 tokens from "a photo of a") plus a Meta-Net that turns
 * each image's normalised embedding into a bias added to every context token, so every image gets its own
 * prompts. The text tower runs on B × 2 sequences per batch, in one batched call.
 *
 * For the reference setting (ViT-B/16, batch 1, 10 epochs, SGD 0.002 with warm-up) spread cocoopRecipe().
 *
 * Run: npm run build && node examples/dist/cocoop.js
 */
import { defineExperiment, runExperiment } from '@dfd/core';
import { DEFAULT_DATA_DIR, ensureMiniDf40, formatTable, isMain, PLUGINS, TEST_SUBSETS, TINY_CLIP, trackingFromEnv, type ExampleOptions } from './setup.js';

export function cocoopExperiment(options: ExampleOptions = {}) {
  return defineExperiment({
    name: 'cocoop-mini-df40',
    seed: options.seed ?? 1,
    pluginObjects: PLUGINS,
    dataset: { use: 'df40', config: { root: options.root ?? DEFAULT_DATA_DIR } },
    encoder: { use: 'clip', config: { model: TINY_CLIP, engine: 'onnx' } },
    promptLearner: { use: 'cocoop', preset: 'cocoop' },
    detector: { use: 'clip-prompt', config: { imageInput: 'features' } },
    loader: {
      use: 'feature-cache',
      config: {
        inner: { use: 'images', config: { size: 32, eval: { crop: 'center', normalize: 'clip' } } },
        train: 'eval-view',
        ...(options.cacheDir ? { dir: options.cacheDir } : {}),
      },
    },
    evaluator: { use: 'df40' },
    data: { test: { subsets: TEST_SUBSETS } },
    trainer: {
      epochs: options.fast ? 1 : 20,
      ...(options.fast ? { maxSteps: 3 } : {}),
      // CoCoOp's cost grows with the batch (one prompt set per image); 8 keeps a step cheap on a CPU.
      batchSize: 8,
      optimizer: { type: 'adamw', lr: 0.005, weightDecay: 0 },
      select: 'val',
    },
    tracking: trackingFromEnv(),
    runsDir: options.runsDir ?? 'runs',
  });
}

if (isMain(import.meta.url)) {
  const { root } = await ensureMiniDf40(DEFAULT_DATA_DIR, console.log);
  const result = await runExperiment(cocoopExperiment({ root }), { progress: true });
  if (result.test) console.log(formatTable(result.test));
  console.log(`run directory: ${result.runDir}`);
}
