/**
 * UFD's linear probe (shared/reference/methods.md §5): the frozen projected CLIP image embedding (CLS →
 * ln_post → proj, not L2-normalised) → Linear(D, 1) with weight N(0, 0.02) → one logit, BCE-with-logits.
 */
import { z } from 'zod';

export const UfdConfigSchema = z
  .object({
    /**
     * `features`: the embeddings come from a feature-cache loader (encode once, train only the head);
     * `pixels`: run the frozen image tower every step.
     */
    imageInput: z.enum(['features', 'pixels']).default('features'),
    /** Embedding size; default the encoder's `embedDim`. Required when no encoder is configured. */
    dim: z.number().int().positive().optional(),
    /** Std of the weight init (UFD's `init_gain`); the bias keeps PyTorch's default U(±1/√D). */
    initStd: z.number().positive().default(0.02),
  })
  .strict();

export type UfdConfig = z.output<typeof UfdConfigSchema>;
export type UfdConfigInput = z.input<typeof UfdConfigSchema>;
