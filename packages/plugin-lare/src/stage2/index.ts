/**
 * LaRE² stage 2: the FeatureEnhancers that turn LaRE maps (and patch tokens, boxes) into features for a fuser.
 * `registerStage2(r)` is called by the plugin's `register`.
 */
import type { PluginRegistrar } from '@dfd/core';
import { LareEgreConfigSchema, LareMlpConfigSchema, LareRoiConfigSchema } from './config.js';
import { LareEgreEnhancer } from './egre.js';
import { LareMlpEnhancer } from './mlp.js';
import { LareRoiEnhancer } from './roi.js';
import { LareLinearConfigSchema, LareLinearDetector } from './linear-detector.js';

export * from './config.js';
export * from './map.js';
export * from './egre.js';
export * from './mlp.js';
export * from './roi.js';
export * from './linear-detector.js';

export function registerStage2(r: PluginRegistrar): void {
  r.add({
    kind: 'detector',
    name: 'lare-linear',
    description: 'LaRE alone: a linear head on the pooled LaRE map (no CLIP)',
    config: LareLinearConfigSchema,
    useClass: LareLinearDetector,
  });
  r.add({
    kind: 'enhancer',
    name: 'lare-egre',
    description: 'LaRE² V6 error-guided refinement on ViT patch tokens: map-biased mean-token attention (EGSR) + map-driven channel gate (EGCR)',
    config: LareEgreConfigSchema,
    useClass: LareEgreEnhancer,
  });
  r.add({
    kind: 'enhancer',
    name: 'lare-mlp',
    description: 'LaRE map pooled and flattened, then an MLP',
    config: LareMlpConfigSchema,
    useClass: LareMlpEnhancer,
  });
  r.add({
    kind: 'enhancer',
    name: 'lare-roi',
    description: 'RoI Align (torchvision-exact, boxes scaled to the patch grid) of the patch tokens over face regions, mean or concatenated',
    config: LareRoiConfigSchema,
    useClass: LareRoiEnhancer,
  });
}
