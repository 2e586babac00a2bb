/** A folder that is not a CLIP checkpoint, or whose tensors do not fit its config, fails with a clear message. */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '@dfd/core';
import { ClipConfigError, ClipWeightsError, loadClip, parseClipConfig, expectedClipTensors } from '@dfd/encoder-clip';
import { TINY_CLIP } from './helpers.js';

describe('loadClip on bad folders', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dfd-clip-bad-'));
    for (const f of ['config.json', 'vocab.json', 'merges.txt']) await copyFile(join(TINY_CLIP, f), join(dir, f));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('a folder without config.json says what a CLIP folder holds', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'dfd-clip-empty-'));
    await expect(loadClip(empty)).rejects.toThrow(ClipConfigError);
    await expect(loadClip(empty)).rejects.toThrow(/config\.json, model\.safetensors, vocab\.json and merges\.txt/);
    await rm(empty, { recursive: true });
  });

  it('a non-CLIP config.json is named as such', async () => {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'bert', hidden_size: 768 }));
    await expect(loadClip(dir)).rejects.toThrow(/model_type is 'bert', expected 'clip'/);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ hidden_size: 768 }));
    await expect(loadClip(dir)).rejects.toThrow(/not a CLIP config.*vision_config.*text_config/);
  });

  it('missing weights file, with the conversion hint for pytorch_model.bin', async () => {
    await expect(loadClip(dir)).rejects.toThrow(/has no model\.safetensors/);
    await writeFile(join(dir, 'pytorch_model.bin'), 'x');
    await expect(loadClip(dir)).rejects.toThrow(/save_pretrained.*safe_serialization=True/);
  });

  it('a missing tensor is named', async () => {
    const { tensors } = await readSafetensors(join(TINY_CLIP, 'model.safetensors'));
    delete tensors['vision_model.encoder.layers.1.mlp.fc1.bias'];
    await writeSafetensors(join(dir, 'model.safetensors'), tensors as never);
    await expect(loadClip(dir)).rejects.toThrow(ClipWeightsError);
    await expect(loadClip(dir)).rejects.toThrow(/missing 1 CLIP tensor\(s\): vision_model\.encoder\.layers\.1\.mlp\.fc1\.bias/);
  });

  it('a misshapen tensor is named with the expected and the found shape', async () => {
    const { tensors } = await readSafetensors(join(TINY_CLIP, 'model.safetensors'));
    tensors['text_projection.weight'] = { dtype: 'F32', shape: [16, 48], data: new Float32Array(16 * 48) };
    await writeSafetensors(join(dir, 'model.safetensors'), tensors as never);
    await expect(loadClip(dir)).rejects.toThrow(/text_projection\.weight has shape \[16,48\], expected \[32,48\]/);
  });

  it('tokenizer files of another checkpoint are caught', async () => {
    await copyFile(join(TINY_CLIP, 'model.safetensors'), join(dir, 'model.safetensors'));
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    config.text_config.eos_token_id = 5;
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await expect(loadClip(dir)).rejects.toThrow(/<\|endoftext\|> id is 691 but config\.json's text_config\.eos_token_id is 5/);
  });
});

describe('configs', () => {
  it('names ViT-B/16 and ViT-L/14 and derives their tensor shapes', () => {
    const b16 = parseClipConfig({
      model_type: 'clip', projection_dim: 512,
      vision_config: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, image_size: 224, patch_size: 16 },
      text_config: { hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 8 },
    });
    expect(b16.name).toBe('ViT-B/16');
    const shapes = expectedClipTensors(b16);
    expect(shapes['vision_model.embeddings.position_embedding.weight']).toEqual([197, 768]);
    expect(shapes['text_model.embeddings.token_embedding.weight']).toEqual([49408, 512]);
    expect(Object.keys(shapes).filter((n) => n.startsWith('vision_model.encoder.layers.11.'))).toHaveLength(16);
    const l14 = parseClipConfig({
      model_type: 'clip', projection_dim: 768,
      vision_config: { hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, image_size: 224, patch_size: 14 },
      text_config: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12 },
    });
    expect(l14.name).toBe('ViT-L/14');
    expect(expectedClipTensors(l14)['vision_model.embeddings.position_embedding.weight']).toEqual([257, 1024]);
    expect(expectedClipTensors(l14)['visual_projection.weight']).toEqual([768, 1024]);
  });

  it('rejects an unsupported activation and inconsistent sizes', () => {
    const base = { model_type: 'clip', vision_config: { hidden_act: 'swish' }, text_config: {} };
    expect(() => parseClipConfig(base)).toThrow(/hidden_act 'swish' is not supported/);
    expect(() => parseClipConfig({ model_type: 'clip', vision_config: { image_size: 100, patch_size: 16 }, text_config: {} })).toThrow(
      /image_size 100 is not a multiple of patch_size 16/,
    );
  });
});
