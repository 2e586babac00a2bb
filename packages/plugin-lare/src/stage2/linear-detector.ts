/**
 * `lare-linear`: LaRE alone — a linear head on the map (the ablation's "no CLIP" row). The `[B, C, h, w]` map
 * is adaptive-average-pooled to `poolSize²`, flattened in NCHW order, standardised per feature by a fixed
 * scale (LaRE errors are small numbers) and mapped to two logits (softmax, class 1 = fake).
 */
import { z } from 'zod';
import { configToken, inject, injectable, Linear, ParameterSet, tf, TOKENS, type Batch, type Detector, type Rng } from '@dfd/core';
import { AdaptivePool, lareMap } from './map.js';

export const LareLinearConfigSchema = z
  .object({
    mapKey: z.string().min(1).default('lare'),
    mapChannels: z.number().int().positive().default(4),
    poolSize: z.number().int().positive().default(4),
    /** Multiplies the map before the linear layer (maps are mean squared errors, ~1e-2 for SD). */
    scale: z.number().positive().default(1),
  })
  .strict();
export type LareLinearConfig = z.output<typeof LareLinearConfigSchema>;

@injectable()
export class LareLinearDetector implements Detector {
  readonly needs: Detector['needs'];
  private readonly params = new ParameterSet('lare_linear');
  private readonly head: Linear;
  private readonly pool: AdaptivePool;

  constructor(
    @inject(configToken('detector')) readonly config: LareLinearConfig,
    @inject(TOKENS.Rng) rng: Rng,
  ) {
    this.needs = { pixels: false, features: false, extras: [config.mapKey], boxes: false };
    this.head = new Linear(this.params, 'head', config.mapChannels * config.poolSize * config.poolSize, 2, rng.fork('lare-linear'));
    this.pool = new AdaptivePool(config.poolSize);
  }

  trainableVariables(): Record<string, tf.Variable> {
    return this.params.all();
  }

  forward(batch: Batch, _training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      const map = lareMap(batch.extras ?? {}, this.config.mapKey, this.config.mapChannels, 'lare-linear');
      const x = tf.mul(this.pool.apply(map).reshape([map.shape[0], -1]), this.config.scale);
      return this.head.apply(x) as tf.Tensor2D;
    });
  }

  loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
    return tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.cast(labels, 'int32'), 2), logits) as tf.Scalar);
  }

  probabilities(logits: tf.Tensor2D): tf.Tensor1D {
    return tf.tidy(() => tf.squeeze(tf.slice(tf.softmax(logits), [0, 1], [-1, 1]), [1]) as tf.Tensor1D);
  }

  dispose(): void {
    this.params.dispose();
    this.pool.dispose();
  }
}
