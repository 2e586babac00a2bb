/**
 * CLIP preprocessing against transformers' CLIPImageProcessor (torchvision backend, the default in
 * transformers 5) and CLIPImageProcessorPil, on the fixture images. Measured: the default (Pillow port)
 * equals CLIPImageProcessorPil byte for byte and differs from the torchvision backend by at most one grey
 * level on ~0.5 % of values (0.015 after normalisation, under the 0.02). libvips' cubic kernel
 * (`resample: 'sharp'`) is further off (up to 3 levels when downscaling, up to 39 when upscaling), so it
 * is only a documented fast option.
 */
import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import type { NamedTensor } from '@dfd/core';
import { clipPreprocess, clipPreprocessBatch, clipResizeCrop, ImageDecodeError, CLIP_STD, shortestEdgeSize } from '@dfd/encoder-clip';
import { FIXTURES, f32, maxAbsDiff, reference } from './helpers.js';

const DIR = `${FIXTURES}preprocess/`;
const IMAGES = ['landscape.jpg', 'portrait.png', 'square.jpg', 'small-gray.png', 'rgba.png'];

/** Interleaved HWC → the processor's CHW. */
function toChw(rgb: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(rgb.length);
  for (let i = 0; i < size * size; i++) for (let c = 0; c < 3; c++) out[c * size * size + i] = rgb[i * 3 + c]!;
  return out;
}

describe('clipPreprocess vs CLIPImageProcessor', () => {
  let ref: Record<string, NamedTensor>;
  beforeAll(async () => {
    ref = await reference(`${DIR}reference.safetensors`);
  });

  it('computes the resize target as transformers does', () => {
    expect(shortestEdgeSize(500, 333, 224)).toEqual({ width: 336, height: 224 });
    expect(shortestEdgeSize(240, 360, 224)).toEqual({ width: 224, height: 336 });
  });

  for (const name of IMAGES) {
    it(`${name}: equals CLIPImageProcessorPil, within 0.02 (normalised) of CLIPImageProcessor`, async () => {
      const pil = toChw(await clipResizeCrop(`${DIR}${name}`, 224, 'pil'), 224);
      const viaPil = ref[`${name}:pil`]!.data as Uint8Array;
      const viaTorchvision = ref[`${name}:torchvision`]!.data as Uint8Array;
      expect(maxAbsDiff(pil, viaPil)).toBe(0);
      // Worst channel: the smallest std turns one grey level into the largest normalised step.
      expect(maxAbsDiff(pil, viaTorchvision) / 255 / Math.min(...CLIP_STD)).toBeLessThan(0.02);
      // libvips: a sanity bound on the mean only (see the header for its measured maxima).
      const vips = toChw(await clipResizeCrop(`${DIR}${name}`, 224, 'sharp'), 224);
      let sum = 0;
      for (let i = 0; i < vips.length; i++) sum += Math.abs(vips[i]! - viaPil[i]!);
      expect(sum / vips.length).toBeLessThan(5);
    });
  }

  it('normalises with /255 and CLIP mean/std exactly as the processors do', async () => {
    const ours = await clipPreprocess(`${DIR}landscape.jpg`);
    expect(ours.length).toBe(3 * 224 * 224);
    for (const [backend, bound] of [['pil', 1e-5], ['torchvision', 0.02]] as const) {
      const expected = f32(ref[`landscape.jpg:${backend}:normalized`]); // [3, 32, 224]
      const head = new Float32Array(expected.length);
      for (let c = 0; c < 3; c++) head.set(ours.subarray(c * 224 * 224, c * 224 * 224 + 32 * 224), c * 32 * 224);
      expect(maxAbsDiff(head, expected)).toBeLessThan(bound);
    }
  });

  it('batches images NCHW from paths and buffers', async () => {
    const buffer = await readFile(`${DIR}square.jpg`);
    const batch = await clipPreprocessBatch([`${DIR}square.jpg`, buffer], { size: 64 });
    expect(batch.length).toBe(2 * 3 * 64 * 64);
    expect(maxAbsDiff(batch.subarray(0, 3 * 64 * 64), batch.subarray(3 * 64 * 64))).toBe(0);
  });

  it('names the file and the fix when an image cannot be decoded', async () => {
    await expect(clipPreprocess(`${DIR}reference.safetensors`)).rejects.toThrow(ImageDecodeError);
    await expect(clipPreprocess(`${DIR}missing.jpg`)).rejects.toThrow(/missing\.jpg/);
  });
});
