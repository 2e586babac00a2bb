/**
 * `lare-egre`: LaRE²'s error-guided refinement (V6, shared/reference/methods.md §6.2) on CLIP ViT patch tokens
 * (CLaRE's adaptation, §8.2: 14×14 tokens for ViT-B/16, 16×16 for ViT-L/14 at 224 px).
 *
 * EGSR (LaRE `MultiHeadMapAttention` + `ScaledDotProductWithMapAttention`): the LaRE map is average-pooled to
 * the patch grid and a 1×1 conv gives one bias channel per head; the patch tokens get their mean prepended
 * and a learned positional embedding added; that mean token alone queries all tokens, each head's logits
 * plus that head's map bias (the map's mean prepended likewise), softmax, dropout, `fc_o`, dropout, residual
 * with the query token, LayerNorm → `s` `[B, C]`.
 * EGCR (LaRE `ChannelAlignLayer`): `c = mean(patch tokens) ⊙ sigmoid(W2·relu(W1·GAP(map)))` `[B, C]`.
 * Output: `[s, c]` `[B, 2C]` (or one of them). Patch tokens are the last block's, without `ln_post`.
 */
import { configToken, Dropout, dropoutState, inject, injectable, LayerNorm, Linear, ParameterSet, tf, TOKENS, type Encoder, type EnhancerInput, type FeatureEnhancer, type Rng } from '@dfd/core';
import type { LareEgreConfig } from './config.js';
import { AdaptivePool, lareMap } from './map.js';

/** The patch tokens of the batch as `[B, N, C]`, or an error naming what to change. */
export function patchTokensOf(input: EnhancerInput, who: string, width: number, grid: number): tf.Tensor3D {
  const tokens = input.image.patchTokens;
  if (!tokens) throw new Error(`${who}: the image tower gave no patch tokens (the encoder must support encodeImage({ patchTokens: true }))`);
  const [b, h, w, c] = tokens.shape;
  if (h !== grid || w !== grid || c !== width) {
    throw new Error(`${who}: patch tokens are [${tokens.shape.join(', ')}] but this module was built for [B, ${grid}, ${grid}, ${width}] (the encoder's grid and vision width)`);
  }
  return tokens.reshape([b, h * w, c]) as tf.Tensor3D;
}

@injectable()
export class LareEgreEnhancer implements FeatureEnhancer {
  readonly name = 'lare-egre';
  readonly requires: string[];
  readonly outputDim: number;
  readonly imageOptions = { patchTokens: true };
  readonly width: number;
  readonly grid: number;
  private readonly params = new ParameterSet('lare_egre');
  private readonly conv: Linear;
  private readonly positionalEmbedding: tf.Variable;
  private readonly fcQ: Linear;
  private readonly fcK: Linear;
  private readonly fcV: Linear;
  private readonly fcO: Linear;
  private readonly layerNorm: LayerNorm;
  private readonly gate1: Linear;
  private readonly gate2: Linear;
  private readonly attentionDropout: Dropout;
  private readonly outputDropout: Dropout;
  private readonly pool: AdaptivePool;
  /** Parameters the configured output does not depend on (never trained, so not listed). */
  private readonly unused = new Set<string>();

  constructor(
    @inject(configToken('enhancer')) readonly config: LareEgreConfig,
    @inject(TOKENS.Encoder) encoder: Encoder,
    @inject(TOKENS.Rng) rng: Rng,
  ) {
    const { heads, headDim, mapChannels } = config;
    this.width = encoder.info.visionWidth;
    this.grid = encoder.info.gridSize;
    this.requires = [config.mapKey];
    this.outputDim = config.output === 'both' ? 2 * this.width : this.width;
    const r = rng.fork('lare-egre');
    const p = this.params;
    const c = this.width;
    // LaRE: Conv2d(4, 8, 1) — PyTorch's default init; as a Linear over the channel axis.
    this.conv = new Linear(p, 'conv', mapChannels, heads, r);
    // LaRE: randn(spatial² + 1, d_in) / sqrt(d_in).
    const tokens = this.grid * this.grid + 1;
    this.positionalEmbedding = p.add('attn.positional_embedding', r.fork('pos').normalArray(tokens * c, 0, 1 / Math.sqrt(c)), [tokens, c]);
    // LaRE: Xavier-uniform weights, zero biases for q, k, v, o.
    this.fcQ = new Linear(p, 'attn.fc_q', c, heads * headDim, r, { init: 'xavier' });
    this.fcK = new Linear(p, 'attn.fc_k', c, heads * headDim, r, { init: 'xavier' });
    this.fcV = new Linear(p, 'attn.fc_v', c, heads * headDim, r, { init: 'xavier' });
    this.fcO = new Linear(p, 'attn.fc_o', heads * headDim, c, r, { init: 'xavier' });
    this.layerNorm = new LayerNorm(p, 'attn.layer_norm', c);
    // LaRE: ChannelAlignLayer(4, 128, 1024): two bias-free Linears, PyTorch's default init.
    this.gate1 = new Linear(p, 'channel_align.fc1', mapChannels, config.channelHidden, r, { bias: false });
    this.gate2 = new Linear(p, 'channel_align.fc2', config.channelHidden, c, r, { bias: false });
    this.attentionDropout = new Dropout(config.dropout, r.fork('dropout.attention'), 'lare_egre.dropout.attention');
    this.outputDropout = new Dropout(config.dropout, r.fork('dropout.output'), 'lare_egre.dropout.output');
    this.pool = new AdaptivePool(this.grid);
    if (config.output === 'channel') {
      // Unused parameters would never get a gradient; list only what the output depends on.
      for (const name of Object.keys(p.all())) if (!name.startsWith('channel_align')) this.unused.add(name);
    } else if (config.output === 'spatial') {
      for (const name of Object.keys(p.all())) if (name.startsWith('channel_align')) this.unused.add(name);
    }
  }

  trainableVariables(): Record<string, tf.Variable> {
    return Object.fromEntries(Object.entries(this.params.all()).filter(([name]) => !this.unused.has(name)));
  }

  /** The dropouts' call counters, so a resumed run draws the masks an uninterrupted one would. */
  stateTensors(): Record<string, tf.Variable> {
    return dropoutState({ 'dropout.attention': this.attentionDropout, 'dropout.output': this.outputDropout });
  }

  enhance(input: EnhancerInput): tf.Tensor2D {
    return tf.tidy(() => {
      const tokens = patchTokensOf(input, 'lare-egre', this.width, this.grid);
      const map = lareMap(input.extras, this.config.mapKey, this.config.mapChannels, 'lare-egre');
      if (map.shape[0] !== tokens.shape[0]) throw new Error(`lare-egre: ${map.shape[0]} LaRE maps for ${tokens.shape[0]} images`);
      const parts: tf.Tensor2D[] = [];
      if (this.config.output !== 'channel') parts.push(this.spatial(tokens, map, input.training));
      if (this.config.output !== 'spatial') parts.push(this.channel(tokens, map));
      return (parts.length === 1 ? parts[0]! : tf.concat(parts, 1)) as tf.Tensor2D;
    });
  }

  /** `[B, N + 1, heads]` attention bias: the map pooled to the grid, 1×1 conv, its mean token prepended. */
  private mapBias(map: tf.Tensor4D): tf.Tensor3D {
    const pooled = this.pool.apply(map); // [B, Cm, N]
    const bias = this.conv.apply(tf.transpose(pooled, [0, 2, 1])); // [B, N, heads]
    return tf.concat([tf.mean(bias, 1, true), bias], 1) as tf.Tensor3D;
  }

  /** EGSR: one query (the mean token) over all tokens, with the LaRE bias added to each head's logits. */
  private spatial(tokens: tf.Tensor3D, map: tf.Tensor4D, training: boolean): tf.Tensor2D {
    const { heads, headDim } = this.config;
    const [b, n] = tokens.shape;
    const x = tf.add(tf.concat([tf.mean(tokens, 1, true), tokens], 1), this.positionalEmbedding); // [B, N+1, C]
    const query = x.slice([0, 0, 0], [b, 1, this.width]).reshape([b, this.width]);
    const q = this.fcQ.apply(query).reshape([b, 1, heads, headDim]);
    const k = this.fcK.apply(x).reshape([b, n + 1, heads, headDim]);
    const v = this.fcV.apply(x).reshape([b, n + 1, heads, headDim]);
    // A single query: q·kᵀ per head is a broadcast product summed over the head width (no transposed matMul).
    const logits = tf.add(tf.div(tf.sum(tf.mul(k, q), 3), Math.sqrt(headDim)), this.mapBias(map)); // [B, N+1, heads]
    const weights = tf.transpose(tf.softmax(tf.transpose(logits, [0, 2, 1])), [0, 2, 1]); // softmax over tokens
    const attended = tf.sum(tf.mul(this.attentionDropout.apply(weights, training).expandDims(3), v), 1); // [B, heads, d]
    const out = this.outputDropout.apply(this.fcO.apply(attended.reshape([b, heads * headDim])), training);
    return this.layerNorm.apply(tf.add(query, out)) as tf.Tensor2D;
  }

  /** EGCR: the mean patch token gated per channel by the globally pooled LaRE map. */
  private channel(tokens: tf.Tensor3D, map: tf.Tensor4D): tf.Tensor2D {
    const pooledMap = tf.mean(map, [2, 3]); // [B, Cm]
    const gate = tf.sigmoid(this.gate2.apply(tf.relu(this.gate1.apply(pooledMap))));
    return tf.mul(tf.mean(tokens, 1), gate) as tf.Tensor2D;
  }

  dispose(): void {
    this.params.dispose();
    this.pool.dispose();
    this.attentionDropout.dispose();
    this.outputDropout.dispose();
  }
}
