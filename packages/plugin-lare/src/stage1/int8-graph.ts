/**
 * The int8 forms of one exported Stable Diffusion graph, each made once by our own TypeScript rewrite and
 * cached with a manifest, like the CLIP int8 tower:
 *
 *   <graph dir>/dfd-int8.onnx                   dynamic (the UNet): `quantizeOnnxMatMuls` of @dfd/encoder-clip,
 *                                               MatMul-with-initializer → `com.microsoft:DynamicQuantizeMatMul`;
 *                                               convolutions stay fp32 (ConvInteger is ~4× slower, measured.md)
 *   <graph dir>/dfd-int8-static-<key>.onnx      static (VAE encoder and UNet, static-int8.ts): Conv and MatMul
 *                                               in QDQ form with calibrated ranges, one file per calibration
 *   <graph dir>/<name>.onnx.data                only the new int8 weights; untouched ones still point at the
 *                                               original external-data file (nothing copied)
 *   <graph dir>/<name>.manifest.json            source digest, method, calibration (null for dynamic), ranges
 *
 * `quantizedGraphSlot` decides where a form lives and whether its cached file is fresh; the two kinds differ
 * only in how they build. A read-only model folder gets the files in `$DFD_CACHE/sd-int8/<source digest>/`
 * (default ~/.cache/dfd) instead, beside hard links to (or, across file systems, copies of) the original graph
 * and its data: the rewrite must sit in the same folder as the external data it keeps using, and onnxruntime
 * refuses external data reached through a symbolic link that leaves the model's folder ("path escapes model
 * directory"). The `dfd-` prefix keeps these files out of the model digest.
 */
import { createHash } from 'node:crypto';
import { access, constants, copyFile, link, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { dfdCacheDir, rememberedSha256, withBuildLock } from '@dfd/core';
import { quantizeOnnxMatMuls } from '@dfd/encoder-clip';

export const SD_INT8_MANIFEST_FORMAT = 'dfd-sd-int8/1';
/** Bump when the rewrite changes the numbers it produces (it is part of the maps' settings). */
export const SD_INT8_METHOD_VERSION = 2; // 2: 7-bit weights (INT8_WEIGHT_MAX of @dfd/encoder-clip)

export type LarePrecision = 'fp32' | 'int8';
export const LARE_PRECISIONS: readonly LarePrecision[] = ['fp32', 'int8'];

/** Products with fewer weight elements stay fp32 (tiny products gain nothing). */
export const DEFAULT_INT8_MIN_ELEMENTS = 4096;

export function int8Method(minElements: number): string {
  return `int8-dynamic-matmul/${SD_INT8_METHOD_VERSION}: MatMul weights with >= ${minElements} elements int8 symmetric 7-bit per output column, activations uint8 per tensor at run time (DynamicQuantizeMatMul), one image per call; convolutions fp32`;
}

/** What a static graph was calibrated on: the images (their content hashes) and the stage-1 settings they went through. */
export interface Int8Calibration {
  images: number;
  /** SHA-256 over the images' content hashes, in order, and the settings. */
  sha256: string;
  method: string;
  /** The timestep, ensemble, size, prompt and noise the calibration pipeline ran with. */
  settings: Record<string, unknown>;
}

export interface Int8GraphManifest {
  format: string;
  method: string;
  source: { graph: string; files: Array<{ name: string; bytes: number; mtimeMs: number }>; sha256: string };
  /** null: weight-only (dynamic activations). */
  calibration: Int8Calibration | null;
  /** What the rewrite did (counts of quantised nodes, bytes written). */
  report: Record<string, number>;
  /** Static int8: the calibrated `[min, max]` of each quantised activation. */
  activationRanges?: Record<string, [number, number]>;
  createdAt: string;
  buildSeconds: number;
}

/** The graph file and the external-data files beside it (our own `dfd-*` outputs excluded). */
export async function sourceGraphFiles(graphDir: string): Promise<string[]> {
  const names = (await readdir(graphDir)).filter(
    (n) => !n.startsWith('dfd-') && (n === 'model.onnx' || n.endsWith('.onnx_data') || n.endsWith('.data') || n === 'weights.pb'),
  );
  return names.sort();
}

/** One digest over a graph's files; each file's digest is remembered across processes (a read-only model folder's cache folder is named by it). */
async function sha256Files(dir: string, names: string[]): Promise<string> {
  const all = createHash('sha256');
  for (const name of names) {
    all.update(`${name}:${await rememberedSha256(join(dir, name))}\n`);
  }
  return all.digest('hex');
}

async function writable(dir: string): Promise<boolean> {
  try {
    await access(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function readManifest(path: string): Promise<Int8GraphManifest | undefined> {
  try {
    const manifest = JSON.parse(await readFile(path, 'utf8')) as Int8GraphManifest;
    return manifest.format === SD_INT8_MANIFEST_FORMAT ? manifest : undefined;
  } catch {
    return undefined;
  }
}

/** The folder the int8 graph goes to: beside the source when writable, else a cache folder with links to it or copies. */
async function outputDir(graphDir: string, names: string[], digest: () => Promise<string>, beside: boolean): Promise<string> {
  if (beside && (await writable(graphDir))) return graphDir;
  const root = dfdCacheDir();
  const dir = join(root, 'sd-int8', (await digest()).slice(0, 24), basename(graphDir));
  await mkdir(dir, { recursive: true });
  for (const name of names) {
    if (await exists(join(dir, name))) continue;
    const tmp = join(dir, `${name}.tmp-${process.pid}`);
    await link(join(graphDir, name), tmp).catch(() => copyFile(join(graphDir, name), tmp));
    await rename(tmp, join(dir, name));
  }
  return dir;
}

export interface Int8Graph {
  path: string;
  manifest: Int8GraphManifest;
  built: boolean;
}

/** Which quantised form of a graph: its file name (without `.onnx`), method and calibration. */
export interface QuantizedGraphSpec {
  base: string;
  method: string;
  calibration: Int8Calibration | null;
}

/**
 * Where one quantised form of `<graph dir>/model.onnx` lives, and the cached one when it is fresh: a
 * manifest is trusted while every source file has the size and mtime it recorded; otherwise the sources
 * are re-hashed and the graph counts as stale if their bytes changed. `save` writes the manifest of a new build.
 */
export interface GraphSlot {
  dir: string;
  /** The fp32 source as seen from `dir` (a hard link or copy when `dir` is the cache). */
  source: string;
  path: string;
  /** The build lock of this form (`withBuildLock` of @dfd/core): one builder at a time across shards. */
  lock: string;
  cached: Int8Graph | undefined;
  save(report: Record<string, number>, started: number, activationRanges?: Record<string, [number, number]>): Promise<Int8Graph>;
}

export interface SlotOptions {
  /** `cache`: never write beside the model (a shared folder), always under $DFD_CACHE. Default: beside when writable. */
  location?: 'auto' | 'cache';
}

export async function quantizedGraphSlot(modelPath: string, spec: QuantizedGraphSpec, options: SlotOptions = {}): Promise<GraphSlot> {
  const graphDir = dirname(modelPath);
  const names = await sourceGraphFiles(graphDir);
  const stats = await Promise.all(names.map((n) => stat(join(graphDir, n))));
  const files = names.map((name, i) => ({ name, bytes: stats[i]!.size, mtimeMs: stats[i]!.mtimeMs }));
  let digest: string | undefined;
  const sourceDigest = async () => (digest ??= await sha256Files(graphDir, names));
  const dir = await outputDir(graphDir, names, sourceDigest, options.location !== 'cache');
  const path = join(dir, `${spec.base}.onnx`);
  const manifestPath = join(dir, `${spec.base}.manifest.json`);
  const known = await readManifest(manifestPath);
  let cached: Int8Graph | undefined;
  if (known && known.method === spec.method && JSON.stringify(known.calibration) === JSON.stringify(spec.calibration) && (await exists(path))) {
    const unchanged = JSON.stringify(known.source.files) === JSON.stringify(files);
    if (unchanged || known.source.sha256 === (await sourceDigest())) cached = { path, manifest: known, built: false };
  }
  const save = async (report: Record<string, number>, started: number, activationRanges?: Record<string, [number, number]>) => {
    const manifest: Int8GraphManifest = {
      format: SD_INT8_MANIFEST_FORMAT,
      method: spec.method,
      source: { graph: modelPath, files, sha256: await sourceDigest() },
      calibration: spec.calibration,
      report,
      ...(activationRanges ? { activationRanges } : {}),
      createdAt: new Date().toISOString(),
      buildSeconds: (performance.now() - started) / 1000,
    };
    const tmp = `${manifestPath}.tmp-${process.pid}`;
    await writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
    await rename(tmp, manifestPath);
    return { path, manifest, built: true };
  };
  return { dir, source: join(dir, 'model.onnx'), path, lock: join(dir, `${spec.base}.lock`), cached, save };
}

/**
 * A quantised form an earlier run built (`<base>.onnx` beside the model or in its cache folder), when it is
 * there and its sources are unchanged: how `dfd predict` finds the exact graphs a store's maps came from.
 */
export async function findQuantizedGraph(modelPath: string, base: string, options: SlotOptions = {}): Promise<Int8Graph | undefined> {
  const probe = await quantizedGraphSlot(modelPath, { base, method: '', calibration: null }, options);
  const known = await readManifest(join(probe.dir, `${base}.manifest.json`));
  if (!known) return undefined;
  return (await quantizedGraphSlot(modelPath, { base, method: known.method, calibration: known.calibration }, options)).cached;
}

/**
 * The cached dynamic int8 graph of `modelPath` (`<graph dir>/model.onnx`), rewriting it first when absent or
 * stale; shards starting together build it once (the others wait on the build lock, then find it cached).
 */
export async function ensureInt8Graph(
  modelPath: string,
  options: SlotOptions & { minElements?: number; log?: (message: string) => void } = {},
): Promise<Int8Graph> {
  const minElements = options.minElements ?? DEFAULT_INT8_MIN_ELEMENTS;
  const spec = { base: 'dfd-int8', method: int8Method(minElements), calibration: null };
  const first = await quantizedGraphSlot(modelPath, spec, options);
  if (first.cached) return first.cached;
  return withBuildLock(
    first.lock,
    async () => {
      const slot = await quantizedGraphSlot(modelPath, spec, options); // built by another shard while we waited?
      if (slot.cached) return slot.cached;
      options.log?.(`quantising ${modelPath} to int8 (MatMul weights, DynamicQuantizeMatMul) into ${slot.path}`);
      const started = performance.now();
      const report = await quantizeOnnxMatMuls(slot.source, slot.path, { minElements });
      const built = await slot.save({ ...report }, started);
      options.log?.(`quantised ${report.quantized} MatMuls (${report.biasesFused} biases fused) in ${built.manifest.buildSeconds.toFixed(1)} s`);
      return built;
    },
    options.log ? { log: options.log } : {},
  );
}
