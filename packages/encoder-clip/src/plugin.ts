/**
 * The @dfd/encoder-clip plugin: the `encoder: clip` component and the `dfd encode` command.
 *
 * The component is built synchronously inside the experiment's container (the runner selects the tfjs
 * backend before it assembles components). `engine`/`onnx`/`device` choose the fast frozen image path that
 * `frozenImageEncoderFor(config)` opens for feature extraction; the component itself is the trainable tfjs
 * encoder, since onnxruntime has no text tower and no gradients.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { definePlugin, type FrozenEncoderContext, type FrozenImageEncoder } from '@dfd/core';
import { loadClip, loadClipSync } from './load.js';
import { clipEncoderInfo, OnnxClipImageEncoder } from './onnx-encoder.js';
import type { CalibrationSet } from './onnx-build/calibrate.js';
import { calibrationImages, drawCalibrationImages } from './cli/calibration.js';
import { imagesFromGlob, imagesFromList } from './cli/image-list.js';
import { evalViewSource, pilSource } from './cli/pixel-sources.js';
import { OnnxSessionError } from './onnx-session.js';
import { TfjsClipImageEncoder } from './frozen-tfjs.js';
import { encodeCommand } from './cli/encode.js';

export const clipEncoderConfig = z.object({
  /** Hugging Face CLIP folder: config.json, model.safetensors, vocab.json, merges.txt. */
  model: z.string().min(1),
  /** ONNX vision tower; default `<model>/onnx/vision_model.onnx`. */
  onnx: z.string().optional(),
  /** Engine of the frozen image path (feature extraction). */
  engine: z.enum(['tfjs', 'onnx']).default('tfjs'),
  /** onnxruntime device for the frozen image path. */
  device: z.enum(['cpu', 'cuda']).default('cpu'),
  /**
   * Precision of the frozen onnxruntime image path: `int8` builds (once, cached beside the model) a graph
   * with int8 encoder weights from model.safetensors; `bf16` is refused on CPU with the measured reason.
   */
  precision: z.enum(['fp32', 'bf16', 'int8']).default('fp32'),
  /**
   * int8 only: quantise activations statically (QDQ) with ranges calibrated on `count` images drawn evenly
   * from `images` (a glob, a list file as for `dfd encode --dataset`, or paths), preprocessed as the feature
   * cache's loader makes its pixels (so `dfd encode --preset P --calibrate N` builds the same graph).
   * Draw them from the training split: calibrating on test images would let the test set shape the model.
   */
  calibrate: z
    .object({
      images: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
      count: z.number().int().positive().default(256),
      /** SmoothQuant's α (0: off, the default; 0.5 is the paper's, for checkpoints with outlier channels). */
      smoothAlpha: z.number().min(0).max(1).default(0),
    })
    .optional(),
  /** Which tower is fine-tuned; CLIP stays frozen by default (prompt learning). */
  trainable: z.enum(['none', 'vision', 'text', 'all']).default('none'),
});

export type ClipEncoderConfig = z.output<typeof clipEncoderConfig>;

/**
 * The calibration set a config names: its images, preprocessed as the feature cache that opens the encoder
 * makes its pixels (`context`), else with CLIP's eval transform (Pillow bicubic); unreadable ones left out.
 */
async function calibrationFromConfig(config: ClipEncoderConfig, calibrate: NonNullable<ClipEncoderConfig['calibrate']>, context?: FrozenEncoderContext): Promise<CalibrationSet> {
  if (config.precision !== 'int8') throw new OnnxSessionError(`calibrate is for precision 'int8' (static activation ranges), not '${config.precision}'`);
  const images = calibrate.images;
  const paths = Array.isArray(images)
    ? images.map((p) => resolve(p))
    : /[*?{[]/.test(images)
      ? await imagesFromGlob(images, process.cwd())
      : await imagesFromList(images, process.cwd());
  const source = context ? evalViewSource(context) : pilSource('pil', () => undefined);
  const log = (message: string) => process.stderr.write(`[dfd] encoder clip: ${message}\n`);
  return calibrationImages(drawCalibrationImages(paths, calibrate.count), source, await clipEncoderInfo(config.model), log);
}

/** The frozen image path a config asks for (onnxruntime or the tfjs towers); `context`: from the feature cache that opens it. */
export async function frozenImageEncoderFor(config: ClipEncoderConfig, context?: FrozenEncoderContext): Promise<FrozenImageEncoder> {
  if (config.engine === 'onnx') {
    const calibration = config.calibrate ? await calibrationFromConfig(config, config.calibrate, context) : undefined;
    return OnnxClipImageEncoder.create(config.model, {
      device: config.device,
      precision: config.precision,
      ...(config.onnx ? { onnx: config.onnx } : {}),
      ...(calibration ? { calibration, smoothAlpha: config.calibrate!.smoothAlpha } : {}),
    });
  }
  if (config.precision !== 'fp32') throw new OnnxSessionError(`precision '${config.precision}' needs engine 'onnx' (the tfjs towers are fp32)`);
  return TfjsClipImageEncoder.wrap(await loadClip(config.model), true);
}

export const clipPlugin = definePlugin({
  name: '@dfd/encoder-clip',
  version: '0.1.0',
  register(registrar) {
    registrar.add({
      kind: 'encoder',
      name: 'clip',
      description: 'CLIP (ViT) image and text towers in tfjs from a Hugging Face folder; frozen unless `trainable` says otherwise',
      config: clipEncoderConfig,
      useFactory: (config) => {
        if (config.calibrate && (config.precision !== 'int8' || config.engine !== 'onnx')) {
          throw new OnnxSessionError(`calibrate is for engine 'onnx' with precision 'int8' (static activation ranges); this config has engine '${config.engine}', precision '${config.precision}'`);
        }
        const encoder = loadClipSync(config.model);
        if (config.trainable !== 'none') encoder.setTrainable(config.trainable);
        // With engine 'onnx', frozen feature extraction (core's feature cache) runs on onnxruntime over the
        // checkpoint's ONNX export; otherwise the cache uses this encoder's own tfjs image tower.
        if (config.engine === 'onnx') {
          const frozenPrecision = config.precision === 'int8' && config.calibrate ? 'int8-static' : config.precision;
          return Object.assign(encoder, { frozenImageEncoder: (context?: FrozenEncoderContext) => frozenImageEncoderFor(config, context), frozenPrecision });
        }
        if (config.precision !== 'fp32') throw new OnnxSessionError(`precision '${config.precision}' needs engine 'onnx' (the tfjs towers are fp32)`);
        return encoder;
      },
    });
    registrar.command(encodeCommand);
  },
});

export default clipPlugin;
