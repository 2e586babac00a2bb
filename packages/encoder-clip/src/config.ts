/**
 * A CLIP checkpoint's architecture, read from a Hugging Face `config.json` (`model_type: "clip"`, with
 * `vision_config` and `text_config`). Defaults are those of transformers' `CLIPVisionConfig` /
 * `CLIPTextConfig`, so a config that leaves a key out means what it means to transformers.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export type HiddenAct = 'quick_gelu' | 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'relu';

export interface ClipVisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  imageSize: number;
  patchSize: number;
  numChannels: number;
  hiddenAct: HiddenAct;
  layerNormEps: number;
}

export interface ClipTextConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  vocabSize: number;
  maxPositions: number;
  hiddenAct: HiddenAct;
  layerNormEps: number;
  eosTokenId: number;
}

export interface ClipConfig {
  projectionDim: number;
  /** Initial value of `logit_scale` in the config (the checkpoint's own value is read from the weights). */
  logitScaleInit: number;
  vision: ClipVisionConfig;
  text: ClipTextConfig;
  /** A short name: `ViT-B/16`, `ViT-L/14`, or `ViT-<width>/<patch>` for other sizes. */
  name: string;
}

export class ClipConfigError extends Error {
  override name = 'ClipConfigError';
}

const ACTS: HiddenAct[] = ['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu'];

type Raw = Record<string, unknown>;

function num(raw: Raw, key: string, fallback: number | undefined, where: string): number {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ClipConfigError(`${where}: '${key}' must be a number, got ${JSON.stringify(raw[key])}`);
  }
  return value;
}

function act(raw: Raw, where: string): HiddenAct {
  const value = (raw.hidden_act ?? 'quick_gelu') as HiddenAct;
  if (!ACTS.includes(value)) throw new ClipConfigError(`${where}: hidden_act '${String(value)}' is not supported (supported: ${ACTS.join(', ')})`);
  return value;
}

/** Parses the JSON object of a CLIP `config.json`; `source` names the file in errors. */
export function parseClipConfig(raw: Raw, source = 'config.json'): ClipConfig {
  const visionRaw = raw.vision_config as Raw | undefined;
  const textRaw = raw.text_config as Raw | undefined;
  if (raw.model_type !== undefined && raw.model_type !== 'clip') {
    throw new ClipConfigError(
      `${source}: model_type is '${String(raw.model_type)}', expected 'clip' (a Hugging Face CLIPModel checkpoint with vision_config and text_config)`,
    );
  }
  if (!visionRaw || !textRaw) {
    throw new ClipConfigError(
      `${source} is not a CLIP config: expected a Hugging Face CLIPModel config.json with model_type "clip", ` +
        `"vision_config" and "text_config" (found keys: ${Object.keys(raw).join(', ') || 'none'})`,
    );
  }
  const v = `${source} vision_config`;
  const t = `${source} text_config`;
  const vision: ClipVisionConfig = {
    hiddenSize: num(visionRaw, 'hidden_size', 768, v),
    intermediateSize: num(visionRaw, 'intermediate_size', 3072, v),
    numLayers: num(visionRaw, 'num_hidden_layers', 12, v),
    numHeads: num(visionRaw, 'num_attention_heads', 12, v),
    imageSize: num(visionRaw, 'image_size', 224, v),
    patchSize: num(visionRaw, 'patch_size', 32, v),
    numChannels: num(visionRaw, 'num_channels', 3, v),
    hiddenAct: act(visionRaw, v),
    layerNormEps: num(visionRaw, 'layer_norm_eps', 1e-5, v),
  };
  const text: ClipTextConfig = {
    hiddenSize: num(textRaw, 'hidden_size', 512, t),
    intermediateSize: num(textRaw, 'intermediate_size', 2048, t),
    numLayers: num(textRaw, 'num_hidden_layers', 12, t),
    numHeads: num(textRaw, 'num_attention_heads', 8, t),
    vocabSize: num(textRaw, 'vocab_size', 49408, t),
    maxPositions: num(textRaw, 'max_position_embeddings', 77, t),
    hiddenAct: act(textRaw, t),
    layerNormEps: num(textRaw, 'layer_norm_eps', 1e-5, t),
    eosTokenId: num(textRaw, 'eos_token_id', 2, t),
  };
  for (const [where, c] of [[v, vision], [t, text]] as const) {
    if (c.hiddenSize % c.numHeads !== 0) {
      throw new ClipConfigError(`${where}: hidden_size ${c.hiddenSize} is not divisible by num_attention_heads ${c.numHeads}`);
    }
  }
  if (vision.numChannels !== 3) throw new ClipConfigError(`${v}: num_channels ${vision.numChannels} is not supported (RGB only)`);
  if (vision.imageSize % vision.patchSize !== 0) {
    throw new ClipConfigError(`${v}: image_size ${vision.imageSize} is not a multiple of patch_size ${vision.patchSize}`);
  }
  return {
    projectionDim: num(raw, 'projection_dim', 512, source),
    logitScaleInit: num(raw, 'logit_scale_init_value', 2.6592, source),
    vision,
    text,
    name: modelName(vision),
  };
}

function modelName(vision: ClipVisionConfig): string {
  const known: Record<string, string> = { '768/16/12': 'ViT-B/16', '768/32/12': 'ViT-B/32', '1024/14/24': 'ViT-L/14' };
  const key = `${vision.hiddenSize}/${vision.patchSize}/${vision.numLayers}`;
  const named = known[key];
  if (named) return vision.imageSize === 224 ? named : `${named}@${vision.imageSize}`;
  return `ViT-${vision.hiddenSize}w${vision.numLayers}L/${vision.patchSize}@${vision.imageSize}`;
}

/** Reads `<dir>/config.json`. */
export async function readClipConfig(dir: string): Promise<ClipConfig> {
  const path = join(dir, 'config.json');
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    // reported below
  }
  return configFromText(dir, path, text);
}

/** Synchronous `readClipConfig`, for DI factories. */
export function readClipConfigSync(dir: string): ClipConfig {
  const path = join(dir, 'config.json');
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    // reported below
  }
  return configFromText(dir, path, text);
}

function configFromText(dir: string, path: string, text: string | undefined): ClipConfig {
  if (text === undefined) {
    throw new ClipConfigError(
      `${dir} is not a CLIP checkpoint folder: ${path} is missing. Expected a Hugging Face CLIP folder with ` +
        `config.json, model.safetensors, vocab.json and merges.txt (save one with CLIPModel.save_pretrained + CLIPTokenizer.save_pretrained)`,
    );
  }
  let raw: Raw;
  try {
    raw = JSON.parse(text) as Raw;
  } catch {
    throw new ClipConfigError(`${path} is not valid JSON`);
  }
  return parseClipConfig(raw, path);
}
