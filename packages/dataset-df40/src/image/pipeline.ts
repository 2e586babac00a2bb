/**
 * The sharp side of the pipeline: decode (PNG/JPEG/WebP), optional PNG→JPEG q95, cut/resize (bicubic)/cut,
 * blur, JPEG re-encode, and RGB uint8 out; then normalised CHW float32. No tfjs here, so a feature cache
 * can take the deterministic eval view as a plain Float32Array.
 *
 * Downsizing uses sharp's `cubic` kernel (Catmull-Rom, a = −0.5, antialiased: PIL's BICUBIC) with
 * shrink-on-load off, so JPEG sources are resampled from full resolution as PIL does; enlarging uses a
 * centre-aligned bicubic affine (see `upsampleCentred`). Parity with PIL: test/pipeline.test.ts.
 */
import { readFile } from 'node:fs/promises';
import sharp, { type Sharp } from 'sharp';
import type { FaceBox, Rng } from '@dfd/core';
import { rngFor } from '@dfd/core';
import { hwcToChw, normalizationOf } from './normalize.js';
import { planTransform, transformBoxes, type TransformPlan, type TransformSpec } from './transform.js';

export type ImageInput = string | Buffer;

export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
  /** What went wrong, without the path. */
  readonly reason: string;
  constructor(readonly path: string, cause: unknown) {
    const reason = cause instanceof ImageDecodeError ? cause.reason : ((cause as Error)?.message ?? String(cause));
    super(`cannot decode image ${path}: ${reason}`);
    this.reason = reason;
  }
}

export interface RgbImage {
  /** HWC RGB uint8. */
  data: Uint8Array;
  width: number;
  height: number;
  plan: TransformPlan;
}

function describe(input: ImageInput): string {
  return typeof input === 'string' ? input : `(buffer of ${input.length} bytes)`;
}

/** Width, height and format from the header (does not decode pixels). */
export async function imageInfo(input: ImageInput): Promise<{ width: number; height: number; format: string }> {
  try {
    const meta = await sharp(input).metadata();
    if (!meta.width || !meta.height) throw new Error('no dimensions in header');
    return { width: meta.width, height: meta.height, format: meta.format ?? 'unknown' };
  } catch (error) {
    throw new ImageDecodeError(describe(input), error);
  }
}

/** Fully decodes an image (truncated or corrupt files fail here, not later). */
export async function decodeCheck(input: ImageInput): Promise<{ width: number; height: number }> {
  try {
    const { info } = await sharp(input).raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height };
  } catch (error) {
    throw new ImageDecodeError(describe(input), error);
  }
}

/** Runs one planned transform; `rng` draws the plan. Returns RGB uint8 of the output size. */
export async function transformImage(input: ImageInput, spec: TransformSpec, rng: Rng): Promise<RgbImage> {
  try {
    // Read once: header, optional PNG→JPEG and the pipeline all work on the same bytes.
    const bytes = typeof input === 'string' ? await readFile(input) : input;
    const info = await imageInfo(bytes);
    let source: ImageInput = bytes;
    if (spec.pngToJpeg && info.format === 'png') {
      source = await sharp(bytes).removeAlpha().jpeg({ quality: 95 }).toBuffer();
    }
    const plan = planTransform(spec, info.width, info.height, rng);
    const current = plan.pre ? { width: plan.pre.width, height: plan.pre.height } : { width: info.width, height: info.height };
    let pipe: Sharp;
    if (plan.resize.width > current.width && plan.resize.height > current.height) {
      const up = await upsampleCentred(source, plan.pre, current, plan.resize);
      pipe = sharp(up.data, { raw: { width: up.width, height: up.height, channels: up.channels } });
    } else {
      pipe = sharp(source);
      if (plan.pre) pipe = pipe.extract(plan.pre);
      if (plan.resize.width !== current.width || plan.resize.height !== current.height) {
        pipe = pipe.resize(plan.resize.width, plan.resize.height, { kernel: 'cubic', fit: 'fill', fastShrinkOnLoad: false });
      }
    }
    if (plan.post) pipe = pipe.extract(plan.post);
    // sharp's blur needs σ ≥ 0.3; below that a Gaussian is the identity at 8-bit precision anyway.
    if (plan.blurSigma >= 0.3) pipe = pipe.blur(plan.blurSigma);
    pipe = pipe.removeAlpha().toColourspace('srgb');
    if (plan.jpegQuality > 0) {
      const jpeg = await pipe.jpeg({ quality: plan.jpegQuality }).toBuffer();
      pipe = sharp(jpeg).removeAlpha().toColourspace('srgb');
    }
    const { data, info: out } = await pipe.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    const rgb = out.channels === 3 ? data : toRgb(data, out.width * out.height, out.channels);
    if (out.width !== plan.output.width || out.height !== plan.output.height) {
      throw new Error(`pipeline produced ${out.width}×${out.height}, planned ${plan.output.width}×${plan.output.height}`);
    }
    return { data: rgb, width: out.width, height: out.height, plan };
  } catch (error) {
    throw new ImageDecodeError(describe(input), error);
  }
}

const UPSAMPLE_PAD = 3;

/**
 * Bicubic upsampling with pixel centres aligned as PIL and torchvision do (x_in = (x_out + 0.5)/s − 0.5).
 * sharp's resize ignores the kernel when enlarging and aligns differently (mean error ~7/255 against PIL on
 * a detailed image); an affine transform with half-pixel offsets on an edge-replicated copy matches PIL to
 * ~0.15/255 (tools/fixtures/df40).
 */
async function upsampleCentred(
  source: ImageInput,
  pre: TransformPlan['pre'],
  current: { width: number; height: number },
  target: { width: number; height: number },
): Promise<{ data: Buffer; width: number; height: number; channels: 3 | 4 | 1 | 2 }> {
  let cut = sharp(source);
  if (pre) cut = cut.extract(pre);
  const padded = await cut
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true })
    .then(({ data, info }) =>
      sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
        .extend({ top: UPSAMPLE_PAD, bottom: UPSAMPLE_PAD, left: UPSAMPLE_PAD, right: UPSAMPLE_PAD, extendWith: 'copy' })
        .raw()
        .toBuffer({ resolveWithObject: true }),
    );
  const sx = target.width / current.width;
  const sy = target.height / current.height;
  const { data, info } = await sharp(padded.data, { raw: { width: padded.info.width, height: padded.info.height, channels: padded.info.channels } })
    .affine([sx, 0, 0, sy], {
      idx: 0.5 - UPSAMPLE_PAD,
      idy: 0.5 - UPSAMPLE_PAD,
      odx: -0.5,
      ody: -0.5,
      interpolator: sharp.interpolators.bicubic,
    })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width < target.width || info.height < target.height) {
    throw new Error(`upsampling produced ${info.width}×${info.height}, smaller than ${target.width}×${target.height}`);
  }
  const exact = await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
    .extract({ left: 0, top: 0, width: target.width, height: target.height })
    .raw()
    .toBuffer();
  return { data: exact, width: target.width, height: target.height, channels: info.channels as 3 };
}

function toRgb(data: Uint8Array, pixels: number, channels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    for (let c = 0; c < 3; c++) out[i * 3 + c] = data[i * channels + (channels >= 3 ? c : 0)]!;
  }
  return out;
}

export interface PreparedImage {
  /** CHW float32, normalised. */
  pixels: Float32Array;
  width: number;
  height: number;
  plan: TransformPlan;
  /** The input boxes mapped into output pixels (when boxes were given). */
  boxes?: FaceBox[];
}

/**
 * Decode + transform + normalise one image. `out`/`offset` let a batch write in place. The flip is applied
 * while converting to CHW, and boxes follow the same plan.
 */
export async function prepareImage(
  input: ImageInput,
  spec: TransformSpec,
  rng: Rng,
  options: { boxes?: readonly FaceBox[]; out?: Float32Array; offset?: number } = {},
): Promise<PreparedImage> {
  const image = await transformImage(input, spec, rng);
  const pixels = hwcToChw(image.data, image.width, image.height, 3, normalizationOf(spec.normalize), image.plan.flip, options.out, options.offset);
  return {
    pixels,
    width: image.width,
    height: image.height,
    plan: image.plan,
    ...(options.boxes ? { boxes: transformBoxes(options.boxes, image.plan) } : {}),
  };
}

/**
 * The deterministic eval view of an image as CHW float32 (no tfjs): what a feature cache stores. An eval
 * spec draws nothing random, but a fixed rng keeps even a random spec reproducible.
 */
export async function evalView(input: ImageInput, spec: TransformSpec): Promise<Float32Array> {
  return (await prepareImage(input, spec, rngFor(0, 'eval-view'))).pixels;
}
