/**
 * CoOp (CLIPping's prompt: 16 learned context tokens, class name at the front) on the synthetic mini-DF40,
 * evaluated on DF40's 8 unknown test sets. Copy this file and change the dataset root and the encoder
 * folder to run it on DF40 with a real CLIP:
 *
 *   dataset: { use: 'df40', config: { root: '/data/DF40' } },
 *   encoder: { use: 'clip', config: { model: '/models/clip-vit-large-patch14', engine: 'onnx' } },
 *   ...clippingRecipe({ encoder: ... })   // SGD 0.002, cosine + warm-up, batch 16, 2 epochs, RRC + flip
 *
 * Run: npm run build && node examples/dist/coop.js
 */
import { defineExperiment, runExperiment } from '@dfd/core';
import { DEFAULT_DATA_DIR, ensureMiniDf40, formatTable, isMain, PLUGINS, TEST_SUBSETS, TINY_CLIP, trackingFromEnv, type ExampleOptions } from './setup.js';

export function coopExperiment(options: ExampleOptions = {}) {
  return defineExperiment({
    name: 'coop-mini-df40',
    seed: options.seed ?? 1,
    pluginObjects: PLUGINS,
    dataset: { use: 'df40', config: { root: options.root ?? DEFAULT_DATA_DIR } },
    // Prompt learning runs on the tfjs text tower; `engine: 'onnx'` gives the feature cache the fast
    // onnxruntime image tower (examples/models/tiny-clip-df40/onnx/vision_model.onnx) to encode with.
    encoder: { use: 'clip', config: { model: TINY_CLIP, engine: 'onnx' } },
    // CLIPping's prompt: [SOS] real|fake [16 context tokens] . [EOS].
    promptLearner: { use: 'coop', preset: 'clipping' },
    // logits = 100 · cos(image, text); the image side comes from the feature cache.
    detector: { use: 'clip-prompt', config: { imageInput: 'features' } },
    // Encode every image once (eval view: resize + center crop to the encoder's 32 px) and cache it on
    // disk; training then costs only the text tower. `train: 'augmented'` would re-encode augmented views.
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
      epochs: options.fast ? 1 : 30,
      ...(options.fast ? { maxSteps: 3 } : {}),
      batchSize: 16,
      // The tiny CLIP's token embeddings are ~25× larger than CLIP's, so the recipe's SGD 0.002 barely moves
      // the context in a short run; AdamW 0.01 does. With a real CLIP use clippingRecipe()'s trainer.
      optimizer: { type: 'adamw', lr: 0.01, weightDecay: 0 },
      // Model selection on validation (never on test); the selected checkpoint is evaluated once on test.
      select: 'val',
      selectMetric: 'auc',
    },
    tracking: trackingFromEnv(),
    runsDir: options.runsDir ?? 'runs',
  });
}

if (isMain(import.meta.url)) {
  const { root } = await ensureMiniDf40(DEFAULT_DATA_DIR, console.log);
  const result = await runExperiment(coopExperiment({ root }), { progress: true });
  if (result.test) console.log(formatTable(result.test));
  console.log(`run directory: ${result.runDir}`);
}
