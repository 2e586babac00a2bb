/**
 * UFD's recipe (methods.md §5.2–5.3) as a partial experiment: AdamW lr 1e-4, betas (0.9, 0.999), weight
 * decay 0, batch 256; train transform resize-256 → random crop → flip with blur (p .5, σ ∈ [0, 3]) and
 * JPEG (p .5, q ∈ 30..100); evaluation center crop without resize. UFD's early stopping (lr ÷ 10 after 5
 * epochs without a validation-accuracy gain) maps to the plateau schedule on `acc`.
 *
 * Features are encoded once through the `feature-cache` loader: the eval view (center crop) is cached,
 * augmented training views are encoded fresh each epoch, since caching one draw would freeze the
 * augmentation.
 */
import type { ComponentRef, ExperimentDefinition } from '@dfd/core';

export interface UfdRecipeOptions {
  /** Encoder input side (224 for ViT-L/14). The resize step scales with it (256/224). */
  imageSize?: number;
  epochs?: number;
  /** Where the feature cache lives. */
  cacheDir?: string;
  encoder?: ComponentRef;
}

export const UFD_RECIPE_FACTS = { backbone: 'ViT-L/14', batchSize: 256, earlyStopping: 'val acc, patience 5, lr ÷ 10, stop below 1e-6' } as const;

/** The `images` loader config of UFD's transforms for an encoder of side `size`. */
export function ufdImagesLoader(size = 224): ComponentRef {
  return {
    use: 'images',
    config: {
      size,
      train: { crop: 'random', resize: Math.round((256 * size) / 224), flip: 0.5, blur: { p: 0.5, sigma: [0, 3] }, jpeg: { p: 0.5, quality: [30, 100] }, normalize: 'clip' },
      eval: { crop: 'center', resize: 0, normalize: 'clip' },
    },
  };
}

export function ufdRecipe(options: UfdRecipeOptions = {}): Pick<ExperimentDefinition, 'detector' | 'trainer' | 'loader'> & Partial<Pick<ExperimentDefinition, 'encoder'>> {
  return {
    ...(options.encoder ? { encoder: options.encoder } : {}),
    detector: { use: 'ufd', config: { imageInput: 'features' } },
    trainer: {
      epochs: options.epochs ?? 100,
      batchSize: 256,
      optimizer: { type: 'adamw', lr: 1e-4, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 },
      schedule: { type: 'plateau', mode: 'max', factor: 0.1, patience: 5, threshold: 1e-3, minLr: 1e-6 },
      select: 'val',
      selectMetric: 'acc',
    },
    loader: {
      use: 'feature-cache',
      config: { inner: ufdImagesLoader(options.imageSize), train: 'augmented', ...(options.cacheDir ? { dir: options.cacheDir } : {}) },
    },
  };
}
