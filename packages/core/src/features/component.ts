/**
 * The `feature-cache` loader component (registered by core's builtin plugin):
 *
 *   loader: { use: 'feature-cache', config: { inner: { use: 'images', config: { size: 224 } }, train: 'augmented' } }
 *
 * It builds the inner loader from the experiment's registry, and encodes with the experiment's encoder:
 * its fast frozen path when it offers one (`Encoder.frozenImageEncoder`, e.g. onnxruntime), else its own
 * image tower.
 */
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import type { BatchLoader, Encoder, EvalPixels, FrozenEncoderContext, FrozenImageEncoder, Sample } from '../contracts.js';
import { ExperimentContainer, TOKENS, type Resolver } from '../di.js';
import { instantiateComponent } from '../run/instantiate.js';
import type { PluginRegistry } from '../plugin.js';
import { EncoderImagePath } from './encoder-image-path.js';
import { FeatureCacheError, FeatureCacheLoader } from './feature-cache-loader.js';

/** Loader settings that do not change the eval view's pixels. */
export const EVAL_VIEW_KEY_IGNORES = ['concurrency', 'prefetch', 'logSkips', 'maxMessages', 'regions', 'train', 'extraGeometry', 'missingExtras'] as const;

export interface EvalViewLoader {
  loader: BatchLoader;
  /** What the eval view's pixels depend on (loader name + resolved settings): part of every feature key. */
  preprocessing: { loader: string; config: Record<string, unknown> };
}

/**
 * The pixel loader of a named preset and the description of its eval view, built one way for both entry
 * points — the feature cache's inner loader and `dfd encode --preset` — so the same image, preset and
 * weights give the same row from either.
 */
export function evalViewLoader(
  registry: PluginRegistry,
  container: ExperimentContainer,
  inner: { use: string; preset?: string | undefined; config: Record<string, unknown> },
  keyIgnores: readonly string[] = EVAL_VIEW_KEY_IGNORES,
): EvalViewLoader {
  const innerConfig = registry.resolveConfig('loader', inner.use, inner.config, inner.preset);
  const loader = instantiateComponent<BatchLoader>(container, registry, 'loader', inner.use, innerConfig);
  return { loader, preprocessing: { loader: inner.use, config: without(innerConfig, [...keyIgnores]) } };
}

/**
 * The eval view's pixels of any image paths, through `loader` (one built by `evalViewLoader`): what the
 * feature cache would encode for them. Images the loader cannot decode are left out, with its reason.
 */
export async function* evalViewPixels(loader: BatchLoader, paths: string[], batchSize: number): AsyncIterable<EvalPixels> {
  const samples: Sample[] = paths.map((path) => ({ id: path, path, label: 0, subset: 'eval-view', split: 'test', videoId: path }));
  const needs = { pixels: true, features: false, extras: [], boxes: false };
  const source = loader.create(samples, { split: 'test', batchSize, shuffle: false, augment: false, seed: 0, needs });
  const done = new Set<string>();
  for await (const batch of source.batches(0)) {
    const good = batch.samples.map((sample) => sample.path);
    const pixels = (await batch.pixels!.data()) as Float32Array;
    batch.dispose();
    good.forEach((path) => done.add(path));
    yield { paths: good, pixels, skipped: [] };
  }
  // The loader counts and logs what it could not decode; each left-out image gets the loader's message.
  const missing = paths.filter((path) => !done.has(path));
  if (missing.length === 0) return;
  const messages = loader.skipped?.().messages ?? [];
  const skipped = missing.map((path) => ({ path, reason: messages.find((m) => m.includes(path)) ?? 'skipped by the loader (unreadable image)' }));
  yield { paths: [], pixels: new Float32Array(0), skipped };
}

export const FeatureCacheConfigSchema = z
  .object({
    /** Cache root; relative paths are resolved from the working directory. */
    dir: z.string().min(1).default('.dfd-cache/features'),
    /** The loader that makes the pixels (decode + eval transform). */
    inner: z
      .object({ use: z.string().min(1), preset: z.string().optional(), config: z.record(z.string(), z.unknown()).default({}) })
      .strict()
      .default({ use: 'images', config: {} }),
    /** `augmented`: training views are augmented and encoded every epoch (not cached); `eval-view`: train on the cached eval view. */
    train: z.enum(['augmented', 'eval-view']).default('augmented'),
    /** Images per frozen-encoder call when filling the cache. */
    encodeBatchSize: z.number().int().positive().default(64),
    /**
     * On-disk precision of cached patch tokens (only stored when an enhancer or the fuser asks for them):
     * float16 halves the disk (ViT-B/16: 294 KiB per image, ≈ 301 GB per million frames; float32 ≈ 602 GB)
     * at a relative rounding error ≤ 4.9e-4. Part of the cache key.
     */
    patchTokenDtype: z.enum(['float16', 'float32']).default('float16'),
    /** Inner-loader settings that do not change the eval view (left out of the cache key). Extras and boxes are
     * never stored — they are read per batch — so their settings are not part of the key either. */
    keyIgnores: z.array(z.string()).default([...EVAL_VIEW_KEY_IGNORES]),
    /** Print hit/miss lines to stderr. */
    log: z.boolean().default(false),
  })
  .strict();
export type FeatureCacheConfig = z.output<typeof FeatureCacheConfigSchema>;

function without(config: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).filter(([key]) => !keys.includes(key)));
}

export function createFeatureCacheLoader(config: FeatureCacheConfig, resolver: Resolver): FeatureCacheLoader {
  if (!resolver.isRegistered(TOKENS.Registry)) throw new FeatureCacheError('the feature-cache component needs the experiment registry (it is built by the runner)');
  const registry = resolver.resolve<PluginRegistry>(TOKENS.Registry);
  if (config.inner.use === 'feature-cache') throw new FeatureCacheError("the feature cache cannot wrap itself: set inner to a pixel loader such as 'images'");
  if (!resolver.isRegistered(TOKENS.Encoder)) {
    throw new FeatureCacheError("the feature-cache loader encodes with the experiment's encoder: add `encoder: { use: 'clip', config: { model: ... } }`");
  }
  if (!(resolver instanceof ExperimentContainer)) {
    throw new FeatureCacheError('the feature-cache loader builds its inner loader in the experiment container; build it through the runner');
  }
  const { loader: inner, preprocessing } = evalViewLoader(registry, resolver, config.inner, config.keyIgnores);
  const encoder = resolver.resolve<Encoder>(TOKENS.Encoder);
  // A frozen path that calibrates (static int8) gets pixels made exactly like those it will encode, from a
  // loader of its own, so calibration's decode failures do not count as the run's skips.
  const context: FrozenEncoderContext = {
    async *evalPixels(paths, batchSize) {
      const { loader } = evalViewLoader(registry, resolver, config.inner, config.keyIgnores);
      try {
        yield* evalViewPixels(loader, paths, batchSize);
      } finally {
        (loader as { dispose?: () => void }).dispose?.();
      }
    },
  };
  const open = async (): Promise<FrozenImageEncoder> => (encoder.frozenImageEncoder ? encoder.frozenImageEncoder(context) : new EncoderImagePath(encoder));
  return new FeatureCacheLoader({
    inner,
    encoder: open,
    dir: isAbsolute(config.dir) ? config.dir : resolve(process.cwd(), config.dir),
    preprocessing,
    train: config.train,
    precision: encoder.frozenImageEncoder ? (encoder.frozenPrecision ?? 'fp32') : 'fp32',
    encodeBatchSize: config.encodeBatchSize,
    patchTokenDtype: config.patchTokenDtype,
    ownsInner: true,
    ...(config.log ? { log: (message: string) => process.stderr.write(`[dfd] ${message}\n`) } : {}),
  });
}
