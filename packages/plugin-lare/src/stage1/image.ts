/**
 * LaRE's image preparation, as `extract_lare.py` does it with Pillow:
 * `Image.open(path).convert('RGB').resize((size, size))` (Pillow's default filter for RGB, bicubic; the
 * aspect ratio is not kept) then `(PILToTensor(img) / 255.0 - 0.5) * 2` → `[3, size, size]` float32.
 *
 * Decoding follows `convert('RGB')` rather than colour management: alpha is dropped (not composited),
 * grey is replicated, and CMYK uses Pillow's formula `R = (255 − K) − (C·(255 − K))/255` on the stored
 * CMYK values, not an ICC transform (libvips' default would give different colours).
 */
import sharp from 'sharp';
import { resizeBicubicPil } from '@dfd/encoder-clip';

export class LareImageError extends Error {
  override name = 'LareImageError';
}

export interface RgbImage {
  /** Interleaved 8-bit RGB. */
  data: Uint8Array;
  width: number;
  height: number;
}

/** Pillow's MULDIV255: a·b/255 rounded, in integers. */
function mulDiv255(a: number, b: number): number {
  const tmp = a * b + 128;
  return ((tmp >> 8) + tmp) >> 8;
}

function cmykToRgb(cmyk: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    const nk = 255 - cmyk[i * 4 + 3]!;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.max(0, nk - mulDiv255(cmyk[i * 4 + c]!, nk));
  }
  return out;
}

function toRgb(data: Uint8Array, channels: number, pixels: number): Uint8Array {
  if (channels === 3) return data;
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    if (channels <= 2) {
      const g = data[i * channels]!;
      out[i * 3] = g;
      out[i * 3 + 1] = g;
      out[i * 3 + 2] = g;
    } else {
      out[i * 3] = data[i * channels]!;
      out[i * 3 + 1] = data[i * channels + 1]!;
      out[i * 3 + 2] = data[i * channels + 2]!;
    }
  }
  return out;
}

/** Decodes like `Image.open(...).convert('RGB')`. `where` names the file in errors. */
export async function decodeRgbLikePil(bytes: Uint8Array, where: string): Promise<RgbImage> {
  try {
    const meta = await sharp(bytes, { failOn: 'error' }).metadata();
    const cmyk = meta.space === 'cmyk';
    const pipeline = cmyk ? sharp(bytes, { failOn: 'error' }).pipelineColourspace('cmyk').toColourspace('cmyk') : sharp(bytes, { failOn: 'error' });
    const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const pixels = info.width * info.height;
    const rgb = cmyk ? cmykToRgb(raw, pixels) : toRgb(raw, info.channels, pixels);
    return { data: rgb, width: info.width, height: info.height };
  } catch (error) {
    throw new LareImageError(`cannot decode image ${where}: ${(error as Error).message.split('\n')[0]}; it is listed as skipped, not given a map`);
  }
}

/** `[3, size, size]` float32 in [−1, 1] written into `out` at `offset` (LaRE's resize and scaling). */
export function larePixels(image: RgbImage, size: number, out = new Float32Array(3 * size * size), offset = 0): Float32Array {
  const resized = resizeBicubicPil(image.data, image.width, image.height, 3, size, size);
  const plane = size * size;
  const f32 = Math.fround;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) out[offset + c * plane + i] = f32(f32(f32(resized[i * 3 + c]! / 255) - 0.5) * 2);
  }
  return out;
}
