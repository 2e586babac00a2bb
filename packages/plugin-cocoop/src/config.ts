/**
 * CoCoOp's configuration (shared/reference/methods.md §3). Defaults are those of the config every CoCoOp
 * script uses (`vit_b16_c4_ep10_batch1_ctxv1.yaml`): 4 context tokens initialised from "a photo of a".
 * Only the `end` class position exists in CoCoOp, and no class-specific context.
 */
import { z } from 'zod';

export const CoCoOpConfigSchema = z
  .object({
    /** Class names in label order: index 0 = real, 1 = fake. */
    classNames: z.array(z.string().min(1)).min(2).default(['real', 'fake']),
    /** Number of context tokens (overridden by the word count of `ctxInit`). */
    nCtx: z.number().int().positive().default(4),
    /** Word initialisation; empty = random N(0, initStd). */
    ctxInit: z.string().default('a photo of a'),
    initStd: z.number().positive().default(0.02),
    /** Meta-net hidden width = embedDim / this (CoCoOp: vis_dim // 16). */
    metaNetReduction: z.number().int().positive().default(16),
    /** Stop the text pass at the longest EOT (exact under the causal mask). */
    truncateAtEot: z.boolean().default(true),
    /**
     * Run the B × n_cls prompt sequences of a batch as one text-tower call (`batched`) or image by image as
     * the reference loop does (`loop`); the results are equal (tested), `batched` is faster.
     */
    textPass: z.enum(['batched', 'loop']).default('batched'),
  })
  .strict();

export type CoCoOpConfig = z.output<typeof CoCoOpConfigSchema>;
export type CoCoOpConfigInput = z.input<typeof CoCoOpConfigSchema>;

/** The reference config (`vit_b16_c4_ep10_batch1_ctxv1`). */
export const COCOOP_PRESET = { nCtx: 4, ctxInit: 'a photo of a' } satisfies Partial<CoCoOpConfigInput>;
/** The random-init variants (`vit_b16_c{4,8,16}_ep10_batch1`). */
export const COCOOP_RANDOM_PRESETS = {
  c4: { nCtx: 4, ctxInit: '' },
  c8: { nCtx: 8, ctxInit: '' },
  c16: { nCtx: 16, ctxInit: '' },
} satisfies Record<string, Partial<CoCoOpConfigInput>>;
