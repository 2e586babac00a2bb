/** Configs of the fusers (typed, defaulted). */
import { z } from 'zod';

export const ConcatConfigSchema = z
  .object({
    /**
     * Project the image embedding before concatenation: `none`, to the vision width (`visionWidth`: CLaRE's
     * `image_proj` 768 → 1024 for ViT-L/14), or to a given width. A Linear with bias, PyTorch's default init.
     */
    imageProjection: z.union([z.enum(['none', 'visionWidth']), z.number().int().positive()]).default('none'),
  })
  .strict();
export type ConcatConfig = z.output<typeof ConcatConfigSchema>;

export const SumConfigSchema = z
  .object({
    /** Common width every input is projected to (`image` = the embedding width). */
    width: z.union([z.literal('image'), z.number().int().positive()]).default('image'),
  })
  .strict();
export type SumConfig = z.output<typeof SumConfigSchema>;

export const AttentionConfigSchema = z
  .object({
    heads: z.number().int().positive().default(8),
    headDim: z.number().int().positive().default(64),
    /** Dropout on the attention weights (inside the attention, as nn.MultiheadAttention) and on its output. */
    dropout: z.number().min(0).max(0.9).default(0.1),
  })
  .strict();
export type AttentionConfig = z.output<typeof AttentionConfigSchema>;

export const RoiFuserConfigSchema = z
  .object({
    /** RoI Align output bins per side before the mean over bins. */
    outputSize: z.number().int().positive().default(14),
    samplingRatio: z.number().int().default(-1),
    /** Regions per image (the loader's region order). */
    regions: z.number().int().positive().default(5),
  })
  .strict();
export type RoiFuserConfig = z.output<typeof RoiFuserConfigSchema>;
