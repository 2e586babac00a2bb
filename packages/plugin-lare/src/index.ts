/**
 * @dfd/plugin-lare: LaRE² — stage 1 (latent reconstruction error maps from Stable Diffusion on onnxruntime,
 * `dfd lare extract|merge|verify|import`) and stage 2 (the `lare-egre`, `lare-mlp`, `lare-roi` enhancers and
 * the `lare-linear` detector that consume the maps), and the `lare` extra provider that computes a missing map
 * for `dfd predict`.
 */
import { definePlugin } from '@dfd/core';
import { lareCommand } from './cli/lare-command.js';
import { lareExtraProvider } from './stage1/extra-provider.js';
import { registerStage2 } from './stage2/index.js';

export * from './stage1/index.js';
export * from './stage2/index.js';
export { lareCommand } from './cli/lare-command.js';

export const larePlugin = definePlugin({
  name: '@dfd/plugin-lare',
  version: '0.1.0',
  register(registrar) {
    registrar.command(lareCommand);
    registerStage2(registrar);
    // `dfd predict` on an image without a map: computed with the run's stage-1 model and recorded settings.
    registrar.extraProvider?.(lareExtraProvider);
  },
});

export default larePlugin;
