/**
 * Where `dfd encode` gets its pixels: CLIP's eval transform with the Pillow-bicubic port (default), or a
 * loader preset's eval view built by core's `evalViewLoader` — the feature cache's own path (`--preset`).
 */
import {
  ensureBackend,
  evalViewLoader,
  evalViewPixels,
  ExperimentContainer,
  UsageError,
  type CliIO,
  type EncoderInfo,
  type EvalPixels,
  type FrozenEncoderContext,
} from '@dfd/core';
import { clipResizeCrop, normalizeToChw } from '../preprocess.js';

export interface SkippedImage {
  path: string;
  reason: string;
}

export interface PixelBatch {
  /** Images consumed (good and skipped). */
  chunk: number;
  good: string[];
  pixels: Float32Array;
}
export type PixelSource = ((paths: string[], batch: number, info: EncoderInfo, skipped: SkippedImage[]) => AsyncIterable<PixelBatch>) & {
  preprocessing: Record<string, unknown>;
};

/** The default: CLIP's eval transform with the Pillow-bicubic port (equals CLIPImageProcessor). */
export function pilSource(resample: 'pil' | 'sharp', onSkip: (path: string, reason: string) => void): PixelSource {
  const fn = async function* (paths: string[], batch: number, info: EncoderInfo, skipped: SkippedImage[]): AsyncIterable<PixelBatch> {
    const size = info.imageSize;
    for (let start = 0; start < paths.length; start += batch) {
      const chunk = paths.slice(start, start + batch);
      const crops = await Promise.all(
        chunk.map(async (path) => {
          try {
            return await clipResizeCrop(path, size, resample);
          } catch (error) {
            const reason = (error as Error).message;
            skipped.push({ path, reason });
            onSkip(path, reason);
            return undefined;
          }
        }),
      );
      const good = chunk.filter((_, i) => crops[i]);
      const pixels = new Float32Array(good.length * 3 * size * size);
      let k = 0;
      crops.forEach((crop) => crop && normalizeToChw(crop, size, info.mean, info.std, pixels, k++ * 3 * size * size));
      yield { chunk: chunk.length, good, pixels };
    }
  };
  return Object.assign(fn, { preprocessing: { transform: 'clip-eval', resample } });
}

/** A loader preset's eval view, built exactly as the feature cache builds its inner loader (core's evalViewLoader). */
export function presetSource(io: CliIO, loaderName: string, preset: string): PixelSource {
  const registry = io.registry;
  if (!registry) throw new UsageError('--preset needs the plugins of the dfd command (run it as `dfd encode`)');
  if (!registry.namesOf('loader').includes(loaderName)) {
    throw new UsageError(`--preset: no loader '${loaderName}' is installed (loaders: ${registry.namesOf('loader').join(', ') || 'none'}); install @dfd/dataset-df40 for 'images'`);
  }
  const state: { preprocessing: Record<string, unknown> } = { preprocessing: {} };
  const fn = async function* (paths: string[], batch: number, info: EncoderInfo, skipped: SkippedImage[]): AsyncIterable<PixelBatch> {
    await ensureBackend();
    const container = ExperimentContainer.create();
    const { loader, preprocessing } = evalViewLoader(registry, container, { use: loaderName, preset, config: { size: info.imageSize } });
    Object.assign(state.preprocessing, preprocessing, { preset });
    try {
      yield* fromEvalPixels(evalViewPixels(loader, paths, batch), skipped);
    } finally {
      (loader as { dispose?: () => void }).dispose?.();
      container.dispose?.();
    }
  };
  return Object.assign(fn, { preprocessing: state.preprocessing });
}

/** The feature cache's own eval view (core's `FrozenEncoderContext`): a static int8 graph calibrated from a config sees the pixels the cache encodes. */
export function evalViewSource(context: FrozenEncoderContext): PixelSource {
  const fn = (paths: string[], batch: number, _info: EncoderInfo, skipped: SkippedImage[]) => fromEvalPixels(context.evalPixels(paths, batch), skipped);
  return Object.assign(fn, { preprocessing: { source: 'feature-cache eval view' } });
}

async function* fromEvalPixels(batches: AsyncIterable<EvalPixels>, skipped: SkippedImage[]): AsyncIterable<PixelBatch> {
  for await (const { paths, pixels, skipped: left } of batches) {
    skipped.push(...left);
    yield { chunk: paths.length + left.length, good: paths, pixels };
  }
}
