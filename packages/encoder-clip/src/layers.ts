/**
 * The transformer pieces of CLIP as plain tfjs functions over named weights (transformers' layout: a Linear
 * weight is `[out, in]`, applied as `x · Wᵀ + b`). They run inside the caller's `tf.tidy`/`tf.grad`.
 */
import { matMulPlainGrad, tf } from '@dfd/core';
import type { HiddenAct } from './config.js';

export type WeightLookup = (name: string) => tf.Tensor;

/** `[..., in]` → `[..., out]` with a transformers Linear (`weight [out, in]`, optional bias). */
export function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const inner = shape[shape.length - 1]!;
  const flat = x.reshape([-1, inner]) as tf.Tensor2D;
  // On wasm, transpose the weight explicitly rather than matMul(..., transposeB): its transposed-B matmul
  // leaves XNNPACK's fast path and runs ~8x slower; a [out, in] transpose costs far less. The same holds for
  // the backward pass (tfjs' matMul gradient uses transposed operands), hence matMulPlainGrad. TensorFlow's
  // matmul takes transposed operands natively, and the copy would cost it a weight-sized write per call.
  let y: tf.Tensor =
    tf.getBackend() === 'tensorflow'
      ? tf.matMul(flat, weight as tf.Tensor2D, false, true)
      : matMulPlainGrad(flat, tf.transpose(weight as tf.Tensor2D));
  if (bias) y = tf.add(y, bias);
  return y.reshape([...shape.slice(0, -1), weight.shape[0]!]);
}

export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  const axis = x.rank - 1;
  const mean = tf.mean(x, axis, true);
  const centered = tf.sub(x, mean);
  // Biased variance, as torch.nn.LayerNorm.
  const variance = tf.mean(tf.square(centered), axis, true);
  return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), weight), bias);
}

export function activation(x: tf.Tensor, act: HiddenAct): tf.Tensor {
  switch (act) {
    case 'quick_gelu':
      return tf.mul(x, tf.sigmoid(tf.mul(x, 1.702)));
    case 'gelu':
      // Exact (erf) GELU, as torch.nn.functional.gelu.
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
    case 'gelu_new':
    case 'gelu_pytorch_tanh': {
      const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
    }
    case 'relu':
      return tf.relu(x);
  }
}

export interface BlockConfig {
  width: number;
  heads: number;
  act: HiddenAct;
  eps: number;
}

/** Multi-head self-attention; `mask` is added to the `[L, L]` scores (causal mask for text). */
export function selfAttention(x: tf.Tensor3D, w: WeightLookup, prefix: string, config: BlockConfig, mask?: tf.Tensor): tf.Tensor3D {
  const [batch, length] = x.shape;
  const heads = config.heads;
  const headDim = config.width / heads;
  const split = (t: tf.Tensor): tf.Tensor3D =>
    t.reshape([batch, length, heads, headDim]).transpose([0, 2, 1, 3]).reshape([batch * heads, length, headDim]) as tf.Tensor3D;
  const q = split(tf.mul(linear(x, w(`${prefix}.q_proj.weight`), w(`${prefix}.q_proj.bias`)), 1 / Math.sqrt(headDim)));
  const k = split(linear(x, w(`${prefix}.k_proj.weight`), w(`${prefix}.k_proj.bias`)));
  const v = split(linear(x, w(`${prefix}.v_proj.weight`), w(`${prefix}.v_proj.bias`)));
  let scores: tf.Tensor = tf.matMul(q, tf.transpose(k, [0, 2, 1])); // explicit transpose: see linear()
  if (mask) scores = tf.add(scores, mask);
  const attention = tf.softmax(scores, -1) as tf.Tensor3D;
  const out = tf
    .matMul(attention, v)
    .reshape([batch, heads, length, headDim])
    .transpose([0, 2, 1, 3])
    .reshape([batch, length, config.width]);
  return linear(out, w(`${prefix}.out_proj.weight`), w(`${prefix}.out_proj.bias`)) as tf.Tensor3D;
}

/** One pre-LayerNorm residual block: x + attn(ln1(x)), then + mlp(ln2(x)). */
export function encoderLayer(x: tf.Tensor3D, w: WeightLookup, prefix: string, config: BlockConfig, mask?: tf.Tensor): tf.Tensor3D {
  const h1 = layerNorm(x, w(`${prefix}.layer_norm1.weight`), w(`${prefix}.layer_norm1.bias`), config.eps) as tf.Tensor3D;
  const x1 = tf.add(x, selfAttention(h1, w, `${prefix}.self_attn`, config, mask)) as tf.Tensor3D;
  const h2 = layerNorm(x1, w(`${prefix}.layer_norm2.weight`), w(`${prefix}.layer_norm2.bias`), config.eps);
  const inner = activation(linear(h2, w(`${prefix}.mlp.fc1.weight`), w(`${prefix}.mlp.fc1.bias`)), config.act);
  return tf.add(x1, linear(inner, w(`${prefix}.mlp.fc2.weight`), w(`${prefix}.mlp.fc2.bias`))) as tf.Tensor3D;
}

/** `[L, L]` additive causal mask: 0 on and below the diagonal, a large negative above (as CLIP's text tower). */
export function causalMask(length: number): tf.Tensor2D {
  const values = new Float32Array(length * length);
  for (let i = 0; i < length; i++) for (let j = i + 1; j < length; j++) values[i * length + j] = -1e9;
  return tf.tensor2d(values, [length, length]);
}
