/**
 * The ONNX vision tower of a Hugging Face CLIP folder, built once per (weights, precision) by our own graph
 * writer and kept beside the model with a manifest:
 *
 *   <model>/onnx/dfd/vision-<precision>.onnx          the graph (small)
 *   <model>/onnx/dfd/vision-<precision>.onnx.data     its weights (external data, page-aligned)
 *   <model>/onnx/dfd/vision-<precision>.manifest.json source digest, method, calibration, graph version
 *
 * When the model folder is read-only the same files go to `$DFD_CACHE/clip-onnx/<source digest>/` (default
 * `~/.cache/dfd`). A manifest is trusted while the source file's size and mtime are those it recorded;
 * otherwise the source is re-hashed and, if its bytes changed, the graph is rebuilt.
 */
import { createHash } from 'node:crypto';
import { access, constants, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dfdCacheDir, rememberedSha256, SafetensorsFile, withBuildLock } from '@dfd/core';
import { readClipConfig, type ClipConfig } from '../config.js';
import { OnnxGraphBuilder } from './graph-builder.js';
import { CLIP_VISION_GRAPH_VERSION, writeClipVisionGraph, type GraphPrecision, type GraphReport } from './clip-vision-graph.js';
import { calibrateChannelRanges, type CalibrationSet } from './calibrate.js';
import { DEFAULT_SMOOTH_ALPHA } from './static-int8.js';

export const CLIP_ONNX_MANIFEST_FORMAT = 'dfd-clip-vision-onnx/1';

export interface BuiltGraphManifest {
  format: string;
  graphVersion: number;
  precision: GraphPrecision;
  /** How the weights were turned into the graph's tensors. */
  method: string;
  source: { file: string; bytes: number; mtimeMs: number; sha256: string; configSha256: string };
  /** The calibration image set of static quantisation (digest of its pixels); null for the other methods. */
  calibration: null | { images: number; sha256: string; method: string; smoothAlpha: number };
  /** Static int8: the per-tensor range of each Linear input, `[min, max]` after smoothing (what the graph's scales come from). */
  activationRanges?: Record<string, [number, number]>;
  /** Static int8: the Linear layers whose input channels were smoothed (SmoothQuant). */
  smoothed?: string[];
  /** Digest of everything above that decides the graph's numbers: the weights digest of features made with it. */
  digest: string;
  createdAt: string;
  buildSeconds: number;
}

export const PRECISION_METHODS: Record<GraphPrecision, string> = {
  fp32: 'fp32: safetensors weights widened to float32',
  int8: 'int8-dynamic-matmul: encoder Linear weights int8 symmetric 7-bit per output channel, activations uint8 per tensor at run time (DynamicQuantizeMatMul); conv and projection fp32',
};

/** Static int8: the method string of the manifest, and how the ranges were taken from the calibration set. */
export const STATIC_INT8_METHOD =
  'int8-static-qdq: encoder Linear weights int8 symmetric 7-bit per output channel, activations uint8 per tensor with calibrated ranges (QuantizeLinear/DequantizeLinear), SmoothQuant scales folded into the LayerNorms and v when smoothAlpha > 0; conv and projection fp32';
export const CALIBRATION_METHOD = 'minmax: the smallest and largest value of each Linear input channel over the whole calibration set';

async function writable(dir: string): Promise<boolean> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

async function readManifest(path: string): Promise<BuiltGraphManifest | undefined> {
  try {
    const manifest = JSON.parse(await readFile(path, 'utf8')) as BuiltGraphManifest;
    return manifest.format === CLIP_ONNX_MANIFEST_FORMAT ? manifest : undefined;
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

export interface BuiltGraph {
  path: string;
  manifest: BuiltGraphManifest;
  /** True when this call wrote the graph (false: found in the cache). */
  built: boolean;
}

/** Where the graph of this folder lives (beside the model when writable). */
async function outputDir(modelDir: string, sourceDigest: () => Promise<string>): Promise<string> {
  const beside = join(modelDir, 'onnx', 'dfd');
  if (await writable(beside)) return beside;
  return join(dfdCacheDir(), 'clip-onnx', (await sourceDigest()).slice(0, 24));
}

/** Writes `<base>.onnx` and its data from the safetensors `source`; a static int8 graph is calibrated first. */
async function writeGraphFiles(
  base: string,
  source: string,
  config: ClipConfig,
  precision: GraphPrecision,
  metadata: Record<string, string>,
  calibration?: { set: CalibrationSet; smoothAlpha: number; log?: ((message: string) => void) | undefined; threads?: number | undefined },
): Promise<GraphReport> {
  const builder = await OnnxGraphBuilder.create(`${base}.onnx`);
  const file = await SafetensorsFile.open(source);
  try {
    let variant = {};
    if (calibration) {
      calibration.log?.(`calibrating int8 activation ranges on ${calibration.set.images} images (${CALIBRATION_METHOD.split(':')[0]}, SmoothQuant α ${calibration.smoothAlpha})`);
      const channels = await calibrateChannelRanges(file, config, `${base}.probe`, calibration.set, calibration.threads);
      variant = { calibration: { channels, smoothAlpha: calibration.smoothAlpha } };
    }
    const report = await writeClipVisionGraph(builder, file, config, precision, variant);
    await builder.finish(metadata, `clip_vision_${precision}`);
    return report;
  } catch (error) {
    await builder.abort();
    throw error;
  } finally {
    await file.close();
  }
}

export interface EnsureGraphOptions {
  log?: (message: string) => void;
  /** int8 only: quantise activations statically with ranges observed on these images (else dynamically). */
  calibration?: CalibrationSet;
  /** SmoothQuant's α for a static graph (default 0: no smoothing; 0.5 is the paper's). */
  smoothAlpha?: number;
  threads?: number;
}

/** Where one graph of a model goes, and what decides whether a cached one is still right. */
interface GraphPlan {
  precision: GraphPrecision;
  config: ClipConfig;
  source: string;
  info: { size: number; mtimeMs: number };
  dir: string;
  /** The graph's path without `.onnx`. */
  base: string;
  configSha256: string;
  calibrationFacts: BuiltGraphManifest['calibration'];
  sourceDigest: () => Promise<string>;
}

async function planGraph(modelDir: string, precision: GraphPrecision, calibration: CalibrationSet | undefined, smoothAlpha: number): Promise<GraphPlan> {
  if (!(smoothAlpha >= 0 && smoothAlpha <= 1)) throw new Error(`smoothAlpha must be in [0, 1], got ${smoothAlpha}`);
  if (calibration && precision !== 'int8') throw new Error(`a calibration set is for precision int8 (static activation ranges), not ${precision}`);
  const source = join(modelDir, 'model.safetensors');
  const config = await readClipConfig(modelDir);
  let info;
  try {
    info = await stat(source);
  } catch {
    throw new Error(`${modelDir} has no model.safetensors: the ONNX vision tower is built from a Hugging Face CLIP folder (config.json + model.safetensors)`);
  }
  let digest: string | undefined;
  const sourceDigest = async () => (digest ??= await rememberedSha256(source)); // remembered across processes: a read-only folder's cache is named by it
  const dir = await outputDir(modelDir, sourceDigest);
  // Each calibration set is its own graph: several can sit side by side in the cache.
  const calibrationFacts = calibration ? { images: calibration.images, sha256: calibration.sha256, method: CALIBRATION_METHOD, smoothAlpha } : null;
  const calibrationKey = calibrationFacts && createHash('sha256').update(JSON.stringify(calibrationFacts)).digest('hex').slice(0, 16);
  const base = join(dir, calibrationKey ? `vision-int8-static-${calibrationKey}` : `vision-${precision}`);
  const configSha256 = createHash('sha256').update(await readFile(join(modelDir, 'config.json'))).digest('hex');
  return { precision, config, source, info: { size: info.size, mtimeMs: info.mtimeMs }, dir, base, configSha256, calibrationFacts, sourceDigest };
}

/** The cached graph of `plan` when its manifest still matches the weights, config, calibration and graph version. */
async function cachedGraph(plan: GraphPlan): Promise<BuiltGraph | undefined> {
  const known = await readManifest(`${plan.base}.manifest.json`);
  const sameCalibration = JSON.stringify(known?.calibration ?? null) === JSON.stringify(plan.calibrationFacts);
  if (!known || !sameCalibration || known.graphVersion !== CLIP_VISION_GRAPH_VERSION || known.source.configSha256 !== plan.configSha256 || !(await exists(`${plan.base}.onnx`))) return undefined;
  const unchanged = known.source.bytes === plan.info.size && known.source.mtimeMs === plan.info.mtimeMs;
  if (unchanged || known.source.sha256 === (await plan.sourceDigest())) return { path: `${plan.base}.onnx`, manifest: known, built: false };
  return undefined;
}

/** Writes the graph and its manifest (the caller made `plan.dir` and holds the build lock). */
async function buildGraph(plan: GraphPlan, options: EnsureGraphOptions): Promise<BuiltGraph> {
  const { precision, config, source, base } = plan;
  const calibration = options.calibration;
  options.log?.(`building the ${precision} ONNX vision tower of ${config.name} from ${source} into ${plan.dir}`);
  const started = performance.now();
  const method = calibration ? STATIC_INT8_METHOD : PRECISION_METHODS[precision];
  const sha256 = await plan.sourceDigest();
  const decided = { format: CLIP_ONNX_MANIFEST_FORMAT, graphVersion: CLIP_VISION_GRAPH_VERSION, precision, method, sha256, configSha256: plan.configSha256, calibration: plan.calibrationFacts };
  const graphDigest = createHash('sha256').update(JSON.stringify(decided)).digest('hex');
  const metadata = { 'dfd.precision': precision, 'dfd.source_sha256': sha256, 'dfd.digest': graphDigest };
  const report = await writeGraphFiles(base, source, config, precision, metadata, calibration && plan.calibrationFacts ? { set: calibration, smoothAlpha: plan.calibrationFacts.smoothAlpha, log: options.log, threads: options.threads } : undefined);
  const manifest: BuiltGraphManifest = {
    format: CLIP_ONNX_MANIFEST_FORMAT,
    graphVersion: CLIP_VISION_GRAPH_VERSION,
    precision,
    method,
    source: { file: source, bytes: plan.info.size, mtimeMs: plan.info.mtimeMs, sha256, configSha256: plan.configSha256 },
    calibration: plan.calibrationFacts,
    ...report,
    digest: graphDigest,
    createdAt: new Date().toISOString(),
    buildSeconds: (performance.now() - started) / 1000,
  };
  const manifestPath = `${base}.manifest.json`;
  const tmp = `${manifestPath}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(tmp, manifestPath);
  options.log?.(`built ${base}.onnx in ${manifest.buildSeconds.toFixed(1)} s`);
  return { path: `${base}.onnx`, manifest, built: true };
}

/**
 * The cached graph for `precision`, building it first when absent or stale. Shards starting together build
 * it once: the first holds `<graph>.lock` (`withBuildLock`), the others wait and then find it cached.
 */
export async function ensureClipVisionOnnx(modelDir: string, precision: GraphPrecision, options: EnsureGraphOptions = {}): Promise<BuiltGraph> {
  const plan = await planGraph(modelDir, precision, options.calibration, options.smoothAlpha ?? DEFAULT_SMOOTH_ALPHA);
  const cached = await cachedGraph(plan);
  if (cached) return cached;
  await mkdir(plan.dir, { recursive: true });
  return withBuildLock(`${plan.base}.lock`, async () => (await cachedGraph(plan)) ?? buildGraph(plan, options), options.log ? { log: options.log } : {});
}
