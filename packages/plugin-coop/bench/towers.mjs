// Random-weight CLIP encoders with ViT-B/16- and ViT-L/14-shaped text towers (the tiny CLIP's tokenizer;
// a 1-layer 32 px vision tower, unused by the text benchmarks). Shared by the CoOp and CoCoOp benches.
import { fileURLToPath } from 'node:url';
import { Rng } from '@dfd/core';
import { ClipEncoder, ClipTokenizer, expectedClipTensors, parseClipConfig } from '@dfd/encoder-clip';

export const TINY_CLIP = fileURLToPath(new URL('../../../examples/models/tiny-clip', import.meta.url));

export const TEXT_TOWERS = {
  'ViT-B/16': { hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 8, projection_dim: 512 },
  'ViT-L/14': { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, projection_dim: 768 },
};

export async function randomTextEncoder(shape, seed = 1) {
  const tokenizer = await ClipTokenizer.fromFolder(TINY_CLIP);
  const { projection_dim, ...text } = TEXT_TOWERS[shape];
  const config = parseClipConfig({
    model_type: 'clip',
    projection_dim,
    logit_scale_init_value: Math.log(100),
    text_config: { ...text, vocab_size: tokenizer.vocabSize, max_position_embeddings: 77, eos_token_id: tokenizer.eotId, hidden_act: 'quick_gelu' },
    vision_config: { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, image_size: 32, patch_size: 8, hidden_act: 'quick_gelu' },
  });
  const rng = new Rng(seed);
  const tensors = new Map();
  for (const [name, shapeOf] of Object.entries(expectedClipTensors(config))) {
    const size = shapeOf.reduce((a, b) => a * b, 1);
    let data;
    if (name === 'logit_scale') data = Float32Array.of(Math.log(100));
    else if (/norm.*weight$/.test(name)) data = new Float32Array(size).fill(1);
    else if (name.endsWith('.bias')) data = new Float32Array(size);
    else data = rng.normalArray(size, 0, 0.02); // CLIP-like scale
    tensors.set(name, { shape: shapeOf, data });
  }
  return new ClipEncoder(config, tensors, tokenizer, `random ${shape}`);
}

/** Median wall time (ms) of `fn` over `repeats` runs after one warm-up. */
export async function timeMs(fn, repeats) {
  await fn();
  const times = [];
  for (let i = 0; i < repeats; i++) {
    const started = performance.now();
    await fn();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}
