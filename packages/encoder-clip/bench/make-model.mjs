// Writes a Hugging Face CLIP folder (config.json + model.safetensors, vision tower only, no onnx/) with
// random weights drawn like transformers' CLIPPreTrainedModel._init_weights, for the precision benchmark:
//   node make-model.mjs <B16|L14> <dir>
// Random weights are what this machine can have (no model hub); BENCH_MODEL_B16 / BENCH_MODEL_L14 point
// the benchmark at real checkpoints instead.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '@dfd/core';

export const ARCHS = {
  B16: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, patch_size: 16, projection_dim: 512 },
  L14: { hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, patch_size: 14, projection_dim: 768 },
};

function normal(n, std, seed) {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const t = 2 * Math.PI * next();
    out[i] = r * Math.cos(t) * std;
    if (i + 1 < n) out[i + 1] = r * Math.sin(t) * std;
  }
  return out;
}

export function makeModel(arch, dir) {
  if (existsSync(join(dir, 'model.safetensors'))) return dir;
  const a = ARCHS[arch];
  const W = a.hidden_size;
  const L = a.num_hidden_layers;
  const grid = 224 / a.patch_size;
  mkdirSync(dir, { recursive: true });
  const vision = { ...a, image_size: 224, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, num_channels: 3, model_type: 'clip_vision_model' };
  delete vision.projection_dim;
  const text = { hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 8, vocab_size: 49408, max_position_embeddings: 77, hidden_act: 'quick_gelu', model_type: 'clip_text_model' };
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'clip', projection_dim: a.projection_dim, logit_scale_init_value: 2.6592, vision_config: vision, text_config: text }, null, 1));
  let seed = 1;
  const t = {};
  const put = (name, shape, std, fill) => {
    const n = shape.reduce((x, y) => x * y, 1);
    t[name] = { shape, data: fill === undefined ? normal(n, std, seed++ * 7919) : new Float32Array(n).fill(fill) };
  };
  const inStd = W ** -0.5 * (2 * L) ** -0.5;
  put('vision_model.embeddings.class_embedding', [W], W ** -0.5);
  put('vision_model.embeddings.patch_embedding.weight', [W, 3, a.patch_size, a.patch_size], 0.02);
  put('vision_model.embeddings.position_embedding.weight', [grid * grid + 1, W], 0.02);
  for (const ln of ['pre_layrnorm', 'post_layernorm']) {
    put(`vision_model.${ln}.weight`, [W], 0, 1);
    put(`vision_model.${ln}.bias`, [W], 0, 0);
  }
  for (let i = 0; i < L; i++) {
    const p = `vision_model.encoder.layers.${i}`;
    for (const q of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      put(`${p}.self_attn.${q}.weight`, [W, W], q === 'out_proj' ? W ** -0.5 : inStd);
      put(`${p}.self_attn.${q}.bias`, [W], 0, 0);
    }
    for (const ln of ['layer_norm1', 'layer_norm2']) {
      put(`${p}.${ln}.weight`, [W], 0, 1);
      put(`${p}.${ln}.bias`, [W], 0, 0);
    }
    put(`${p}.mlp.fc1.weight`, [a.intermediate_size, W], (2 * W) ** -0.5);
    put(`${p}.mlp.fc1.bias`, [a.intermediate_size], 0, 0);
    put(`${p}.mlp.fc2.weight`, [W, a.intermediate_size], inStd);
    put(`${p}.mlp.fc2.bias`, [W], 0, 0);
  }
  put('visual_projection.weight', [a.projection_dim, W], W ** -0.5);
  return writeSafetensors(join(dir, 'model.safetensors'), t, { format: 'pt' }).then(() => dir);
}

if (process.argv[1]?.endsWith('make-model.mjs')) await makeModel(process.argv[2], process.argv[3]);
