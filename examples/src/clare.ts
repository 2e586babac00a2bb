/**
 * CLaRE on the synthetic mini-DF40 — the seed's pipeline in two stages, one definition:
 *
 *   stage `coop`  CoOp (CLIPping's prompt) on the training methods, selected on validation;
 *   stage `lare`  starts from stage 1's learned context (`init: { from: 'stage:coop', variables: ['ctx'] }`,
 *                 frozen by default), adds LaRE enhancer(s) over the LaRE maps of the committed tiny SD and a
 *                 fuser, retrains and is evaluated once on DF40's 8 unknown test sets.
 *
 * Stage 2 is recorded as the child of stage 1 (parent.json, MLflow parent/child runs). The maps come from
 * models/tiny-sd-df40 and are computed on first use into `<root>/lare-maps/` (lare-maps.ts).
 *
 * Run: npx dfd run examples/clare.ts   (or: npm run quickstart -- --method clare)
 */
import { join } from 'node:path';
import { definePipeline, type ComponentRef, type PipelineDefinition, type StageExperiment } from '@dfd/core';
import { larePlugin } from '@dfd/plugin-lare';
import { fusionPlugin } from '@dfd/plugin-fusion';
import { cocoopExperiment } from './cocoop.js';
import { coopExperiment } from './coop.js';
import { lareExtras, MAPS_DIR, TINY_SD } from './lare-maps.js';
import { DEFAULT_DATA_DIR, PLUGINS, type ExampleOptions } from './setup.js';

export const CLARE_PLUGINS = [...PLUGINS, larePlugin, fusionPlugin];

/** What stage 2 adds: enhancers over the LaRE map and the fuser that joins them with the image embedding. */
export interface ClareVariant {
  enhancers: ComponentRef[];
  fuser: ComponentRef;
  /** The stage-1 learner; with CoCoOp, stage 2's meta-net is conditioned on the fused feature (its width, §8.2). */
  learner?: 'coop' | 'cocoop';
  /** Train the stage-1 context further in stage 2 (default: frozen). */
  trainable?: boolean;
}

/** Sizes for the tiny CLIP (32-wide tokens on a 4×4 grid) and the tiny SD's 4×8×8 maps. */
export const ENHANCERS = {
  'lare-mlp': { use: 'lare-mlp', config: { poolSize: 4, hidden: [64], outputDim: 32 } },
  'lare-egre': { use: 'lare-egre', config: { heads: 4, headDim: 8, channelHidden: 32, dropout: 0.1 } },
  'lare-roi': { use: 'lare-roi', config: { outputSize: 2 } },
} satisfies Record<string, ComponentRef>;

export const FUSERS = {
  concat: { use: 'concat' },
  sum: { use: 'sum' },
  attention: { use: 'attention', config: { heads: 4, headDim: 8, dropout: 0.1 } },
} satisfies Record<string, ComponentRef>;

export const DEFAULT_VARIANT: ClareVariant = { enhancers: [ENHANCERS['lare-egre']], fuser: FUSERS.concat };

export interface ClareOptions extends ExampleOptions {
  variant?: ClareVariant;
  /** Stage epochs (defaults: 30 for CoOp as coop.ts, 10 for stage 2). */
  stage1Epochs?: number;
  stage2Epochs?: number;
  name?: string;
}

/** Stage 1: the CoOp (or CoCoOp) example itself, without its own name (the pipeline names it). */
export function stage1Experiment(options: ClareOptions = {}): StageExperiment {
  const learner = options.variant?.learner ?? 'coop';
  const { name: _name, ...base } = (learner === 'cocoop' ? cocoopExperiment : coopExperiment)(options);
  return {
    ...base,
    pluginObjects: CLARE_PLUGINS,
    trainer: { ...base.trainer, ...(options.stage1Epochs && !options.fast ? { epochs: options.stage1Epochs } : {}) },
  };
}

/** Stage 2: stage 1's learner and encoder, the maps as the `lare` extra, enhancers + fuser, init from stage 1. */
export function stage2Experiment(options: ClareOptions = {}, from = 'stage:coop'): StageExperiment {
  const variant = options.variant ?? DEFAULT_VARIANT;
  const first = stage1Experiment(options);
  const root = options.root ?? DEFAULT_DATA_DIR;
  return {
    ...first,
    dataset: { use: 'df40', config: { root, extras: lareExtras(root) } },
    // `dfd predict` on an image without a map computes it with the tiny SD and the settings the maps recorded.
    predict: { extras: { lare: { model: TINY_SD, recipe: join(root, MAPS_DIR) } } },
    enhancers: variant.enhancers,
    fuser: variant.fuser,
    init: { from, variables: ['prompt_learner.ctx'], trainable: variant.trainable ?? false },
    trainer: {
      ...first.trainer,
      epochs: options.fast ? 1 : (options.stage2Epochs ?? 10),
      ...(options.fast ? { maxSteps: 3 } : {}),
      optimizer: { type: 'adamw', lr: 0.003, weightDecay: 0 },
    },
  };
}

export function clarePipeline(options: ClareOptions = {}): PipelineDefinition {
  return definePipeline({
    name: options.name ?? 'clare-mini-df40',
    description: 'CLaRE: CoOp (stage 1), then LaRE enhancer(s) + fuser over the frozen prompt (stage 2); synthetic mini-DF40',
    stages: [
      { name: 'coop', experiment: stage1Experiment(options) },
      { name: 'lare', experiment: stage2Experiment(options) },
    ],
  });
}
