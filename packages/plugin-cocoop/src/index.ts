/**
 * @dfd/plugin-cocoop: CoCoOp's conditional prompt learner (`promptLearner: { use: 'cocoop' }`) and its
 * recipe (`cocoopRecipe()`). Pair it with the default `clip-prompt` detector and a CLIP encoder.
 */
import { definePlugin } from '@dfd/core';
import { COCOOP_PRESET, COCOOP_RANDOM_PRESETS, CoCoOpConfigSchema } from './config.js';
import { CoCoOpPromptLearner } from './learner.js';

export * from './config.js';
export * from './meta-net.js';
export * from './learner.js';
export * from './recipes.js';

export const cocoopPlugin = definePlugin({
  name: '@dfd/plugin-cocoop',
  version: '0.1.0',
  register(r) {
    r.add({
      kind: 'promptLearner',
      name: 'cocoop',
      description: 'CoCoOp: CoOp context + a Meta-Net bias from each image (vis → vis/16 → ctx_dim), per-image prompts in one batched text pass',
      config: CoCoOpConfigSchema,
      useClass: CoCoOpPromptLearner,
      presets: { cocoop: COCOOP_PRESET, ...COCOOP_RANDOM_PRESETS },
    });
  },
});

export default cocoopPlugin;
