/**
 * Calibration for static int8: the fp32 tower is built once more with a probe on every Linear input (its
 * per-channel minimum and maximum over the batch, `probeRanges`), the calibration images are run through
 * it, and the ranges are kept over the whole set (min-max calibration, onnxruntime's default for static
 * quantisation; per channel so SmoothQuant can use them too). The probe graph is a temporary file.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import type { SafetensorsFile } from '@dfd/core';
import type { ClipConfig } from '../config.js';
import { OnnxGraphBuilder } from './graph-builder.js';
import { probeOutputs, writeClipVisionGraph } from './clip-vision-graph.js';
import type { ChannelRanges } from './static-int8.js';

/** Preprocessed calibration images (`[images, 3, S, S]`, the encoder's own preprocessing) and their digest. */
export interface CalibrationSet {
  images: number;
  pixels: Float32Array;
  /** SHA-256 of the pixels: two sets with the same digest calibrate to the same graph. */
  sha256: string;
}

/** Wraps preprocessed pixels as a calibration set (the digest covers the exact floats the ranges come from). */
export function calibrationSet(pixels: Float32Array, images: number): CalibrationSet {
  if (images < 1 || pixels.length % images !== 0) throw new Error(`calibration: ${pixels.length} floats do not hold ${images} images`);
  const sha256 = createHash('sha256').update(new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength)).digest('hex');
  return { images, pixels, sha256 };
}

const CALIBRATION_BATCH = 8;

export async function calibrateChannelRanges(
  file: SafetensorsFile,
  config: ClipConfig,
  probePath: string,
  set: CalibrationSet,
  threads?: number,
): Promise<Map<string, ChannelRanges>> {
  const size = config.vision.imageSize;
  const perImage = 3 * size * size;
  if (set.pixels.length !== set.images * perImage) {
    throw new Error(`calibration: ${set.images} images of [3, ${size}, ${size}] need ${set.images * perImage} floats, got ${set.pixels.length}`);
  }
  const builder = await OnnxGraphBuilder.create(`${probePath}.onnx`);
  try {
    await writeClipVisionGraph(builder, file, config, 'fp32', { probeRanges: true });
    await builder.finish({}, 'clip_vision_calibration');
  } catch (error) {
    await builder.abort();
    throw error;
  }
  const session = await ort.InferenceSession.create(`${probePath}.onnx`, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    ...(threads ? { intraOpNumThreads: threads } : {}),
  });
  try {
    const prefix = probeOutputs('').min;
    const probes = session.outputNames.filter((name) => name.startsWith(prefix)).map((name) => name.slice(prefix.length));
    const ranges = new Map<string, ChannelRanges>();
    const wanted = probes.flatMap((name) => Object.values(probeOutputs(name)));
    for (let start = 0; start < set.images; start += CALIBRATION_BATCH) {
      const count = Math.min(CALIBRATION_BATCH, set.images - start);
      const input = new ort.Tensor('float32', set.pixels.subarray(start * perImage, (start + count) * perImage), [count, 3, size, size]);
      const outputs = await session.run({ pixel_values: input }, wanted);
      for (const name of probes) {
        const min = outputs[probeOutputs(name).min]!.data as Float32Array;
        const max = outputs[probeOutputs(name).max]!.data as Float32Array;
        const range = ranges.get(name);
        if (!range) ranges.set(name, { min: min.slice(), max: max.slice() });
        else {
          for (let j = 0; j < min.length; j++) range.min[j] = Math.min(range.min[j]!, min[j]!);
          for (let j = 0; j < max.length; j++) range.max[j] = Math.max(range.max[j]!, max[j]!);
        }
      }
    }
    for (const [name, range] of ranges) {
      if (!range.min.every(Number.isFinite) || !range.max.every(Number.isFinite)) {
        throw new Error(`calibration: the input of '${name}' is not finite on the calibration images (NaN or inf activations); check the weights`);
      }
    }
    return ranges;
  } finally {
    await session.release();
    await rm(`${probePath}.onnx`, { force: true });
    await rm(`${probePath}.onnx.data`, { force: true });
  }
}
