/**
 * The fast frozen image path: CLIP's vision tower on onnxruntime-node (CPU by default; CUDA when the user
 * installed onnxruntime's CUDA add-on). The ONNX file takes `pixel_values [B, 3, H, W]` and returns
 * `image_embeds [B, D]` and `last_hidden_state [B, 1 + h·w, width]` (the layout of transformers'
 * CLIPVisionModelWithProjection export and of tools/fixtures/clip/make_fixtures.py's `export_onnx`).
 */
import { createHash } from 'node:crypto';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { SafetensorsFile, sha256File, type EncoderInfo, type FrozenImageEncoder } from '@dfd/core';
import { readClipConfig, type ClipConfig } from './config.js';
import { CLIP_MEAN, CLIP_STD } from './clip-encoder.js';
import { checkPrecision, createOnnxSession, type FrozenPrecision } from './onnx-session.js';
import { ensureClipVisionOnnx } from './onnx-build/build-cache.js';
import { concatFloat32 } from './float32.js';
import type { CalibrationSet } from './onnx-build/calibrate.js';

export class ClipOnnxError extends Error {
  override name = 'ClipOnnxError';
}

export interface OnnxClipOptions {
  /** Path of the ONNX file; default `<dir>/onnx/vision_model.onnx`. */
  onnx?: string;
  /** `cpu` (default) or `cuda` (needs onnxruntime-node installed with ONNXRUNTIME_NODE_INSTALL=cuda12). */
  device?: 'cpu' | 'cuda';
  /** Intra-op threads (default: onnxruntime's choice, all cores). */
  threads?: number;
  /**
   * `fp32` (default): the folder's exported `onnx/vision_model.onnx` when present, else our own fp32 graph
   * built from `model.safetensors`. `int8`: our graph with int8 encoder weights (built once, cached beside
   * the model). `bf16`: refused on CPU, with the measured reason.
   */
  precision?: FrozenPrecision;
  /**
   * int8 only: quantise activations statically, with ranges calibrated on these preprocessed images
   * (`calibrationSet`); the graph is cached per calibration set. Without it int8 is dynamic.
   */
  calibration?: CalibrationSet;
  /** With a calibration set: SmoothQuant's α (default 0, no smoothing; 0.5 is the paper's, for checkpoints with outlier channels). */
  smoothAlpha?: number;
  /** Progress lines (graph builds). */
  log?: (message: string) => void;
}

const CANDIDATES = ['onnx/vision_model.onnx', 'onnx/model.onnx', 'vision_model.onnx'];

export async function findClipOnnx(dir: string, explicit?: string): Promise<string> {
  const candidates = explicit ? [explicit] : CANDIDATES.map((c) => join(dir, c));
  for (const path of candidates) {
    try {
      await access(path);
      return path;
    } catch {
      // next
    }
  }
  throw new ClipOnnxError(
    `no ONNX vision tower found (looked for ${candidates.join(', ')}). Export one with ` +
      "tools/fixtures/clip/make_fixtures.py's export_onnx (outputs image_embeds and last_hidden_state), or pass --onnx PATH / engine 'tfjs'",
  );
}

/** `exp(logit_scale)` from the folder's weights when present (a header read and 4 bytes), else from config.json. */
async function readLogitScale(dir: string, config: ClipConfig): Promise<number> {
  try {
    const file = await SafetensorsFile.open(join(dir, 'model.safetensors'));
    try {
      if (file.has('logit_scale')) return Math.exp((await file.readFloat32('logit_scale')).data[0]!);
    } finally {
      await file.close();
    }
  } catch {
    // an ONNX-only folder: fall back to the config's value
  }
  return Math.exp(config.logitScaleInit);
}

/**
 * How dynamic int8 is run, part of its `weightsDigest` (feature-cache keys, run facts): its features depend on
 * which images share a call, so features computed in batches (before `embed` went one image per call) must
 * not share a cache namespace with per-image ones, though the graph is the same.
 */
const DYNAMIC_INT8_EXECUTION = 'dynamic int8 activations, one image per call';

/** Which graph file to open, and how to digest it (a built graph's manifest digest covers its weights file too). */

async function resolveGraph(
  dir: string,
  precision: FrozenPrecision,
  options: OnnxClipOptions,
): Promise<{ path: string; digest: () => Promise<string> }> {
  if (options.onnx) {
    if (precision !== 'fp32' || options.calibration) {
      throw new ClipOnnxError(
        `--onnx ${options.onnx} is used as given (fp32); for precision '${precision}' leave --onnx out and the graph is built from ${dir}/model.safetensors`,
      );
    }
    const path = await findClipOnnx(dir, options.onnx);
    return { path, digest: () => sha256File(path) };
  }
  if (options.calibration && precision !== 'int8') {
    throw new ClipOnnxError(`a calibration set is for precision int8 (static activation ranges); precision '${precision}' takes none`);
  }
  if (precision === 'fp32') {
    const exported = await findClipOnnx(dir).catch(() => undefined);
    if (exported) return { path: exported, digest: () => sha256File(exported) };
  }
  try {
    await access(join(dir, 'model.safetensors'));
  } catch {
    throw new ClipOnnxError(
      `no ONNX vision tower and nothing to build one from in ${dir}: looked for ${CANDIDATES.join(', ')} and model.safetensors. ` +
        "Point --model at a Hugging Face CLIP folder (config.json + model.safetensors), or pass --onnx PATH / engine 'tfjs'",
    );
  }
  try {
    const built = await ensureClipVisionOnnx(dir, precision as 'fp32' | 'int8', {
      ...(options.log ? { log: options.log } : {}),
      ...(options.calibration ? { calibration: options.calibration } : {}),
      ...(options.smoothAlpha !== undefined ? { smoothAlpha: options.smoothAlpha } : {}),
      ...(options.threads ? { threads: options.threads } : {}),
    });
    return { path: built.path, digest: async () => built.manifest.digest };
  } catch (error) {
    throw new ClipOnnxError(`cannot build the ${precision} ONNX vision tower of ${dir}: ${(error as Error).message}`);
  }
}

/** What a frozen CLIP image tower of `dir` reports about itself (sizes, normalisation, logit scale). */
export async function clipEncoderInfo(dir: string, config?: ClipConfig): Promise<EncoderInfo> {
  const c = config ?? (await readClipConfig(dir));
  const v = c.vision;
  return {
    name: c.name,
    imageSize: v.imageSize,
    embedDim: c.projectionDim,
    visionWidth: v.hiddenSize,
    textWidth: c.text.hiddenSize,
    contextLength: c.text.maxPositions,
    gridSize: v.imageSize / v.patchSize,
    logitScale: await readLogitScale(dir, c),
    mean: CLIP_MEAN,
    std: CLIP_STD,
  };
}

export class OnnxClipImageEncoder implements FrozenImageEncoder {
  readonly engine: string;

  private constructor(
    readonly info: EncoderInfo,
    readonly config: ClipConfig,
    readonly path: string,
    readonly weightsDigest: string,
    private readonly session: ort.InferenceSession,
    device: string,
    /** The precision of the graph's encoder weights; part of feature-cache keys and run facts. */
    readonly precision: FrozenPrecision,
    /** int8 activations: quantised at run time, or with ranges calibrated once. */
    readonly quantization: 'none' | 'dynamic' | 'static',
  ) {
    this.engine = `onnxruntime-${device}${precision === 'fp32' ? '' : `-${precision}`}${quantization === 'static' ? '-static' : ''}`;
  }

  /**
   * Opens the vision tower of a CLIP folder: `options.onnx`, else (fp32) `<dir>/onnx/vision_model.onnx`, else
   * the graph our writer builds from `<dir>/model.safetensors` in the asked precision (no Python, no export).
   */
  static async create(dir: string, options: OnnxClipOptions = {}): Promise<OnnxClipImageEncoder> {
    const config = await readClipConfig(dir);
    const device = options.device ?? 'cpu';
    const precision = options.precision ?? 'fp32';
    try {
      checkPrecision(precision, device);
    } catch (error) {
      throw new ClipOnnxError((error as Error).message);
    }
    const { path, digest } = await resolveGraph(dir, precision, options);
    let session: ort.InferenceSession;
    try {
      session = await createOnnxSession(path, { device, ...(options.threads ? { threads: options.threads } : {}) });
    } catch (error) {
      throw new ClipOnnxError((error as Error).message);
    }
    for (const name of ['image_embeds', 'last_hidden_state']) {
      if (!session.outputNames.includes(name)) {
        await session.release();
        throw new ClipOnnxError(
          `${path} has outputs [${session.outputNames.join(', ')}]; the CLIP vision tower export must output image_embeds and last_hidden_state`,
        );
      }
    }
    if (!session.inputNames.includes('pixel_values')) {
      await session.release();
      throw new ClipOnnxError(`${path} has inputs [${session.inputNames.join(', ')}]; expected pixel_values [B, 3, H, W]`);
    }
    const info = await clipEncoderInfo(dir, config);
    const quantization = precision !== 'int8' ? 'none' : options.calibration ? 'static' : 'dynamic';
    const graphDigest = await digest();
    const weightsDigest = quantization === 'dynamic' ? createHash('sha256').update(`${graphDigest}|${DYNAMIC_INT8_EXECUTION}`).digest('hex') : graphDigest;
    return new OnnxClipImageEncoder(info, config, path, weightsDigest, session, device, precision, quantization);
  }

  /**
   * Embeds `count` preprocessed images. Dynamic int8 runs them one per call: its activation ranges are
   * taken over the whole input, so in a batch an image's features would depend on its neighbours (measured
   * on the tiny CLIP: batch 64 against one per call, max relative difference 2.6e-2, min cosine 0.99977).
   * fp32 and static int8 give the same features in any batch.
   */
  async embed(pixels: Float32Array, count: number, options: { patchTokens?: boolean } = {}): Promise<{ embeds: Float32Array; patchTokens?: Float32Array }> {
    const size = this.info.imageSize;
    const expected = count * 3 * size * size;
    if (pixels.length !== expected) {
      throw new ClipOnnxError(`embed: ${count} images of [3, ${size}, ${size}] need ${expected} floats, got ${pixels.length}`);
    }
    if (this.quantization !== 'dynamic' || count === 1) return this.embedBatch(pixels, count, options);
    const per = 3 * size * size;
    const parts = [];
    for (let i = 0; i < count; i++) parts.push(await this.embedBatch(pixels.subarray(i * per, (i + 1) * per), 1, options));
    return {
      embeds: concatFloat32(parts.map((p) => p.embeds)),
      ...(options.patchTokens ? { patchTokens: concatFloat32(parts.map((p) => p.patchTokens!)) } : {}),
    };
  }

  private async embedBatch(pixels: Float32Array, count: number, options: { patchTokens?: boolean }): Promise<{ embeds: Float32Array; patchTokens?: Float32Array }> {
    const size = this.info.imageSize;
    const input = new ort.Tensor('float32', pixels, [count, 3, size, size]);
    const wanted = options.patchTokens ? ['image_embeds', 'last_hidden_state'] : ['image_embeds'];
    const outputs = await this.session.run({ pixel_values: input }, wanted);
    const embeds = outputs.image_embeds!.data as Float32Array;
    const result: { embeds: Float32Array; patchTokens?: Float32Array } = { embeds: embeds.slice() };
    if (options.patchTokens) {
      const hidden = outputs.last_hidden_state!.data as Float32Array;
      const width = this.info.visionWidth;
      const tokens = this.info.gridSize * this.info.gridSize;
      const patch = new Float32Array(count * tokens * width);
      // Drop the class token of each image; [B, h·w, width] row-major is already [B, h, w, width].
      for (let b = 0; b < count; b++) {
        const from = (b * (tokens + 1) + 1) * width;
        patch.set(hidden.subarray(from, from + tokens * width), b * tokens * width);
      }
      result.patchTokens = patch;
    }
    for (const tensor of Object.values(outputs)) tensor.dispose?.();
    input.dispose?.();
    return result;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
