/** The onnxruntime path on the committed tiny CLIP: same outputs as transformers and as the tfjs towers. */
import { copyFile, mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBackend, tf, type NamedTensor } from '@dfd/core';
import { ClipOnnxError, loadClip, OnnxClipImageEncoder, TfjsClipImageEncoder } from '@dfd/encoder-clip';
import { FIXTURES, TINY_CLIP, f32, maxAbsDiff, reference } from './helpers.js';

describe('OnnxClipImageEncoder on the tiny CLIP', () => {
  let onnx: OnnxClipImageEncoder;
  let ref: Record<string, NamedTensor>;

  beforeAll(async () => {
    onnx = await OnnxClipImageEncoder.create(TINY_CLIP, { threads: 1 });
    ref = await reference(`${FIXTURES}tiny/reference.safetensors`);
  });
  afterAll(async () => onnx.dispose());

  it('reports engine, info and a weights digest', () => {
    expect(onnx.engine).toBe('onnxruntime-cpu');
    expect(onnx.info).toMatchObject({ imageSize: 32, embedDim: 32, visionWidth: 64, gridSize: 4 });
    expect(onnx.info.logitScale).toBeCloseTo(100, 3);
    expect(onnx.weightsDigest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('matches transformers within 1e-4 (embeddings and patch tokens)', async () => {
    const out = await onnx.embed(f32(ref.pixel_values), 2, { patchTokens: true });
    expect(maxAbsDiff(out.embeds, f32(ref.image_embeds))).toBeLessThan(1e-4);
    expect(maxAbsDiff(out.patchTokens!, f32(ref.patch_tokens))).toBeLessThan(1e-4);
    const only = await onnx.embed(f32(ref.pixel_values), 2);
    expect(only.patchTokens).toBeUndefined();
  });

  it('agrees with the tfjs path on the same weights and images', async () => {
    await ensureBackend();
    const clip = await loadClip(TINY_CLIP);
    const tfjs = await TfjsClipImageEncoder.wrap(clip, true);
    const pixels = f32(ref.pixel_values);
    const a = await onnx.embed(pixels, 2, { patchTokens: true });
    const b = await tfjs.embed(pixels, 2, { patchTokens: true });
    expect(maxAbsDiff(a.embeds, b.embeds)).toBeLessThan(1e-4);
    expect(maxAbsDiff(a.patchTokens!, b.patchTokens!)).toBeLessThan(1e-4);
    expect(tfjs.engine).toMatch(/^tfjs-/);
    const before = tf.memory().numTensors;
    await tfjs.embed(pixels, 2, { patchTokens: true });
    expect(tf.memory().numTensors).toBe(before);
    await tfjs.dispose();
  });

  it('rejects a pixel buffer of the wrong size', async () => {
    await expect(onnx.embed(new Float32Array(10), 1)).rejects.toThrow(/\[3, 32, 32\]/);
  });
});

describe('OnnxClipImageEncoder errors', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dfd-onnx-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('says where it looked when the folder has no ONNX export', async () => {
    await copyFile(join(TINY_CLIP, 'config.json'), join(dir, 'config.json'));
    await expect(OnnxClipImageEncoder.create(dir)).rejects.toThrow(ClipOnnxError);
    await expect(OnnxClipImageEncoder.create(dir)).rejects.toThrow(/onnx\/vision_model\.onnx/);
  });

  it('names the file when it is not a valid ONNX model', async () => {
    await mkdir(join(dir, 'onnx'), { recursive: true });
    await writeFile(join(dir, 'onnx/vision_model.onnx'), 'not a model');
    await expect(OnnxClipImageEncoder.create(dir)).rejects.toThrow(/cannot load ONNX model .*vision_model\.onnx/);
  });
});
