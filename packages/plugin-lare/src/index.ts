/**
 * @dfd/plugin-lare: LaRE² (shared/reference/methods.md §6). Stage 1: latent reconstruction error maps from a
 * Stable Diffusion ONNX export on onnxruntime (src/stage1/). Stage 2: the `lare-egre`, `lare-mlp` and
 * `lare-roi` FeatureEnhancers (src/stage2/).
 */
import { definePlugin } from '@dfd/core';
import { registerStage2 } from './stage2/index.js';

export * from './stage2/index.js';
export * from './stage1/image.js';
export * from './stage1/lare.js';
export * from './stage1/noise.js';
export * from './stage1/schedule.js';
export * from './stage1/sd-model.js';

export const larePlugin = definePlugin({
  name: '@dfd/plugin-lare',
  version: '0.1.0',
  register(r) {
    registerStage2(r);
  },
});

export default larePlugin;
