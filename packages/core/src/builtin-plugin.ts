/**
 * The components @dfd/core registers itself (the default detector and evaluators). Loaded into every
 * experiment's registry before the user's plugins.
 */
import { definePlugin } from './plugin.js';
import { builtinCommands } from './cli/builtin-commands.js';
import { resolveOptional, TOKENS } from './di.js';
import type { Encoder, FeatureEnhancer, Fuser, PromptLearner } from './contracts.js';
import type { Rng } from './rng.js';
import type { ResolvedExperiment } from './experiment.js';
import { ClipPromptConfigSchema, ClipPromptDetector } from './detectors/clip-prompt.js';
import { BinaryEvaluator } from './evaluation/binary-evaluator.js';
import { Df40Evaluator } from './evaluation/df40-evaluator.js';
import { BinaryEvaluatorConfigSchema, Df40EvaluatorConfigSchema } from './evaluation/config.js';
import { createFeatureCacheLoader, FeatureCacheConfigSchema } from './features/component.js';

export const corePlugin = definePlugin({
  name: '@dfd/core',
  version: '0.1.0',
  register(registrar) {
    for (const command of builtinCommands) registrar.command(command);
    registrar.add({
      kind: 'evaluator',
      name: 'binary',
      description: 'AUC/AP/EER/acc@0.5 (scikit-learn-exact) overall and per subset, video-level AUC, bootstrap CI; report.json/html + ROC PNGs',
      config: BinaryEvaluatorConfigSchema,
      useClass: BinaryEvaluator,
    });
    registrar.add({
      kind: 'evaluator',
      name: 'df40',
      description: 'DF40 protocol: frame- and video-level metrics on the 8 unknown-type test subsets and their mean',
      config: Df40EvaluatorConfigSchema,
      useClass: Df40Evaluator,
    });
    registrar.add({
      kind: 'loader',
      name: 'feature-cache',
      description: "frozen image embeddings computed once and cached on disk (keyed by weights, preprocessing, image content); wraps a pixel loader",
      config: FeatureCacheConfigSchema,
      useFactory: (config, resolver) => createFeatureCacheLoader(config, resolver),
    });
    registrar.add({
      kind: 'detector',
      name: 'clip-prompt',
      description: 'logit_scale · cos(image [+ enhancers, fused], prompt text features) — CoOp/CoCoOp/CLIPping head',
      config: ClipPromptConfigSchema,
      useFactory: (config, resolver) => {
        const need = <T>(token: symbol, what: string): T => {
          if (!resolver.isRegistered(token)) {
            throw new Error(`the clip-prompt detector needs ${what}: add it to the experiment (e.g. \`${what}: { use: ... }\`)`);
          }
          return resolver.resolve<T>(token);
        };
        return new ClipPromptDetector(config, {
          encoder: need<Encoder>(TOKENS.Encoder, 'encoder'),
          promptLearner: need<PromptLearner>(TOKENS.PromptLearner, 'promptLearner'),
          enhancers: resolveOptional<FeatureEnhancer[]>(resolver, TOKENS.FeatureEnhancers) ?? [],
          enhancerNames: resolveOptional<string[]>(resolver, TOKENS.FeatureEnhancerNames),
          fuser: resolveOptional<Fuser>(resolver, TOKENS.Fuser),
          fuserName: resolveOptional<ResolvedExperiment>(resolver, TOKENS.Experiment)?.fuser?.use,
          rng: resolver.resolve<Rng>(TOKENS.Rng).fork('clip-prompt'),
        });
      },
    });
  },
});
