/**
 * `attention`: multi-head cross-attention in which each enhancer's features, projected to one token, query the
 * image's patch tokens (keys and values) — "where in the image does this signal point". Per enhancer token
 * `e` (`d = heads · headDim` wide): `LayerNorm(e + dropout(MHA(e, patches, patches)))`, with MHA exactly
 * PyTorch's `nn.MultiheadAttention(d, heads, dropout, kdim = vdim = visionWidth)` (separate q/k/v projections
 * with bias, softmax(q·kᵀ/√headDim), dropout on the weights, `out_proj`). Output `[image, token_1, …, token_n]`,
 * `image + n·d` wide. Needs patch tokens.
 */
import { configToken, Dropout, dropoutState, inject, injectable, LayerNorm, Linear, ParameterSet, tf, TOKENS, type Fuser, type FusionDims, type FusionInput, type Rng } from '@dfd/core';
import { checkInputs, patchTokens } from './common.js';
import type { AttentionConfig } from './config.js';

interface AttentionLayers {
  tokens: Linear[];
  q: Linear;
  k: Linear;
  v: Linear;
  out: Linear;
  norm: LayerNorm;
  attentionDropout: Dropout;
  outputDropout: Dropout;
}

@injectable()
export class AttentionFuser implements Fuser {
  readonly imageOptions = { patchTokens: true };
  private readonly params = new ParameterSet('fusion_attention');
  private layers?: AttentionLayers;
  private dims?: FusionDims;

  constructor(
    @inject(configToken('fuser')) readonly config: AttentionConfig,
    @inject(TOKENS.Rng) private readonly rng: Rng,
  ) {}

  get width(): number {
    return this.config.heads * this.config.headDim;
  }

  build(dims: FusionDims): number {
    this.dims = dims;
    const d = this.width;
    const c = dims.visionWidth;
    const p = this.params;
    const r = this.rng.fork('fusion.attention');
    this.layers = {
      tokens: dims.enhanced.map((e, i) => new Linear(p, `token_proj.${i}_${e.name}`, e.dim, d, r)),
      // nn.MultiheadAttention with kdim/vdim ≠ embed_dim: Xavier-uniform q/k/v weights, zero biases.
      q: new Linear(p, 'attn.q_proj', d, d, r, { init: 'xavier' }),
      k: new Linear(p, 'attn.k_proj', c, d, r, { init: 'xavier' }),
      v: new Linear(p, 'attn.v_proj', c, d, r, { init: 'xavier' }),
      out: new Linear(p, 'attn.out_proj', d, d, r),
      norm: new LayerNorm(p, 'norm', d),
      attentionDropout: new Dropout(this.config.dropout, r.fork('dropout.attention'), 'fusion_attention.dropout.attention'),
      outputDropout: new Dropout(this.config.dropout, r.fork('dropout.output'), 'fusion_attention.dropout.output'),
    };
    this.layers.out.bias!.assign(tf.zerosLike(this.layers.out.bias!)); // nn.MultiheadAttention zeroes out_proj.bias
    return dims.image + dims.enhanced.length * d;
  }

  trainableVariables(): Record<string, tf.Variable> {
    return this.params.all();
  }

  /** The dropouts' call counters (after `build`), so a resumed run draws the masks an uninterrupted one would. */
  stateTensors(): Record<string, tf.Variable> {
    return this.layers ? dropoutState({ 'dropout.attention': this.layers.attentionDropout, 'dropout.output': this.layers.outputDropout }) : {};
  }

  fuse(input: FusionInput): tf.Tensor2D {
    const dims = checkInputs('attention fuser', this.dims, input);
    const layers = this.layers!;
    const { heads, headDim } = this.config;
    return tf.tidy(() => {
      const patches = patchTokens('attention fuser', input, dims); // [B, N, C]
      const [b, n] = patches.shape;
      const m = input.enhanced.length;
      const queries = tf.stack(input.enhanced.map((e, i) => layers.tokens[i]!.apply(e.features)), 1); // [B, m, d]
      // Heads as a batch axis: [B·h, m, hd] · [B·h, hd, N] (keys transposed once, explicitly: fast on wasm).
      const q = tf.transpose(layers.q.apply(queries).reshape([b, m, heads, headDim]), [0, 2, 1, 3]).reshape([b * heads, m, headDim]);
      const kT = tf.transpose(layers.k.apply(patches).reshape([b, n, heads, headDim]), [0, 2, 3, 1]).reshape([b * heads, headDim, n]);
      const v = tf.transpose(layers.v.apply(patches).reshape([b, n, heads, headDim]), [0, 2, 1, 3]).reshape([b * heads, n, headDim]);
      const weights = tf.softmax(tf.div(tf.matMul(q, kT), Math.sqrt(headDim)));
      const attended = tf.matMul(layers.attentionDropout.apply(weights, input.training) as tf.Tensor3D, v); // [B·h, m, hd]
      const merged = tf.transpose(attended.reshape([b, heads, m, headDim]), [0, 2, 1, 3]).reshape([b, m, heads * headDim]);
      const out = layers.outputDropout.apply(layers.out.apply(merged), input.training);
      const tokens = layers.norm.apply(tf.add(queries, out)).reshape([b, m * this.width]);
      return tf.concat([input.image, tokens], 1) as tf.Tensor2D;
    });
  }

  dispose(): void {
    this.params.dispose();
    this.layers?.attentionDropout.dispose();
    this.layers?.outputDropout.dispose();
  }
}
