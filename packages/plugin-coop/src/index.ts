/**
 * @dfd/plugin-coop: CoOp's prompt learner (`promptLearner: { use: 'coop' }`) with the `coop` and
 * `clipping` presets, and the recipes (`coopRecipe()`, `clippingRecipe()`) that carry the trainer and
 * loader parts of each method. Pair it with the default `clip-prompt` detector and a CLIP encoder.
 */
import { definePlugin } from '@dfd/core';
import { CLIPPING_PRESET, COOP_PRESET, CoOpConfigSchema } from './config.js';
import { CoOpPromptLearner } from './learner.js';

export * from './config.js';
export * from './prompts.js';
export * from './learner.js';
export * from './recipes.js';

export const coopPlugin = definePlugin({
  name: '@dfd/plugin-coop',
  version: '0.1.0',
  register(r) {
    r.add({
      kind: 'promptLearner',
      name: 'coop',
      description: 'CoOp: learned context tokens (generic or class-specific; end/middle/front class token), frozen CLIP text tower',
      config: CoOpConfigSchema,
      useClass: CoOpPromptLearner,
      presets: { coop: COOP_PRESET, clipping: CLIPPING_PRESET },
    });
  },
});

export default coopPlugin;
