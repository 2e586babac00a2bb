/**
 * CLIP's eval preprocessing: decode with sharp (alpha composited on white and grey expanded to RGB, as
 * transformers' `convert_to_rgb`), shorter side to `size` with bicubic resampling, center crop `size`,
 * `/255`, CLIP mean/std, NCHW float32.
 *
 * `resample: 'pil'` (default) resizes with a port of Pillow's bicubic filter and matches
 * `CLIPImageProcessor` to the byte; `'sharp'` uses libvips' cubic kernel, faster on large images, and
 * differs by a few grey levels (see the README for the measured difference).
 */
import sharp from 'sharp';
import { CLIP_MEAN, CLIP_STD } from './clip-encoder.js';
import { resizeBicubicPil } from './pil-resample.js';

export interface ClipPreprocessOptions {
  /** Output side (crop size); the shorter side is resized to it first. Default 224. */
  size?: number;
  resample?: 'pil' | 'sharp';
  mean?: [number, number, number];
  std?: [number, number, number];
}

export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
}

function describe(input: string | Buffer): string {
  return typeof input === 'string' ? input : `<buffer of ${input.length} bytes>`;
}

/** Decodes to 8-bit RGB, interleaved. */
export async function decodeRgb(input: string | Buffer): Promise<DecodedImage> {
  try {
    const { data, info } = await sharp(input, { failOn: 'error' })
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
  } catch (error) {
    throw new ImageDecodeError(
      `cannot decode image ${describe(input)}: ${(error as Error).message}. Use a JPEG, PNG, WebP, TIFF or GIF file, or remove it from the list`,
    );
  }
}

/** Output size of "shorter side to `size`", as transformers computes it (the longer side truncated). */
export function shortestEdgeSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.trunc((size * height) / width) };
  return { width: Math.trunc((size * width) / height), height: size };
}

/** Resize + center crop to `size×size` 8-bit RGB (interleaved). */
export async function clipResizeCrop(input: string | Buffer, size = 224, resample: 'pil' | 'sharp' = 'pil'): Promise<Uint8Array> {
  const decoded = await decodeRgb(input);
  const target = shortestEdgeSize(decoded.width, decoded.height, size);
  const top = Math.trunc((target.height - size) / 2);
  const left = Math.trunc((target.width - size) / 2);
  let resized: Uint8Array;
  if (resample === 'pil') {
    resized = resizeBicubicPil(decoded.data, decoded.width, decoded.height, 3, target.width, target.height);
  } else {
    const buffer = await sharp(decoded.data, { raw: { width: decoded.width, height: decoded.height, channels: 3 } })
      .resize(target.width, target.height, { kernel: 'cubic', fit: 'fill' })
      .raw()
      .toBuffer();
    resized = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const from = ((y + top) * target.width + left) * 3;
    out.set(resized.subarray(from, from + size * 3), y * size * 3);
  }
  return out;
}

/** Interleaved 8-bit RGB → normalised planar float32 (CHW), written into `out` at `offset`. */
export function normalizeToChw(
  rgb: Uint8Array,
  size: number,
  mean: [number, number, number] = CLIP_MEAN,
  std: [number, number, number] = CLIP_STD,
  out = new Float32Array(3 * size * size),
  offset = 0,
): Float32Array {
  const plane = size * size;
  for (let c = 0; c < 3; c++) {
    const m = mean[c]!;
    const s = std[c]!;
    for (let i = 0; i < plane; i++) out[offset + c * plane + i] = (rgb[i * 3 + c]! / 255 - m) / s;
  }
  return out;
}

/** One image → `[3, size, size]` float32, CLIP-normalised. */
export async function clipPreprocess(input: string | Buffer, options: ClipPreprocessOptions = {}): Promise<Float32Array> {
  const size = options.size ?? 224;
  const rgb = await clipResizeCrop(input, size, options.resample ?? 'pil');
  return normalizeToChw(rgb, size, options.mean, options.std);
}

/** Several images → `[B, 3, size, size]` float32 (NCHW, the layout of `Encoder.encodeImage`). */
export async function clipPreprocessBatch(inputs: Array<string | Buffer>, options: ClipPreprocessOptions = {}): Promise<Float32Array> {
  const size = options.size ?? 224;
  const out = new Float32Array(inputs.length * 3 * size * size);
  const crops = await Promise.all(inputs.map((input) => clipResizeCrop(input, size, options.resample ?? 'pil')));
  crops.forEach((rgb, i) => normalizeToChw(rgb, size, options.mean, options.std, out, i * 3 * size * size));
  return out;
}
