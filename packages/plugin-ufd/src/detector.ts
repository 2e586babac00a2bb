/**
 * The UFD detector: a linear probe on frozen CLIP embeddings. `forward` returns `[B, 1]` logits; the loss
 * is binary cross-entropy with logits on the float label; P(fake) = sigmoid(logit).
 */
import { tf, uniqueVariableName, type Batch, type Detector, type Encoder, type Rng } from '@dfd/core';
import type { UfdConfig } from './config.js';

export class UfdConfigError extends Error {
  override name = 'UfdConfigError';
}

export interface UfdParts {
  encoder?: Encoder;
  rng: Rng;
}

export class UfdDetector implements Detector {
  readonly needs: Detector['needs'];
  readonly dim: number;
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly config: UfdConfig,
    private readonly parts: UfdParts,
  ) {
    const { encoder } = parts;
    if (config.imageInput === 'pixels' && !encoder) {
      throw new UfdConfigError("the ufd detector with imageInput 'pixels' needs an encoder: add `encoder: { use: 'clip', ... }` to the experiment");
    }
    if (encoder && config.dim !== undefined && config.dim !== encoder.info.embedDim) {
      throw new UfdConfigError(`ufd dim ${config.dim} differs from the encoder's embedDim ${encoder.info.embedDim} (${encoder.info.name}): drop 'dim'`);
    }
    const dim = config.dim ?? encoder?.info.embedDim;
    if (dim === undefined) {
      throw new UfdConfigError("the ufd detector needs the embedding size: configure an encoder or set `dim` (e.g. 768 for ViT-L/14)");
    }
    this.dim = dim;
    this.needs = { pixels: config.imageInput === 'pixels', features: config.imageInput === 'features', extras: [], boxes: false };
    const rng = parts.rng;
    // UFD: normal_(fc.weight, 0, init_gain); the bias keeps nn.Linear's default U(-1/√in, 1/√in).
    this.weight = tf.variable(tf.tensor2d(rng.fork('fc.weight').normalArray(dim, 0, config.initStd), [dim, 1]), true, uniqueVariableName('ufd.fc.weight'));
    const bound = 1 / Math.sqrt(dim);
    this.bias = tf.variable(tf.tensor1d(rng.fork('fc.bias').uniformArray(1, -bound, bound)), true, uniqueVariableName('ufd.fc.bias'));
  }

  trainableVariables(): Record<string, tf.Variable> {
    return { 'fc.weight': this.weight, 'fc.bias': this.bias };
  }

  /** `[B, D]` frozen embeddings of the batch. */
  private embeddings(batch: Batch): tf.Tensor2D {
    if (this.config.imageInput === 'features') {
      if (!batch.features) throw new UfdConfigError("ufd: imageInput is 'features' but the loader gave no features: use the 'feature-cache' loader (or imageInput 'pixels')");
      if (batch.features.shape[1] !== this.dim) {
        throw new UfdConfigError(`ufd: cached features have width ${batch.features.shape[1]}, the probe expects ${this.dim}: the cache was made with another encoder`);
      }
      return batch.features;
    }
    if (!batch.pixels) throw new UfdConfigError('ufd: the batch has no pixels');
    return this.parts.encoder!.encodeImage(batch.pixels).embeds;
  }

  forward(batch: Batch, _training: boolean): tf.Tensor2D {
    return tf.tidy(() => tf.add(tf.matMul(this.embeddings(batch), this.weight as tf.Tensor2D), this.bias) as tf.Tensor2D);
  }

  loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
    return tf.tidy(() => {
      const targets = tf.cast(labels, 'float32').reshape([-1, 1]);
      // BCEWithLogitsLoss (mean): max(x, 0) − x·y + log(1 + exp(−|x|)).
      const x = logits;
      return tf.mean(tf.add(tf.sub(tf.relu(x), tf.mul(x, targets)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))))) as tf.Scalar;
    });
  }

  probabilities(logits: tf.Tensor2D): tf.Tensor1D {
    return tf.tidy(() => tf.sigmoid(logits).reshape([-1]) as tf.Tensor1D);
  }

  dispose(): void {
    this.weight.dispose();
    this.bias.dispose();
  }
}
