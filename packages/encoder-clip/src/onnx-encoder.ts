/**
 * The fast frozen image path: CLIP's vision tower on onnxruntime-node (CPU by default; CUDA when the user
 * installed onnxruntime's CUDA add-on). The ONNX file takes `pixel_values [B, 3, H, W]` and returns
 * `image_embeds [B, D]` and `last_hidden_state [B, 1 + h·w, width]` (the layout of transformers'
 * CLIPVisionModelWithProjection export and of tools/fixtures/clip/make_fixtures.py's `export_onnx`).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { SafetensorsFile, type EncoderInfo, type FrozenImageEncoder } from '@dfd/core';
import { readClipConfig, type ClipConfig } from './config.js';
import { CLIP_MEAN, CLIP_STD } from './clip-encoder.js';

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

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
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
  ) {
    this.engine = `onnxruntime-${device}`;
  }

  /** Opens `<dir>/onnx/vision_model.onnx` (or `options.onnx`), reading the architecture from `<dir>/config.json`. */
  static async create(dir: string, options: OnnxClipOptions = {}): Promise<OnnxClipImageEncoder> {
    const config = await readClipConfig(dir);
    const path = await findClipOnnx(dir, options.onnx);
    const device = options.device ?? 'cpu';
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
      graphOptimizationLevel: 'all',
    };
    if (options.threads) sessionOptions.intraOpNumThreads = options.threads;
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(path, sessionOptions);
    } catch (error) {
      const hint = device === 'cuda' ? ' For CUDA, reinstall onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12, or use device cpu.' : '';
      throw new ClipOnnxError(`cannot load ONNX model ${path}: ${(error as Error).message.split('\n')[0]}.${hint}`);
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
    const v = config.vision;
    const info: EncoderInfo = {
      name: config.name,
      imageSize: v.imageSize,
      embedDim: config.projectionDim,
      visionWidth: v.hiddenSize,
      textWidth: config.text.hiddenSize,
      contextLength: config.text.maxPositions,
      gridSize: v.imageSize / v.patchSize,
      logitScale: await readLogitScale(dir, config),
      mean: CLIP_MEAN,
      std: CLIP_STD,
    };
    return new OnnxClipImageEncoder(info, config, path, await sha256(path), session, device);
  }

  async embed(pixels: Float32Array, count: number, options: { patchTokens?: boolean } = {}): Promise<{ embeds: Float32Array; patchTokens?: Float32Array }> {
    const size = this.info.imageSize;
    const expected = count * 3 * size * size;
    if (pixels.length !== expected) {
      throw new ClipOnnxError(`embed: ${count} images of [3, ${size}, ${size}] need ${expected} floats, got ${pixels.length}`);
    }
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
