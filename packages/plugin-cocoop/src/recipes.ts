/**
 * CoCoOp's recipe (`vit_b16_c4_ep10_batch1_ctxv1.yaml`, methods.md §3.2) as a partial experiment: ViT-B/16,
 * 4 context tokens from "a photo of a", SGD 0.002 / 0.9 / 5e-4, cosine with one constant warm-up epoch at
 * 1e-5, batch 1, 10 epochs, CoOp's transforms.
 */
import type { ComponentRef } from '@dfd/core';
import { clipLoader, DASSL_COSINE_WARMUP, DASSL_SGD, type Recipe, type RecipeOptions } from '@dfd/plugin-coop';

export const COCOOP_RECIPE_FACTS = { backbone: 'ViT-B/16', batchSize: 1, epochs: 10, finalModel: 'last' } as const;

export function cocoopRecipe(options: RecipeOptions & { encoder?: ComponentRef } = {}): Recipe {
  return {
    ...(options.encoder ? { encoder: options.encoder } : {}),
    promptLearner: { use: 'cocoop', preset: 'cocoop' },
    trainer: {
      epochs: options.epochs ?? 10,
      batchSize: 1,
      evalBatchSize: 100,
      optimizer: { ...DASSL_SGD },
      schedule: { ...DASSL_COSINE_WARMUP },
      select: 'last',
    },
    loader: clipLoader(options.imageSize),
  };
}
