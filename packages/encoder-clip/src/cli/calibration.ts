/**
 * The calibration set of `dfd encode --precision int8 --calibrate N`: N images drawn evenly from the whole
 * image list (not the shard, so every Slurm array task calibrates the same graph), preprocessed by the
 * command's own pixel source, so the ranges are those of the pixels that will be encoded.
 */
import type { EncoderInfo } from '@dfd/core';
import { calibrationSet, type CalibrationSet } from '../onnx-build/calibrate.js';
import { concatFloat32 } from '../float32.js';
import type { PixelSource, SkippedImage } from './pixel-sources.js';

/** `count` paths spread evenly over `paths` (all of them when the list is shorter); deterministic. */
export function drawCalibrationImages(paths: readonly string[], count: number): string[] {
  if (count >= paths.length) return [...paths];
  return Array.from({ length: count }, (_, i) => paths[Math.floor(((i + 0.5) * paths.length) / count)]!);
}

export async function calibrationImages(
  paths: string[],
  source: PixelSource,
  info: EncoderInfo,
  log: (message: string) => void,
): Promise<CalibrationSet> {
  const skipped: SkippedImage[] = [];
  const parts: Float32Array[] = [];
  let images = 0;
  for await (const { good, pixels } of source(paths, 16, info, skipped)) {
    parts.push(pixels);
    images += good.length;
  }
  if (skipped.length) log(`calibration: ${skipped.length} of ${paths.length} drawn images could not be read and are left out of the calibration set`);
  if (images === 0) throw new Error(`calibration: none of the ${paths.length} drawn images could be read (first: ${skipped[0]?.path}: ${skipped[0]?.reason})`);
  return calibrationSet(concatFloat32(parts), images);
}
