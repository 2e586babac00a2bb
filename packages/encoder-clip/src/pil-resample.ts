/**
 * Pillow's bicubic resampling (libImaging/Resample.c) on 8-bit interleaved pixels, reproduced operation for
 * operation: support scaled by the downscale factor (antialiasing), coefficients normalised per output pixel
 * and quantised to 22 fractional bits, horizontal pass first with an 8-bit intermediate, then vertical.
 * `CLIPImageProcessor` resizes with Pillow (or with torchvision's uint8 path, which follows the same
 * algorithm), so this gives the same bytes where libvips' cubic kernel differs by a few levels.
 */
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Coefficients {
  ksize: number;
  bounds: Int32Array;
  /** Fixed-point coefficients, `ksize` per output pixel. */
  kk: Int32Array;
}

function precompute(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    // C's (int) cast truncates toward zero.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubic((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      const value = x < xmax && ww !== 0 ? k[x]! / ww : 0;
      kk[xx * ksize + x] = value < 0 ? Math.trunc(-0.5 + value * ONE) : Math.trunc(0.5 + value * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(value: number): number {
  if (value >= ONE * 256) return 255;
  if (value <= 0) return 0;
  return Math.floor(value / ONE);
}

/** Resizes `channels`-interleaved uint8 pixels from `width×height` to `outWidth×outHeight`. */
export function resizeBicubicPil(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  const needH = outWidth !== width;
  const needV = outHeight !== height;
  const horiz = precompute(width, outWidth);
  const vert = precompute(height, outHeight);
  let current = src;
  let curWidth = width;
  let rowOffset = 0;
  let rows = height;
  if (needH) {
    // Only the rows the vertical pass will read.
    const first = needV ? vert.bounds[0]! : 0;
    const last = needV ? vert.bounds[(outHeight - 1) * 2]! + vert.bounds[(outHeight - 1) * 2 + 1]! : height;
    rows = last - first;
    const tmp = new Uint8Array(outWidth * rows * channels);
    const { ksize, bounds, kk } = horiz;
    for (let y = 0; y < rows; y++) {
      const inRow = (y + first) * width * channels;
      const outRow = y * outWidth * channels;
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = bounds[xx * 2]!;
        const xmax = bounds[xx * 2 + 1]!;
        const kBase = xx * ksize;
        for (let c = 0; c < channels; c++) {
          let ss = ONE / 2;
          for (let x = 0; x < xmax; x++) ss += src[inRow + (x + xmin) * channels + c]! * kk[kBase + x]!;
          tmp[outRow + xx * channels + c] = clip8(ss);
        }
      }
    }
    current = tmp;
    curWidth = outWidth;
    rowOffset = first;
  }
  if (!needV) return current === src ? src.slice() : current;
  const out = new Uint8Array(outWidth * outHeight * channels);
  const { ksize, bounds, kk } = vert;
  const stride = curWidth * channels;
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = bounds[yy * 2]! - (needH ? rowOffset : 0);
    const ymax = bounds[yy * 2 + 1]!;
    const kBase = yy * ksize;
    const outRow = yy * outWidth * channels;
    for (let i = 0; i < outWidth * channels; i++) {
      let ss = ONE / 2;
      for (let y = 0; y < ymax; y++) ss += current[(y + ymin) * stride + i]! * kk[kBase + y]!;
      out[outRow + i] = clip8(ss);
    }
  }
  void rows;
  return out;
}
