/**
 * A `FrozenImageEncoder` over any `Encoder`'s own image tower (tfjs), for encoders that offer no faster
 * frozen path. Its weights digest is a fingerprint of the tower's output on a fixed probe batch: it needs
 * nothing beyond the Encoder contract, and any change of the image weights changes it.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import type { Encoder, FrozenImageEncoder } from '../contracts.js';
import { rngFor } from '../rng.js';

export class FrozenEncoderError extends Error {
  override name = 'FrozenEncoderError';
}

export function imageTowerFingerprint(encoder: Encoder): string {
  const size = encoder.info.imageSize;
  const probe = rngFor(0, 'dfd/feature-cache/probe').normalArray(2 * 3 * size * size);
  const embeds = tf.tidy(() => encoder.encodeImage(tf.tensor4d(probe, [2, 3, size, size])).embeds.dataSync() as Float32Array);
  return createHash('sha256')
    .update(JSON.stringify({ name: encoder.info.name, embedDim: encoder.info.embedDim, imageSize: size }))
    .update(new Uint8Array(embeds.buffer, embeds.byteOffset, embeds.byteLength))
    .digest('hex');
}

export class EncoderImagePath implements FrozenImageEncoder {
  readonly engine: string;
  readonly weightsDigest: string;

  constructor(private readonly encoder: Encoder) {
    if (Object.keys(encoder.trainableVariables()).length > 0) {
      throw new FrozenEncoderError(
        `the encoder ${encoder.info.name} has trainable weights: cached features would go stale as it trains. ` +
          "Keep the encoder frozen (trainable: 'none') or use the 'images' loader with imageInput 'pixels'",
      );
    }
    this.engine = `tfjs-${tf.getBackend()}`;
    this.weightsDigest = imageTowerFingerprint(encoder);
  }

  get info() {
    return this.encoder.info;
  }

  async embed(pixels: Float32Array, count: number, options: { patchTokens?: boolean } = {}): Promise<{ embeds: Float32Array; patchTokens?: Float32Array }> {
    const size = this.info.imageSize;
    const result = tf.tidy(() => {
      const features = this.encoder.encodeImage(tf.tensor4d(pixels, [count, 3, size, size]), { patchTokens: options.patchTokens ?? false });
      return [features.embeds, ...(features.patchTokens ? [features.patchTokens] : [])];
    });
    try {
      const embeds = (await result[0]!.data()) as Float32Array;
      return result[1] ? { embeds, patchTokens: (await result[1].data()) as Float32Array } : { embeds };
    } finally {
      tf.dispose(result);
    }
  }

  async dispose(): Promise<void> {
    // The encoder belongs to the experiment, not to this view of it.
  }
}
