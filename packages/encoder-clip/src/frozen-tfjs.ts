/**
 * The tfjs towers behind the `FrozenImageEncoder` interface, so callers (`dfd encode`, feature caches)
 * switch engines with one option. Slower than onnxruntime; needs no ONNX export.
 */
import { sha256File, tf, type EncoderInfo, type FrozenImageEncoder } from '@dfd/core';
import type { ClipEncoder } from './clip-encoder.js';
import { findWeightsFile } from './weights.js';

export class TfjsClipImageEncoder implements FrozenImageEncoder {
  readonly engine: string;

  private constructor(
    private readonly encoder: ClipEncoder,
    readonly weightsDigest: string,
    private readonly ownsEncoder: boolean,
  ) {
    this.engine = `tfjs-${tf.getBackend()}`;
  }

  get info(): EncoderInfo {
    return this.encoder.info;
  }

  /** Wraps a loaded encoder; `ownsEncoder` disposes it with this wrapper. */
  static async wrap(encoder: ClipEncoder, ownsEncoder = false): Promise<TfjsClipImageEncoder> {
    const path = findWeightsFile(encoder.source);
    return new TfjsClipImageEncoder(encoder, await sha256File(path), ownsEncoder);
  }

  async embed(pixels: Float32Array, count: number, options: { patchTokens?: boolean } = {}): Promise<{ embeds: Float32Array; patchTokens?: Float32Array }> {
    const size = this.info.imageSize;
    const input = tf.tensor4d(pixels, [count, 3, size, size]);
    try {
      const features = this.encoder.encodeImage(input, { patchTokens: options.patchTokens ?? false });
      const embeds = (await features.embeds.data()) as Float32Array;
      features.embeds.dispose();
      const result: { embeds: Float32Array; patchTokens?: Float32Array } = { embeds };
      if (features.patchTokens) {
        result.patchTokens = (await features.patchTokens.data()) as Float32Array;
        features.patchTokens.dispose();
      }
      return result;
    } finally {
      input.dispose();
    }
  }

  async dispose(): Promise<void> {
    if (this.ownsEncoder) this.encoder.dispose();
  }
}
