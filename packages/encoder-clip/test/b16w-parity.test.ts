/**
 * A model with ViT-B/16's real widths (vision 768 × 12 heads, patch 16 at 224 px; text 512 × 8 heads), one
 * layer per tower, against transformers: tfjs and ONNX paths, fp32, 1e-4. Its weights are regenerated from
 * the fixture script's deterministic rule (det-weights.ts) and written with @dfd/core's safetensors writer.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBackend, tf, writeSafetensors, type NamedTensor } from '@dfd/core';
import { loadClip, OnnxClipImageEncoder, type ClipEncoder } from '@dfd/encoder-clip';
import { detScaled, detTensor } from './det-weights.js';
import { FIXTURES, f32, i32, maxAbsDiff, reference, relativeError } from './helpers.js';

const TOL = 1e-4;
const SRC = `${FIXTURES}b16w/`;

interface Manifest {
  weights_bin_bytes: number;
  initializers: Array<{ initializer: string; weight: string; transposed: boolean; offset: number; length: number; shape: number[] }>;
}

async function buildCheckpoint(dir: string): Promise<Map<string, Float32Array>> {
  const shapes = JSON.parse(await readFile(`${SRC}tensors.json`, 'utf8')) as Record<string, number[]>;
  const weights = new Map<string, Float32Array>();
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, shape] of Object.entries(shapes)) {
    const data = detTensor(name, shape);
    weights.set(name, data);
    tensors[name] = { shape, data };
  }
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  for (const file of ['config.json', 'vocab.json', 'merges.txt']) await copyFile(`${SRC}${file}`, join(dir, file));
  // The weightless ONNX graph + weights.bin written from the same rule, as its manifest says.
  const manifest = JSON.parse(await readFile(`${SRC}onnx/manifest.json`, 'utf8')) as Manifest;
  const blob = new Float32Array(manifest.weights_bin_bytes / 4);
  for (const entry of manifest.initializers) {
    const shape = shapes[entry.weight]!;
    const source = weights.get(entry.weight)!;
    let data = source;
    if (entry.transposed) {
      const [rows, cols] = shape as [number, number];
      data = new Float32Array(source.length);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[c * rows + r] = source[r * cols + c]!;
    }
    blob.set(data, entry.offset / 4);
  }
  await mkdir(join(dir, 'onnx'));
  await copyFile(`${SRC}onnx/vision_model.onnx`, join(dir, 'onnx/vision_model.onnx'));
  await writeFile(join(dir, 'onnx/weights.bin'), new Uint8Array(blob.buffer));
  return weights;
}

describe('ViT-B/16-width CLIP (1 layer), tfjs and ONNX vs transformers', () => {
  let dir: string;
  let clip: ClipEncoder;
  let ref: Record<string, NamedTensor>;
  let pixels: Float32Array;

  beforeAll(async () => {
    await ensureBackend();
    dir = await mkdtemp(join(tmpdir(), 'dfd-b16w-'));
    await buildCheckpoint(dir);
    clip = await loadClip(dir);
    ref = await reference(`${SRC}reference.safetensors`);
    pixels = detScaled('pixel_values', 3 * 224 * 224, 1.5);
  });
  afterAll(async () => {
    clip?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('is named ViT-B/16-shaped from its config', () => {
    expect(clip.info).toMatchObject({ imageSize: 224, gridSize: 14, visionWidth: 768, textWidth: 512, embedDim: 512 });
  });

  it('tfjs image embeddings and patch tokens match', () => {
    const input = tf.tensor4d(pixels, [1, 3, 224, 224]);
    const out = clip.encodeImage(input, { patchTokens: true });
    expect(maxAbsDiff(out.embeds.dataSync(), f32(ref.image_embeds))).toBeLessThan(TOL);
    expect(out.patchTokens!.shape).toEqual([1, 14, 14, 768]);
    expect(maxAbsDiff(out.patchTokens!.dataSync(), f32(ref.patch_tokens))).toBeLessThan(TOL);
    tf.dispose([input, out.embeds, out.patchTokens!]);
  });

  it('ONNX image embeddings and patch tokens match', async () => {
    const onnx = await OnnxClipImageEncoder.create(dir);
    const out = await onnx.embed(pixels, 1, { patchTokens: true });
    expect(maxAbsDiff(out.embeds, f32(ref.image_embeds))).toBeLessThan(TOL);
    expect(maxAbsDiff(out.patchTokens!, f32(ref.patch_tokens))).toBeLessThan(TOL);
    await onnx.dispose();
  });

  it('text embeddings, injected embeddings, logits, loss and gradient match', () => {
    const ids = tf.tensor2d(i32(ref.input_ids), ref.input_ids!.shape as [number, number], 'int32');
    const eot = Array.from(i32(ref.eot_indices));
    const text = clip.encodeText({ ids, eotIndices: eot });
    expect(maxAbsDiff(text.dataSync(), f32(ref.text_embeds))).toBeLessThan(TOL);
    // CoOp-style: context vectors (the fixture's deterministic `ctx`) spliced in at positions 1..4.
    const ctx = tf.tensor2d(detScaled('ctx', 4 * 512, 0.5), [4, 512]);
    const base = clip.embedTokens(ids);
    const injected = tf.concat([base.slice([0, 0, 0], [4, 1, 512]), tf.tile(ctx.expandDims(0), [4, 1, 1]), base.slice([0, 5, 0], [4, 72, 512])], 1) as tf.Tensor3D;
    const image = tf.tidy(() => clip.encodeImage(tf.tensor4d(pixels, [1, 3, 224, 224])).embeds);
    const labels = tf.tensor1d(i32(ref.loss_labels), 'int32');
    const normalize = (x: tf.Tensor2D) => tf.div(x, tf.norm(x, 'euclidean', -1, true)) as tf.Tensor2D;
    const logitsOf = (emb: tf.Tensor3D) =>
      tf.mul(clip.info.logitScale, tf.matMul(normalize(image), normalize(clip.encodeText({ embeddings: emb, eotIndices: eot })), false, true)) as tf.Tensor2D;
    const injectedText = clip.encodeText({ embeddings: injected, eotIndices: eot });
    expect(maxAbsDiff(injectedText.dataSync(), f32(ref.injected_text_embeds))).toBeLessThan(TOL);
    const logits = tf.tidy(() => logitsOf(injected));
    expect(maxAbsDiff(logits.dataSync(), f32(ref.logits_per_image))).toBeLessThan(1e-3);
    const { value, grad } = tf.valueAndGrad((emb: tf.Tensor3D) =>
      tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 4), logitsOf(emb)) as tf.Scalar,
    )(injected);
    expect(Math.abs(value.dataSync()[0]! - f32(ref.loss)[0]!)).toBeLessThan(TOL);
    // The reference keeps the first 16 positions; after EOT (<= 8) the gradient is exactly zero.
    const head = grad.slice([0, 0, 0], [4, 16, 512]);
    expect(relativeError(head.dataSync(), f32(ref.injected_grad))).toBeLessThan(TOL);
    expect(tf.max(tf.abs(grad.slice([0, 16, 0], [4, 61, 512]))).dataSync()[0]).toBe(0);
    tf.dispose([ids, text, ctx, base, injected, image, labels, injectedText, logits, value, grad, head]);
  });
});
