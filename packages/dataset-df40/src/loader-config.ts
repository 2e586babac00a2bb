/**
 * Config of the `images` loader: separate train (augmenting) and eval (deterministic) transforms, the
 * output size, decode concurrency and prefetch depth. Each transform is filled from its role's defaults
 * (train: CoOp/Dassl random-resized-crop + flip; eval: resize shorter side + center crop), so
 * `train: { flip: 0 }` changes one knob and keeps the rest.
 */
import { z } from 'zod';
import { FACE_REGIONS } from './boxes.js';
import { TransformSpecSchema, type TransformSpecInput } from './image/transform.js';

export const TRAIN_DEFAULTS: TransformSpecInput = { crop: 'random-resized', scale: [0.08, 1], ratio: [3 / 4, 4 / 3], flip: 0.5 };
export const EVAL_DEFAULTS: TransformSpecInput = { crop: 'center' };

const specWithout = TransformSpecSchema.omit({ size: true });
const roleSpec = (defaults: TransformSpecInput) =>
  z.preprocess((value) => ({ ...defaults, ...(typeof value === 'object' && value !== null ? value : {}) }), specWithout);

export const LoaderConfigSchema = z
  .object({
    /** Output side of both transforms (the encoder's input size). */
    size: z.number().int().positive().default(224),
    train: roleSpec(TRAIN_DEFAULTS).optional(),
    eval: roleSpec(EVAL_DEFAULTS).optional(),
    /** Images decoded at once (sharp runs them on libuv's pool: raise UV_THREADPOOL_SIZE beyond 4). */
    concurrency: z.number().int().positive().default(4),
    /** Batches prepared ahead while the current one trains. */
    prefetch: z.number().int().min(0).default(1),
    /** Region order of `Batch.boxes`. */
    regions: z.array(z.string()).default([...FACE_REGIONS]),
    /**
     * Per extra key: `image` (default) — a `[C, h, w]` map covering the whole source image, cropped, resized
     * and flipped with the pixels (see image/extras-geometry.ts); `none` — passed through untouched (a vector).
     */
    extraGeometry: z.record(z.string(), z.enum(['image', 'none'])).default({}),
    /**
     * A sample whose extra file (e.g. its LaRE map) is missing: `error` stops with the files and the fix;
     * `skip` leaves it out, counted per subset in the run's protocol facts (report.json). Evaluation sets
     * (val, test) error by default so a test set never shrinks silently; training skips by default.
     */
    missingExtras: z
      .object({ train: z.enum(['error', 'skip']).default('skip'), eval: z.enum(['error', 'skip']).default('error') })
      .strict()
      .default({ train: 'skip', eval: 'error' }),
    /** Print a warning with the path for each skipped image. */
    logSkips: z.boolean().default(true),
    maxMessages: z.number().int().min(0).default(50),
  })
  .strict();

export type LoaderConfig = z.output<typeof LoaderConfigSchema>;
export type LoaderConfigInput = z.input<typeof LoaderConfigSchema>;

const cv2Sigma = (k: number) => 0.3 * ((k - 1) * 0.5 - 1) + 0.8;

/** Recipes of the methods in shared/reference/methods.md. */
export const LOADER_PRESETS: Record<string, Partial<LoaderConfigInput>> = {
  /** CoOp / CoCoOp / CLIPping: RandomResizedCrop(0.08–1) + flip; eval resize + center crop; CLIP stats. */
  clip: { train: { ...TRAIN_DEFAULTS, normalize: 'clip' }, eval: { crop: 'center', normalize: 'clip' } },
  /** UFD: resize 256 → random crop + flip + blur(p .5, σ 0–3) + JPEG(p .5, q 30–100); eval center crop, no resize. */
  ufd: {
    train: { crop: 'random', resize: 256, flip: 0.5, blur: { p: 0.5, sigma: [0, 3] }, jpeg: { p: 0.5, quality: [30, 100] }, normalize: 'clip' },
    eval: { crop: 'center', resize: 0, normalize: 'clip' },
  },
  /** DF40's CLIP detector: resize to size, flip, blur k3–7 (p .5), JPEG 40–100 (p .5), mean = std = 0.5. */
  df40: {
    train: { crop: 'squash', flip: 0.5, blur: { p: 0.5, sigma: [cv2Sigma(3), cv2Sigma(7)] }, jpeg: { p: 0.5, quality: [40, 100] }, normalize: 'half' },
    eval: { crop: 'squash', normalize: 'half' },
  },
  /** CLaRE: DF40's recipe plus PNG→JPEG q95 on every PNG, train and test. */
  clare: {
    train: { crop: 'squash', flip: 0.5, blur: { p: 0.5, sigma: [cv2Sigma(3), cv2Sigma(7)] }, jpeg: { p: 0.5, quality: [40, 100] }, pngToJpeg: true, normalize: 'half' },
    eval: { crop: 'squash', pngToJpeg: true, normalize: 'half' },
  },
  /** LaRE stage 2: RandomResizedCrop(0.8–1, ratio 0.95–1.05) + blur + flip; ImageNet stats. */
  lare: {
    train: { crop: 'random-resized', scale: [0.8, 1], ratio: [0.95, 1.05], flip: 0.5, blur: { p: 0.5, sigma: [cv2Sigma(3), cv2Sigma(7)] }, normalize: 'imagenet' },
    eval: { crop: 'center', normalize: 'imagenet' },
  },
};
