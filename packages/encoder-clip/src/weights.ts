/**
 * Maps a Hugging Face CLIP `model.safetensors` onto the tensors the towers need, by the transformers names
 * (`vision_model.encoder.layers.0.self_attn.q_proj.weight` ...), checking every name and shape against the
 * config first: a missing or misshapen tensor fails with its name, the expected and the found shape.
 * F32, F16 and BF16 checkpoints load (widened to float32 by @dfd/core's reader, one tensor at a time).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFileSync } from '@dfd/core';
import type { ClipConfig } from './config.js';

export class ClipWeightsError extends Error {
  override name = 'ClipWeightsError';
}

function layerShapes(prefix: string, width: number, inner: number): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
    shapes[`${prefix}.self_attn.${proj}.weight`] = [width, width];
    shapes[`${prefix}.self_attn.${proj}.bias`] = [width];
  }
  for (const norm of ['layer_norm1', 'layer_norm2']) {
    shapes[`${prefix}.${norm}.weight`] = [width];
    shapes[`${prefix}.${norm}.bias`] = [width];
  }
  shapes[`${prefix}.mlp.fc1.weight`] = [inner, width];
  shapes[`${prefix}.mlp.fc1.bias`] = [inner];
  shapes[`${prefix}.mlp.fc2.weight`] = [width, inner];
  shapes[`${prefix}.mlp.fc2.bias`] = [width];
  return shapes;
}

/** Every tensor a CLIPModel checkpoint must hold, with its shape, in transformers' naming. */
export function expectedClipTensors(config: ClipConfig): Record<string, number[]> {
  const v = config.vision;
  const t = config.text;
  const grid = v.imageSize / v.patchSize;
  const shapes: Record<string, number[]> = {
    'vision_model.embeddings.class_embedding': [v.hiddenSize],
    'vision_model.embeddings.patch_embedding.weight': [v.hiddenSize, v.numChannels, v.patchSize, v.patchSize],
    'vision_model.embeddings.position_embedding.weight': [grid * grid + 1, v.hiddenSize],
    'vision_model.pre_layrnorm.weight': [v.hiddenSize],
    'vision_model.pre_layrnorm.bias': [v.hiddenSize],
    'vision_model.post_layernorm.weight': [v.hiddenSize],
    'vision_model.post_layernorm.bias': [v.hiddenSize],
    'visual_projection.weight': [config.projectionDim, v.hiddenSize],
    'text_model.embeddings.token_embedding.weight': [t.vocabSize, t.hiddenSize],
    'text_model.embeddings.position_embedding.weight': [t.maxPositions, t.hiddenSize],
    'text_model.final_layer_norm.weight': [t.hiddenSize],
    'text_model.final_layer_norm.bias': [t.hiddenSize],
    'text_projection.weight': [config.projectionDim, t.hiddenSize],
    logit_scale: [],
  };
  for (let i = 0; i < v.numLayers; i++) Object.assign(shapes, layerShapes(`vision_model.encoder.layers.${i}`, v.hiddenSize, v.intermediateSize));
  for (let i = 0; i < t.numLayers; i++) Object.assign(shapes, layerShapes(`text_model.encoder.layers.${i}`, t.hiddenSize, t.intermediateSize));
  return shapes;
}

export interface LoadedWeights {
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  /** Stored dtype of the checkpoint (of its first floating tensor). */
  dtype: string;
}

/** The weights file of a folder: `model.safetensors`; a folder with only PyTorch pickles gets told how to convert. */
export function findWeightsFile(dir: string): string {
  const path = join(dir, 'model.safetensors');
  if (existsSync(path)) return path;
  const hint = existsSync(join(dir, 'pytorch_model.bin'))
    ? ' It has pytorch_model.bin: convert it with CLIPModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True).'
    : '';
  throw new ClipWeightsError(`${dir} has no model.safetensors: a Hugging Face CLIP folder needs its weights as safetensors.${hint}`);
}

/**
 * Reads and checks every tensor, one at a time (synchronous: the encoder component is built inside a
 * synchronous DI factory). `logit_scale` may be stored as `[]` or `[1]`.
 */
export function loadClipWeights(path: string, config: ClipConfig): LoadedWeights {
  const file = SafetensorsFileSync.open(path);
  try {
    const expected = expectedClipTensors(config);
    const missing = Object.keys(expected).filter((name) => !file.has(name));
    if (missing.length) {
      const visionOnly = missing.every((n) => n.startsWith('text_') || n === 'logit_scale');
      throw new ClipWeightsError(
        `${path} is missing ${missing.length} CLIP tensor(s): ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', ...' : ''}. ` +
          (visionOnly
            ? 'It looks like a vision-only checkpoint; a full CLIPModel (vision and text towers) is needed.'
            : `Expected a Hugging Face CLIPModel checkpoint for ${config.name} (names as in transformers' CLIPModel.state_dict()).`),
      );
    }
    // Check every shape before reading anything, so a wrong file fails fast.
    let dtype = '';
    for (const [name, shape] of Object.entries(expected)) {
      const info = file.info(name);
      const found = info.shape;
      const ok = name === 'logit_scale' ? found.length <= 1 && found.reduce((a, b) => a * b, 1) === 1 : sameShape(found, shape);
      if (!ok) {
        throw new ClipWeightsError(
          `${path}: tensor ${name} has shape ${JSON.stringify(found)}, expected ${JSON.stringify(shape)} from config.json ` +
            `(${config.name}); the weights and config.json do not belong together`,
        );
      }
      if (!['F32', 'F16', 'BF16', 'F64'].includes(info.dtype)) {
        throw new ClipWeightsError(`${path}: tensor ${name} has dtype ${info.dtype}; CLIP weights must be F32, F16 or BF16`);
      }
      dtype ||= info.dtype;
    }
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, shape] of Object.entries(expected)) tensors.set(name, { shape, data: file.readFloat32(name).data });
    return { tensors, dtype };
  } finally {
    file.close();
  }
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
