/**
 * A Stable Diffusion ONNX folder as `tools/sd-onnx/export_sd_onnx.py` writes it: `text_encoder/model.onnx`,
 * `vae_encoder/model.onnx` (+ `config.json`), `unet/model.onnx`, `tokenizer/`, `scheduler/scheduler_config.json`.
 *
 * Opening it checks every file (an error names the missing one and the export command), refuses a VAE
 * encoder that samples inside its graph (older public exports: an unseeded RandomNormal, so maps would
 * change from run to run), and identifies the weights by a digest that goes into every map's settings.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { rememberedSha256 } from '@dfd/core';
import { ClipTokenizer } from '@dfd/encoder-clip';
import { alphasCumprod, readScheduleConfig, type ScheduleConfig } from './schedule.js';
import { createLareSession, inputType, type SessionOptions } from './session.js';
import { DEFAULT_INT8_MIN_ELEMENTS, int8Method, type LarePrecision } from './int8-graph.js';

export class SdModelError extends Error {
  override name = 'SdModelError';
}

export const EXPORT_HINT =
  'export the diffusers folder with: python tools/sd-onnx/export_sd_onnx.py DIFFUSERS_DIR ONNX_DIR (see @dfd/plugin-lare README)';

export interface SdOnnxModel {
  dir: string;
  textEncoder: ort.InferenceSession;
  vaeEncoder: ort.InferenceSession;
  unet: ort.InferenceSession;
  tokenizer: ClipTokenizer;
  schedule: ScheduleConfig;
  alphasCumprod: Float32Array;
  scalingFactor: number;
  /** Latent channels (4 for SD) and the VAE's downsampling factor (8 for SD). */
  latentChannels: number;
  downsample: number;
  /** SHA-256 over the three graphs and their external weights (the fp32 export; int8 rewrites excluded). */
  digest: string;
  /** int8: the UNet (dynamic) or the VAE encoder and UNet (static); the text encoder stays fp32. */
  precision: LarePrecision;
  /** How the int8 graphs were made (method, threshold, calibration); null for fp32. Part of every map's settings. */
  quantization: string | null;
  /**
   * True for dynamic int8: activation ranges are taken per call over the whole batch, so in a batch a map
   * would depend (2.5e-4 on the tiny SD) on the other images sharing its call; the extractor then runs one
   * image per call. fp32 and static int8 maps do not depend on their batch.
   */
  batchDependent: boolean;
  /** The element type of the UNet's timestep input (int64 for our export; some exports use float32). */
  timestepType: string;
  /** The element type of the text encoder's input_ids (int64, or int32 in some exports). */
  idsType: string;
  dispose(): Promise<void>;
}

const GRAPHS = ['text_encoder', 'vae_encoder', 'unet'] as const;

export interface OpenSdOptions extends SessionOptions {
  /**
   * Files opened as they are instead of `<dir>/<graph>/model.onnx` (static int8 graphs, calibration probes;
   * see static-int8.ts). The weights digest is still the export's.
   */
  graphFiles?: Partial<Record<'vae_encoder' | 'unet', string>>;
  /** With `graphFiles` of quantised graphs: how they were made (goes into every map's settings). */
  quantization?: string;
}

function need(path: string, what: string): void {
  if (!existsSync(path)) throw new SdModelError(`${path} is missing (${what}); ${EXPORT_HINT}`);
}

/** Files making up one graph: model.onnx and any external-data files beside it. */
async function graphFiles(dir: string): Promise<string[]> {
  // `dfd-*` files are our own int8 rewrites (int8-graph.ts), not part of the export.
  const names = (await readdir(dir)).filter((n) => !n.startsWith('dfd-')).filter((n) => n === 'model.onnx' || n.endsWith('.onnx_data') || n.endsWith('.data') || n === 'weights.pb');
  return names.sort().map((n) => join(dir, n));
}

/**
 * The weights digest: SHA-256 over every graph file's own digest. Those are remembered across processes by
 * path, size, mtime, ctime and inode (core's `rememberedSha256`, `<dfd cache>/file-digests.jsonl`; not in the
 * model folder, which may be read-only or shared): hashing SD 1.5's 3.4 GB UNet takes seconds, and shards on
 * many machines must agree on it, so it is a content hash, not a file date.
 */
async function modelDigest(dir: string): Promise<string> {
  const files = (await Promise.all(GRAPHS.map((g) => graphFiles(join(dir, g))))).flat();
  const hash = createHash('sha256');
  for (const file of files) hash.update(`${file.slice(dir.length)}:${await rememberedSha256(file)}\n`);
  return hash.digest('hex');
}

/**
 * True when the graph holds a RandomNormal(Like) node. ONNX stores op types as plain strings, so a byte
 * search of the graph file finds them without a protobuf parser (weights in external files are not searched).
 */
export async function samplesInGraph(modelPath: string): Promise<boolean> {
  const bytes = await readFile(modelPath);
  return bytes.includes('RandomNormal') || bytes.includes('RandomUniform');
}

async function readVaeConfig(dir: string): Promise<Record<string, unknown>> {
  for (const path of [join(dir, 'vae_encoder', 'config.json'), join(dir, 'vae', 'config.json')]) {
    if (existsSync(path)) return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  }
  throw new SdModelError(`${join(dir, 'vae_encoder', 'config.json')} is missing (the VAE config with scaling_factor); ${EXPORT_HINT}`);
}

/** The tokenizer's padded length (`model_max_length`: 77 for SD), 77 when the config has none or a placeholder. */
function contextLength(dir: string): number {
  try {
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer', 'tokenizer_config.json'), 'utf8')) as { model_max_length?: number };
    const n = config.model_max_length;
    return typeof n === 'number' && n > 1 && n < 100_000 ? n : 77;
  } catch {
    return 77;
  }
}

export async function openSdOnnx(dir: string, options: OpenSdOptions = {}): Promise<SdOnnxModel> {
  for (const graph of GRAPHS) need(join(dir, graph, 'model.onnx'), `the ${graph.replace('_', ' ')} graph`);
  need(join(dir, 'scheduler', 'scheduler_config.json'), 'the noise schedule');
  need(join(dir, 'tokenizer', 'vocab.json'), "the CLIP tokenizer's vocabulary");
  const vaePath = join(dir, 'vae_encoder', 'model.onnx');
  if (await samplesInGraph(vaePath)) {
    throw new SdModelError(
      `${vaePath} draws its latent sample inside the graph (an unseeded RandomNormal node: an older ONNX export), so LaRE maps ` +
        `would change from run to run and could not be reproduced. Re-export with a deterministic VAE encoder (it returns latent_mean and latent_logvar): ${EXPORT_HINT}`,
    );
  }
  const schedule = await readScheduleConfig(join(dir, 'scheduler', 'scheduler_config.json'));
  const vae = await readVaeConfig(dir);
  const scalingFactor = typeof vae.scaling_factor === 'number' ? vae.scaling_factor : 0.18215;
  const blocks = Array.isArray(vae.block_out_channels) ? vae.block_out_channels.length : 4;
  const latentChannels = typeof vae.latent_channels === 'number' ? vae.latent_channels : 4;
  const tokenizer = await ClipTokenizer.fromFolder(join(dir, 'tokenizer'), { contextLength: contextLength(dir) });
  const digest = await modelDigest(dir);
  const sessions: ort.InferenceSession[] = [];
  try {
    // Dynamic int8 quantises the UNet only: it is >90% of the time, and the VAE encoder is mostly
    // convolutions (ConvInteger is slower than fp32). The text encoder runs once per extractor.
    for (const graph of GRAPHS) {
      const file = graph === 'text_encoder' ? undefined : options.graphFiles?.[graph];
      const precision = graph === 'unet' && !file ? (options.precision ?? 'fp32') : 'fp32';
      sessions.push(await createLareSession(file ?? join(dir, graph, 'model.onnx'), { ...options, precision }));
    }
  } catch (error) {
    await Promise.all(sessions.map((s) => s.release()));
    throw error;
  }
  const [textEncoder, vaeEncoder, unet] = sessions as [ort.InferenceSession, ort.InferenceSession, ort.InferenceSession];
  const outputs = vaeEncoder.outputNames;
  if (!outputs.includes('latent_mean') || !outputs.includes('latent_logvar')) {
    await Promise.all(sessions.map((s) => s.release()));
    throw new SdModelError(
      `${vaePath} has outputs [${outputs.join(', ')}]; LaRE needs latent_mean and latent_logvar (a deterministic encoder) to draw the sample itself. ${EXPORT_HINT}`,
    );
  }
  return {
    dir,
    textEncoder,
    vaeEncoder,
    unet,
    tokenizer,
    schedule,
    alphasCumprod: alphasCumprod(schedule),
    scalingFactor,
    latentChannels,
    downsample: 2 ** (blocks - 1),
    digest,
    precision: options.precision ?? 'fp32',
    quantization: options.quantization ?? (options.precision === 'int8' ? `unet: ${int8Method(options.int8MinElements ?? DEFAULT_INT8_MIN_ELEMENTS)}` : null),
    batchDependent: options.precision === 'int8' && !options.graphFiles,
    timestepType: inputType(unet, 'timestep') ?? 'int64',
    idsType: inputType(textEncoder, 'input_ids') ?? 'int64',
    async dispose() {
      await Promise.all(sessions.map((s) => s.release()));
    },
  };
}
