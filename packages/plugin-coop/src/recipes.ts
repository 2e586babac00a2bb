/**
 * The training recipes, as partial experiments. A component preset can only hold the prompt learner's own
 * config; the rest of a recipe (optimizer, schedule, batch size, epochs, transforms) lives in the trainer
 * and loader slots, so each recipe is a function returning all of them:
 *
 *   defineExperiment({ name: 'clipping', dataset: ..., encoder: ..., ...clippingRecipe() })
 */
import type { ComponentRef, ExperimentDefinition } from '@dfd/core';

export interface RecipeOptions {
  /** Input side of the encoder (224 for the released CLIP ViTs). */
  imageSize?: number;
  /** Override the recipe's epoch count (e.g. for a smoke test). */
  epochs?: number;
  /** Include this encoder reference (the recipe's backbone is in `facts`). */
  encoder?: ComponentRef;
}

export type Recipe = Pick<ExperimentDefinition, 'promptLearner' | 'trainer' | 'loader'> & Partial<Pick<ExperimentDefinition, 'encoder'>>;

/** Dassl's SGD defaults as CoOp uses them: lr 0.002, momentum 0.9, weight decay 5e-4, no Nesterov. */
export const DASSL_SGD = { type: 'sgd', lr: 0.002, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: false } as const;

/** Cosine per epoch with one constant warm-up epoch at 1e-5 (Dassl semantics: epoch 2 restarts at the base lr). */
export const DASSL_COSINE_WARMUP = { type: 'cosine', warmupEpochs: 1, warmupType: 'constant', warmupLr: 1e-5, minLr: 0 } as const;

/** CoOp's transforms: RandomResizedCrop(scale 0.08–1, ratio 3/4–4/3, bicubic) + flip; eval resize + center crop; CLIP stats. */
export function clipLoader(size = 224): ComponentRef {
  return {
    use: 'images',
    config: {
      size,
      train: { crop: 'random-resized', scale: [0.08, 1], ratio: [3 / 4, 4 / 3], flip: 0.5, normalize: 'clip' },
      eval: { crop: 'center', normalize: 'clip' },
    },
  };
}

/** Facts of the recipes that are not config values of this package (the backbone is the encoder's choice). */
export const RECIPE_FACTS = {
  coop: { backbone: 'RN50 / ViT-B/16', batchSize: 32, epochs: 200, finalModel: 'last' },
  clipping: { backbone: 'ViT-L/14', batchSize: 16, epochs: 2, finalModel: 'last (epoch 2)' },
} as const;

/** KaiyangZhou/CoOp (`configs/trainers/CoOp/vit_b16.yaml` + `train.py` defaults): methods.md §2.2. */
export function coopRecipe(options: RecipeOptions = {}): Recipe {
  return {
    ...(options.encoder ? { encoder: options.encoder } : {}),
    promptLearner: { use: 'coop', preset: 'coop' },
    trainer: {
      epochs: options.epochs ?? 200,
      batchSize: 32,
      evalBatchSize: 100,
      optimizer: { ...DASSL_SGD },
      schedule: { ...DASSL_COSINE_WARMUP },
      // TEST.FINAL_MODEL = last_step.
      select: 'last',
    },
    loader: clipLoader(options.imageSize),
  };
}

/**
 * CLIPping-the-Deception (`vit_l14_ep2.yaml`, README command): methods.md §4.2. ViT-L/14, 16 random
 * context tokens with the class token at the front, SGD 0.002 / 0.9 / 5e-4, cosine with one constant
 * warm-up epoch at 1e-5 (so epoch 1 runs at 1e-5 and epoch 2 at 0.002), batch 16, 2 epochs,
 * random-resized-crop + flip (its `compress_blur` is a no-op in the code, so none here).
 */
export function clippingRecipe(options: RecipeOptions = {}): Recipe {
  return {
    ...(options.encoder ? { encoder: options.encoder } : {}),
    promptLearner: { use: 'coop', preset: 'clipping' },
    trainer: {
      epochs: options.epochs ?? 2,
      batchSize: 16,
      evalBatchSize: 100,
      optimizer: { ...DASSL_SGD },
      schedule: { ...DASSL_COSINE_WARMUP },
      // `--load-epoch 2`: the last epoch's weights.
      select: 'last',
    },
    loader: clipLoader(options.imageSize),
  };
}
