/**
 * @dfd/plugin-lare: LaRE² — stage 1 (latent reconstruction error maps from Stable Diffusion on onnxruntime,
 * `dfd lare extract|merge|verify|import`) and stage 2 (the modules that consume the maps).
 */
import { definePlugin } from '@dfd/core';
import { lareCommand } from './cli/lare-command.js';

export * from './stage1/index.js';
export { lareCommand } from './cli/lare-command.js';

export const larePlugin = definePlugin({
  name: '@dfd/plugin-lare',
  version: '0.1.0',
  register(registrar) {
    registrar.command(lareCommand);
  },
});

export default larePlugin;
