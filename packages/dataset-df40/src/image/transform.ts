/**
 * Transform specs and plans. A spec says what may happen (crop kind, flip probability, blur and JPEG
 * ranges ...); a plan is one draw of it for one image — plain numbers from a seeded `Rng`, so the same
 * seed gives the same plan, the plan can be logged, and boxes follow the exact same geometry.
 *
 * Geometry follows torchvision: `Resize(n)` scales the shorter side to n and the longer to
 * int(n·long/short); `CenterCrop` offsets are round((H−h)/2) (Python rounding); `RandomResizedCrop`
 * draws area and log-ratio with 10 attempts, then falls back to a ratio-clamped central crop.
 */
import { z } from 'zod';
import type { FaceBox, Rng } from '@dfd/core';
import { NORMALIZATION } from './normalize.js';

const range = z.tuple([z.number(), z.number()]);

export const TransformSpecSchema = z
  .object({
    /** Output side (square). */
    size: z.number().int().positive().default(224),
    /** Shorter side after the resize step; default `size`; 0 = no resize (crop straight from the image). */
    resize: z.number().int().min(0).optional(),
    /** `center` / `random` crop of `size` after the resize, `random-resized` (scale, ratio), `squash` to size×size. */
    crop: z.enum(['center', 'random', 'random-resized', 'squash']).default('center'),
    /** RandomResizedCrop area fraction and aspect-ratio ranges (Dassl/torchvision defaults). */
    scale: range.default([0.08, 1]),
    ratio: range.default([3 / 4, 4 / 3]),
    /** Probability of a horizontal flip. */
    flip: z.number().min(0).max(1).default(0),
    /** Gaussian blur with σ ∈ range, applied with probability p (after the geometry). */
    blur: z.object({ p: z.number().min(0).max(1), sigma: range }).strict().default({ p: 0, sigma: [0, 3] }),
    /** JPEG re-encode with quality ∈ [lo, hi], with probability p (after blur). */
    jpeg: z.object({ p: z.number().min(0).max(1), quality: range }).strict().default({ p: 0, quality: [30, 100] }),
    /** Re-encode PNG sources as JPEG q95 before anything else (format-bias removal, CLaRE). */
    pngToJpeg: z.boolean().default(false),
    normalize: z
      .union([
        z.enum(Object.keys(NORMALIZATION) as [keyof typeof NORMALIZATION, ...Array<keyof typeof NORMALIZATION>]),
        z.object({ mean: z.array(z.number()).length(3), std: z.array(z.number()).length(3) }).strict(),
      ])
      .default('clip'),
  })
  .strict();

export type TransformSpec = z.output<typeof TransformSpecSchema>;
export type TransformSpecInput = z.input<typeof TransformSpecSchema>;

export interface Rect {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface TransformPlan {
  source: { width: number; height: number };
  /** Region cut from the source before resizing (random-resized crop). */
  pre?: Rect;
  /** Size the (pre-cut) image is resized to. */
  resize: { width: number; height: number };
  /** Region cut after resizing (center/random crop). */
  post?: Rect;
  output: { width: number; height: number };
  flip: boolean;
  /** 0 = no blur. */
  blurSigma: number;
  /** 0 = no JPEG re-encode. */
  jpegQuality: number;
}

export function parseTransformSpec(input: TransformSpecInput = {}): TransformSpec {
  return TransformSpecSchema.parse(input);
}

/** Python's round(): half to even. */
export function pyRound(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff === 0.5) return floor % 2 === 0 ? floor : floor + 1;
  return Math.round(x);
}

/** torchvision `Resize(n)` on a width×height image. */
export function shorterSideSize(width: number, height: number, n: number): { width: number; height: number } {
  if (width <= height) return { width: n, height: Math.trunc((n * height) / width) };
  return { width: Math.trunc((n * width) / height), height: n };
}

/** torchvision `RandomResizedCrop.get_params`. */
export function randomResizedCropRect(width: number, height: number, scale: [number, number], ratio: [number, number], rng: Rng): Rect {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logRatio[0], logRatio[1]));
    const w = pyRound(Math.sqrt(targetArea * aspect));
    const h = pyRound(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { left: rng.int(width - w + 1), top: rng.int(height - h + 1), width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(...ratio)) h = pyRound(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = pyRound(h * Math.max(...ratio));
  return { left: Math.trunc((width - w) / 2), top: Math.trunc((height - h) / 2), width: w, height: h };
}

/** One draw of `spec` for a width×height source. Draw order is fixed, so plans are reproducible. */
export function planTransform(spec: TransformSpec, width: number, height: number, rng: Rng): TransformPlan {
  const size = spec.size;
  let pre: Rect | undefined;
  let post: Rect | undefined;
  let resize = { width, height };
  if (spec.crop === 'random-resized') {
    pre = randomResizedCropRect(width, height, spec.scale, spec.ratio, rng);
    resize = { width: size, height: size };
  } else if (spec.crop === 'squash') {
    resize = { width: size, height: size };
  } else {
    const target = spec.resize === undefined ? size : spec.resize;
    if (target > 0) resize = shorterSideSize(width, height, target);
    // A crop larger than the image would need padding; scale up instead so the crop fits.
    if (resize.width < size || resize.height < size) resize = shorterSideSize(resize.width, resize.height, size);
    if (spec.crop === 'center') {
      post = {
        left: pyRound((resize.width - size) / 2),
        top: pyRound((resize.height - size) / 2),
        width: size,
        height: size,
      };
    } else {
      post = { left: rng.int(resize.width - size + 1), top: rng.int(resize.height - size + 1), width: size, height: size };
    }
  }
  const flip = spec.flip > 0 && rng.bernoulli(spec.flip);
  const blurOn = spec.blur.p > 0 && rng.bernoulli(spec.blur.p);
  const blurSigma = blurOn ? rng.uniform(spec.blur.sigma[0], spec.blur.sigma[1]) : 0;
  const jpegOn = spec.jpeg.p > 0 && rng.bernoulli(spec.jpeg.p);
  const [qLo, qHi] = [Math.round(spec.jpeg.quality[0]), Math.round(spec.jpeg.quality[1])];
  const jpegQuality = jpegOn ? Math.min(100, Math.max(1, qLo + rng.int(qHi - qLo + 1))) : 0;
  if (pre && pre.width === width && pre.height === height) pre = undefined;
  if (post && post.left === 0 && post.top === 0 && post.width === resize.width && post.height === resize.height) post = undefined;
  return {
    source: { width, height },
    ...(pre ? { pre } : {}),
    resize,
    ...(post ? { post } : {}),
    output: { width: size, height: size },
    flip,
    blurSigma,
    jpegQuality,
  };
}

/** Maps boxes from source pixels through the plan's cut, resize, cut and flip; clipped to the output. */
export function transformBoxes(boxes: readonly FaceBox[], plan: TransformPlan): FaceBox[] {
  const pre = plan.pre ?? { left: 0, top: 0, width: plan.source.width, height: plan.source.height };
  const sx = plan.resize.width / pre.width;
  const sy = plan.resize.height / pre.height;
  const post = plan.post ?? { left: 0, top: 0 };
  const W = plan.output.width;
  const H = plan.output.height;
  const clamp = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  return boxes.map((b) => {
    let x1 = (b.x1 - pre.left) * sx - post.left;
    let x2 = (b.x2 - pre.left) * sx - post.left;
    const y1 = (b.y1 - pre.top) * sy - post.top;
    const y2 = (b.y2 - pre.top) * sy - post.top;
    if (plan.flip) [x1, x2] = [W - x2, W - x1];
    return { region: b.region, x1: clamp(x1, W), y1: clamp(y1, H), x2: clamp(x2, W), y2: clamp(y2, H) };
  });
}
