/**
 * Static int8 for stage 1: the VAE encoder and the UNet rewritten to QDQ form (Conv and MatMul, weights
 * 7-bit per channel, activations uint8 with calibrated ranges; `quantizeOnnxStatic` of @dfd/encoder-clip),
 * which onnxruntime runs as `QLinearConv` and `MatMulIntegerToFloat`. Dynamic int8 can only take the
 * UNet's MatMuls (its `ConvInteger` is slower than fp32); static int8 takes the convolutions too, and they
 * are most of both graphs.
 *
 * The ranges come from the user's own images run through the whole stage-1 pipeline with the run's
 * settings: the UNet sees noisy latents at timestep t, so its ranges depend on t, E, size, prompt and
 * noise. Each calibration (images × settings) is its own cached graph, beside the export or under
 * $DFD_CACHE like the dynamic one:
 *
 *   <graph dir>/dfd-int8-static-<calibration key>.onnx (+ .onnx.data, .manifest.json with every range)
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { foldProbeRanges, quantizeOnnxStatic, writeRangeProbeModel, type ActivationRange } from '@dfd/encoder-clip';
import { DEFAULT_INT8_MIN_ELEMENTS, findQuantizedGraph, quantizedGraphSlot, SD_INT8_METHOD_VERSION, type GraphSlot, type Int8Calibration, type SlotOptions } from './int8-graph.js';
import { withBuildLock } from '@dfd/core';
import { LareExtractor, type LareImage, type LareSettings } from './lare.js';
import { openSdOnnx, type OpenSdOptions, type SdOnnxModel } from './sd-model.js';

/** The graphs static int8 rewrites (the text encoder runs once per extractor and stays fp32). */
export const STATIC_INT8_GRAPHS = ['vae_encoder', 'unet'] as const;
type StaticGraph = (typeof STATIC_INT8_GRAPHS)[number];

export const STATIC_CALIBRATION_METHOD = 'minmax: the smallest and largest value of each quantised activation over the calibration images, through the fp32 stage-1 pipeline';

export function staticInt8Method(minElements: number): string {
  return (
    `int8-static-qdq/${SD_INT8_METHOD_VERSION}: Conv and MatMul weights with >= ${minElements} elements int8 symmetric 7-bit per output channel, ` +
    'activations uint8 per tensor with calibrated ranges (QuantizeLinear/DequantizeLinear; run as QLinearConv and MatMulIntegerToFloat)'
  );
}

export class StaticInt8Error extends Error {
  override name = 'StaticInt8Error';
}

export interface StaticInt8Options extends Omit<OpenSdOptions, 'graphFiles' | 'quantization' | 'precision'>, SlotOptions {
  /** Weights with fewer elements stay fp32 (default 4096). */
  minElements?: number;
  /** SHA-256 of `settings.noiseFile`, when one is used (it goes into the maps' settings). */
  noiseDigest?: string;
}

/** What a calibration is: the images (by content) and the settings they went through. Its digest keys the graphs. */
export function staticCalibration(images: LareImage[], settings: LareSettings, noiseDigest?: string): Int8Calibration {
  const pipeline: Record<string, unknown> = {
    timestep: settings.timestep,
    ensemble: settings.ensemble,
    size: settings.size,
    prompt: settings.prompt,
    noise: settings.noiseFile ? { file: noiseDigest ?? 'unknown' } : { seed: settings.seed },
  };
  const sha256 = createHash('sha256')
    .update(JSON.stringify({ images: images.map((i) => i.hash), pipeline, method: STATIC_CALIBRATION_METHOD }))
    .digest('hex');
  return { images: images.length, sha256, method: STATIC_CALIBRATION_METHOD, settings: pipeline };
}

/** The options `openSdOnnx` takes, out of static int8's. */
function sessionOptions(options: StaticInt8Options): Omit<OpenSdOptions, 'graphFiles' | 'quantization' | 'precision'> {
  const { minElements: _minElements, noiseDigest: _noiseDigest, location: _location, ...rest } = options;
  return rest;
}

/** Runs the calibration images through the fp32 pipeline with range probes on both graphs. */
async function calibrate(
  dir: string,
  slots: Record<StaticGraph, GraphSlot>,
  images: LareImage[],
  settings: LareSettings,
  options: StaticInt8Options,
): Promise<Record<StaticGraph, Map<string, ActivationRange>>> {
  const minElements = options.minElements ?? DEFAULT_INT8_MIN_ELEMENTS;
  const probes = {} as Record<StaticGraph, string>;
  const ranges: Record<StaticGraph, Map<string, ActivationRange>> = { vae_encoder: new Map(), unet: new Map() };
  let model: SdOnnxModel | undefined;
  try {
    for (const graph of STATIC_INT8_GRAPHS) {
      probes[graph] = join(slots[graph].dir, `dfd-probe-${process.pid}.onnx`);
      await writeRangeProbeModel(slots[graph].source, probes[graph], { minElements });
    }
    model = await openSdOnnx(dir, { ...sessionOptions(options), precision: 'fp32', graphFiles: probes });
    const extractor = await LareExtractor.create(model, settings, options.noiseDigest, { observe: (graph, outputs) => foldProbeRanges(ranges[graph], outputs) });
    for (const [i, image] of images.entries()) {
      await extractor.maps([image]);
      if ((i + 1) % 8 === 0 || i + 1 === images.length) options.log?.(`calibrating int8 ranges: ${i + 1}/${images.length} images`);
    }
  } finally {
    await model?.dispose();
    await Promise.all(Object.values(probes).map((path) => rm(path, { force: true })));
  }
  return ranges;
}

export interface StaticInt8Graphs {
  graphs: Record<StaticGraph, string>;
  method: string;
  calibration: Int8Calibration;
  /** True when this call calibrated and wrote the graphs (false: both were cached). */
  built: boolean;
}

/**
 * The static int8 VAE encoder and UNet of the export in `dir` for this calibration, made first (calibration,
 * then both rewrites) when either is missing or stale.
 */
export async function ensureStaticInt8Graphs(dir: string, settings: LareSettings, images: LareImage[], options: StaticInt8Options = {}): Promise<StaticInt8Graphs> {
  if (!images.length) throw new StaticInt8Error('static int8 needs at least one calibration image (none could be read)');
  const minElements = options.minElements ?? DEFAULT_INT8_MIN_ELEMENTS;
  const method = staticInt8Method(minElements);
  const calibration = staticCalibration(images, settings, options.noiseDigest);
  const spec = { base: `dfd-int8-static-${calibration.sha256.slice(0, 16)}`, method, calibration };
  const locate = async () => {
    const slots = {} as Record<StaticGraph, GraphSlot>;
    for (const graph of STATIC_INT8_GRAPHS) slots[graph] = await quantizedGraphSlot(join(dir, graph, 'model.onnx'), spec, options);
    return slots;
  };
  const first = await locate();
  const graphs = { vae_encoder: first.vae_encoder.path, unet: first.unet.path };
  if (STATIC_INT8_GRAPHS.every((g) => first[g].cached)) return { graphs, method, calibration, built: false };

  // One lock (the UNet's) covers the calibration and both rewrites.
  return withBuildLock(
    first.unet.lock,
    async () => {
      const slots = await locate(); // built by another shard while we waited?
      if (STATIC_INT8_GRAPHS.every((g) => slots[g].cached)) return { graphs, method, calibration, built: false };
      const started = performance.now();
      options.log?.(`calibrating static int8 for the VAE encoder and UNet on ${images.length} images (t=${settings.timestep}, E=${settings.ensemble}, size ${settings.size})`);
      const ranges = await calibrate(dir, slots, images, settings, options);
      for (const graph of STATIC_INT8_GRAPHS) {
        const report = await quantizeOnnxStatic(slots[graph].source, slots[graph].path, ranges[graph], { minElements });
        const activationRanges = Object.fromEntries([...ranges[graph]].map(([name, r]) => [name, [r.min, r.max] as [number, number]]));
        await slots[graph].save({ ...report }, started, activationRanges);
        options.log?.(`static int8 ${graph}: ${report.convs} Convs and ${report.matmuls} MatMuls quantised, ${report.activations} activations`);
      }
      return { graphs, method, calibration, built: true };
    },
    options.log ? { log: options.log } : {},
  );
}

/** `openSdOnnx` with the static int8 VAE encoder and UNet of this calibration (made first when needed). */
export async function openSdOnnxStaticInt8(dir: string, settings: LareSettings, images: LareImage[], options: StaticInt8Options = {}): Promise<SdOnnxModel> {
  const built = await ensureStaticInt8Graphs(dir, settings, images, options);
  return openSdOnnx(dir, {
    ...sessionOptions(options),
    precision: 'int8',
    graphFiles: built.graphs,
    quantization: `vae_encoder, unet: ${built.method}; calibration ${built.calibration.sha256.slice(0, 16)} (${built.calibration.images} images)`,
  });
}

/**
 * The static int8 graphs of calibration `key` that an extraction built, opened as they are (no calibration
 * images needed): `dfd predict` scores a new image with the very graphs the run's maps came from.
 * `quantization` is the maps' recorded setting; the graphs' method must be the one it names.
 */
export async function openBuiltStaticInt8(dir: string, key: string, quantization: string, options: StaticInt8Options = {}): Promise<SdOnnxModel> {
  const graphs = {} as Record<StaticGraph, string>;
  for (const graph of STATIC_INT8_GRAPHS) {
    const found = await findQuantizedGraph(join(dir, graph, 'model.onnx'), `dfd-int8-static-${key}`, options);
    if (!found || !quantization.includes(found.manifest.method)) {
      throw new StaticInt8Error(
        `the maps were made with static int8 calibration ${key}, but ${join(dir, graph)} has no current dfd-int8-static-${key}.onnx: ` +
          `copy the dfd-int8-static-${key}.* files of vae_encoder/ and unet/ from the model folder the maps were extracted with, or extract again`,
      );
    }
    graphs[graph] = found.path;
  }
  return openSdOnnx(dir, { ...sessionOptions(options), precision: 'int8', graphFiles: graphs, quantization });
}
