/**
 * @dfd/plugin-ufd: UFD's linear probe (`detector: { use: 'ufd' }`) on frozen CLIP embeddings, and its
 * recipe (`ufdRecipe()`).
 */
import { definePlugin, resolveOptional, TOKENS, type Encoder, type Rng } from '@dfd/core';
import { UfdConfigSchema } from './config.js';
import { UfdDetector } from './detector.js';

export * from './config.js';
export * from './detector.js';
export * from './recipes.js';

export const ufdPlugin = definePlugin({
  name: '@dfd/plugin-ufd',
  version: '0.1.0',
  register(r) {
    r.add({
      kind: 'detector',
      name: 'ufd',
      description: 'UFD linear probe: frozen projected CLIP embedding → Linear(D, 1), BCE; P(fake) = sigmoid',
      config: UfdConfigSchema,
      useFactory: (config, resolver) =>
        new UfdDetector(config, {
          encoder: resolveOptional<Encoder>(resolver, TOKENS.Encoder),
          rng: resolver.resolve<Rng>(TOKENS.Rng).fork('ufd'),
        }),
    });
  },
});

export default ufdPlugin;
