/**
 * Configs of the LaRE² stage-2 enhancers (shared/reference/methods.md §6.2, §8.2). Defaults are LaRE's
 * `CLipClassifierWMapV6` (8 heads of 64, dropout 0.1, channel gate 4→128→width) and CLaRE's RoI branch
 * (14×14 aligned RoI, mean over regions).
 */
import { z } from 'zod';

/** The extras key of the LaRE map (`Batch.extras.lare`, `[B, 4, 32, 32]` NCHW as stored). */
const mapKey = z.string().min(1).default('lare');

export const LareEgreConfigSchema = z
  .object({
    mapKey,
    /** Channels of the LaRE map (the 4 SD latent channels). */
    mapChannels: z.number().int().positive().default(4),
    /** Attention heads; the LaRE map gets one bias channel per head (1×1 conv mapChannels → heads). */
    heads: z.number().int().positive().default(8),
    /** Width of each head's query/key/value (LaRE: d_k = d_v = 64). */
    headDim: z.number().int().positive().default(64),
    /** Dropout on the attention weights and on the attention output (LaRE: 0.1). Seeded; off in eval. */
    dropout: z.number().min(0).max(0.9).default(0.1),
    /** Hidden width of the channel gate (LaRE's ChannelAlignLayer: 128). */
    channelHidden: z.number().int().positive().default(128),
    /** Which refinements make the output: EGSR attention `s`, EGCR gate `c`, or both concatenated `[s, c]`. */
    output: z.enum(['both', 'spatial', 'channel']).default('both'),
  })
  .strict();
export type LareEgreConfig = z.output<typeof LareEgreConfigSchema>;

export const LareMlpConfigSchema = z
  .object({
    mapKey,
    mapChannels: z.number().int().positive().default(4),
    /** The map is average-pooled to poolSize×poolSize (adaptive, as PyTorch) and flattened (NCHW order). */
    poolSize: z.number().int().positive().default(8),
    /** Hidden layer widths (ReLU after each). */
    hidden: z.array(z.number().int().positive()).default([512]),
    outputDim: z.number().int().positive().default(256),
    /** Dropout after each hidden activation. */
    dropout: z.number().min(0).max(0.9).default(0),
  })
  .strict();
export type LareMlpConfig = z.output<typeof LareMlpConfigSchema>;

export const LareRoiConfigSchema = z
  .object({
    /** RoI Align output bins per side before the average over bins (CLaRE: 14). */
    outputSize: z.number().int().positive().default(14),
    /** Sample points per bin side; ≤ 0 = adaptive, as torchvision's default −1. */
    samplingRatio: z.number().int().default(-1),
    /** Combine the regions of an image: their mean (CLaRE), or their concatenation (`regions` × width). */
    aggregate: z.enum(['mean', 'concat']).default('mean'),
    /** Number of regions per image (the loader's region order); fixes the output width of `concat`. */
    regions: z.number().int().positive().default(5),
  })
  .strict();
export type LareRoiConfig = z.output<typeof LareRoiConfigSchema>;
