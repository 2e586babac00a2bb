/**
 * CoOp's configuration (shared/reference/methods.md §2). Defaults are those of CoOp's `train.py`
 * (N_CTX 16, CSC False, CTX_INIT "", CLASS_TOKEN_POSITION end); the `coop` and `clipping` presets name the
 * two recipes this package reproduces.
 */
import { z } from 'zod';

export const CLASS_TOKEN_POSITIONS = ['end', 'middle', 'front'] as const;
export type ClassTokenPosition = (typeof CLASS_TOKEN_POSITIONS)[number];

export const CoOpConfigSchema = z
  .object({
    /** Class names in label order: index 0 = real, 1 = fake. Underscores become spaces, as in CoOp. */
    classNames: z.array(z.string().min(1)).min(2).default(['real', 'fake']),
    /** Number of learned context tokens (overridden by the word count of `ctxInit` when that is set). */
    nCtx: z.number().int().positive().default(16),
    /** Word initialisation, e.g. `a photo of a` (sets nCtx to 4). Empty = random N(0, initStd). */
    ctxInit: z.string().default(''),
    /** Class-specific context (`[nCls, nCtx, D]`); ignored with `ctxInit`, as in CoOp. */
    csc: z.boolean().default(false),
    classTokenPosition: z.enum(CLASS_TOKEN_POSITIONS).default('end'),
    /** Std of the random context initialisation. */
    initStd: z.number().positive().default(0.02),
    /**
     * Run the text tower only up to the longest EOT position instead of all 77 tokens. Exact: the causal
     * mask means the EOT output never sees later tokens (a test checks equality with the full pass).
     */
    truncateAtEot: z.boolean().default(true),
  })
  .strict();

export type CoOpConfig = z.output<typeof CoOpConfigSchema>;
export type CoOpConfigInput = z.input<typeof CoOpConfigSchema>;

/** The reference defaults (KaiyangZhou/CoOp `train.py` + `configs/trainers/CoOp/*.yaml`). */
export const COOP_PRESET = { nCtx: 16, ctxInit: '', csc: false, classTokenPosition: 'end' } satisfies Partial<CoOpConfigInput>;

/** CLIPping-the-Deception's prompt (§4.1): 16 random context tokens, class token at the front, real/fake. */
export const CLIPPING_PRESET = {
  classNames: ['real', 'fake'],
  nCtx: 16,
  ctxInit: '',
  csc: false,
  classTokenPosition: 'front',
} satisfies Partial<CoOpConfigInput>;
