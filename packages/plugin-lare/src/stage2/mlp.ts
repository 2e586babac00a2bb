/**
 * `lare-mlp`: the simplest use of the LaRE map (the seed's "Enhancement 1"): adaptive-average-pool the
 * `[B, 4, 32, 32]` map to `poolSize²`, flatten in PyTorch's NCHW order, then Linear → ReLU (→ dropout) per hidden
 * layer and a final Linear to `outputDim`. Image features are not used.
 */
import { configToken, Dropout, dropoutState, inject, injectable, Linear, ParameterSet, tf, TOKENS, type EnhancerInput, type FeatureEnhancer, type Rng } from '@dfd/core';
import type { LareMlpConfig } from './config.js';
import { AdaptivePool, lareMap } from './map.js';

@injectable()
export class LareMlpEnhancer implements FeatureEnhancer {
  readonly name = 'lare-mlp';
  readonly requires: string[];
  readonly outputDim: number;
  private readonly params = new ParameterSet('lare_mlp');
  private readonly layers: Linear[] = [];
  private readonly dropout: Dropout;
  private readonly pool: AdaptivePool;

  constructor(
    @inject(configToken('enhancer')) readonly config: LareMlpConfig,
    @inject(TOKENS.Rng) rng: Rng,
  ) {
    this.requires = [config.mapKey];
    this.outputDim = config.outputDim;
    const r = rng.fork('lare-mlp');
    const widths = [config.mapChannels * config.poolSize * config.poolSize, ...config.hidden, config.outputDim];
    for (let i = 0; i + 1 < widths.length; i++) this.layers.push(new Linear(this.params, `mlp.${i}`, widths[i]!, widths[i + 1]!, r));
    this.dropout = new Dropout(config.dropout, r.fork('dropout'), 'lare_mlp.dropout');
    this.pool = new AdaptivePool(config.poolSize);
  }

  trainableVariables(): Record<string, tf.Variable> {
    return this.params.all();
  }

  /** The dropout's call counter, so a resumed run draws the masks an uninterrupted one would. */
  stateTensors(): Record<string, tf.Variable> {
    return dropoutState({ dropout: this.dropout });
  }

  enhance(input: EnhancerInput): tf.Tensor2D {
    return tf.tidy(() => {
      const map = lareMap(input.extras, this.config.mapKey, this.config.mapChannels, 'lare-mlp');
      let x: tf.Tensor = this.pool.apply(map).reshape([map.shape[0], -1]);
      this.layers.forEach((layer, i) => {
        x = layer.apply(x);
        if (i + 1 < this.layers.length) x = this.dropout.apply(tf.relu(x), input.training);
      });
      return x as tf.Tensor2D;
    });
  }

  dispose(): void {
    this.params.dispose();
    this.pool.dispose();
    this.dropout.dispose();
  }
}
