/** `dfd encode` run directly (`run(args, io)`) on the tiny CLIP with real image files on disk. */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBackend, PluginRegistry, readSafetensors, tf, UsageError, type CliIO } from '@dfd/core';
import clipPluginDefault, { clipPlugin, clipPreprocessBatch, encodeCommand, frozenImageEncoderFor, loadClip, type ClipEncoder } from '@dfd/encoder-clip';
import { FIXTURES, TINY_CLIP, maxAbsDiff } from './helpers.js';

function makeIo(cwd: string): CliIO & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (d) => (o += String(d)));
  stderr.on('data', (d) => (e += String(d)));
  return { stdout, stderr, cwd, env: {}, isTTY: false, out: () => o, err: () => e };
}

describe('dfd encode', () => {
  let dir: string;
  let clip: ClipEncoder;
  const images: string[] = [];

  beforeAll(async () => {
    await ensureBackend();
    clip = await loadClip(TINY_CLIP);
    dir = await mkdtemp(join(tmpdir(), 'dfd-encode-'));
    await mkdir(join(dir, 'imgs/sub'), { recursive: true });
    for (let i = 0; i < 5; i++) {
      const path = join(dir, i < 3 ? 'imgs' : 'imgs/sub', `img${i}.png`);
      await sharp({ create: { width: 40 + i * 7, height: 36, channels: 3, background: { r: 40 * i, g: 200 - 30 * i, b: 90 } } })
        .png()
        .toFile(path);
      images.push(path);
    }
    await copyFile(`${FIXTURES}preprocess/landscape.jpg`, join(dir, 'imgs/landscape.jpg'));
    images.push(join(dir, 'imgs/landscape.jpg'));
    images.sort();
  });
  afterAll(async () => {
    clip.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes embeddings, patch tokens and the row index; rows equal the tfjs encoder on the same images', async () => {
    const io = makeIo(dir);
    const code = await encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/**/*.{png,jpg}', '--out', 'feats.safetensors', '--batch', '4', '--patch-tokens'], io);
    expect(code).toBe(0);
    expect(io.out()).toMatch(/6 images, 0 already in .*, 6 to do \(.*onnxruntime-cpu, batch 4\)/);
    const { tensors, metadata } = await readSafetensors(join(dir, 'feats.safetensors'));
    const index = JSON.parse(await readFile(join(dir, 'feats.safetensors.index.json'), 'utf8'));
    expect(index.rows).toEqual(images);
    expect(JSON.parse(metadata.paths!)).toEqual(images);
    expect(tensors.embeds!.shape).toEqual([6, 32]);
    expect(tensors.patch_tokens!.shape).toEqual([6, 4, 4, 64]);
    const pixels = await clipPreprocessBatch(images, { size: 32 });
    const expected = tf.tidy(() => clip.encodeImage(tf.tensor4d(pixels, [6, 3, 32, 32])).embeds.dataSync());
    expect(maxAbsDiff(tensors.embeds!.data as Float32Array, expected)).toBeLessThan(1e-4);
  });

  it('resumes: a second run skips what is there and adds only new images', async () => {
    const extra = join(dir, 'imgs/zz-new.png');
    await sharp({ create: { width: 50, height: 50, channels: 3, background: '#336699' } }).png().toFile(extra);
    const io = makeIo(dir);
    expect(await encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/**/*.{png,jpg}', '--out', 'feats.safetensors', '--patch-tokens'], io)).toBe(0);
    expect(io.out()).toMatch(/7 images, 6 already in .*, 1 to do/);
    const { tensors } = await readSafetensors(join(dir, 'feats.safetensors'));
    expect(tensors.embeds!.shape).toEqual([7, 32]);
    const index = JSON.parse(await readFile(join(dir, 'feats.safetensors.index.json'), 'utf8'));
    expect(index.rows.at(-1)).toBe(extra);
    await rm(extra);
  });

  it('--engine tfjs from a list file gives the same rows; corrupt images are counted and logged', async () => {
    const bad = join(dir, 'imgs/broken.jpg');
    await writeFile(bad, 'not an image');
    await writeFile(join(dir, 'list.txt'), ['# images', ...images.slice(0, 2).map((p) => p.replace(`${dir}/`, '')), 'imgs/broken.jpg'].join('\n'));
    const io = makeIo(dir);
    expect(await encodeCommand.run(['--model', TINY_CLIP, '--dataset', 'list.txt', '--out', 'tfjs.safetensors', '--engine', 'tfjs'], io)).toBe(0);
    expect(io.err()).toMatch(/skip .*broken\.jpg: cannot decode image/);
    expect(io.out()).toMatch(/wrote 2 rows .*skipped 1 unreadable/);
    const index = JSON.parse(await readFile(join(dir, 'tfjs.safetensors.index.json'), 'utf8'));
    expect(index.engine).toMatch(/^tfjs-/);
    expect(index.skipped).toHaveLength(1);
    const onnxRows = (await readSafetensors(join(dir, 'feats.safetensors'))).tensors.embeds!.data as Float32Array;
    const tfjsRows = (await readSafetensors(join(dir, 'tfjs.safetensors'))).tensors.embeds!.data as Float32Array;
    expect(maxAbsDiff(tfjsRows, onnxRows.subarray(0, 2 * 32))).toBeLessThan(1e-4);
    await rm(bad);
  });

  it('refuses to resume into a file made with other flags, and explains usage errors', async () => {
    const io = makeIo(dir);
    await expect(encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/*.png', '--out', 'feats.safetensors'], io)).rejects.toThrow(/with --patch-tokens/);
    await expect(encodeCommand.run(['--model', TINY_CLIP, '--out', 'x.safetensors'], io)).rejects.toThrow(UsageError);
    await expect(encodeCommand.run(['--model', TINY_CLIP, '--images', 'nothing/*.png', '--out', 'x.safetensors'], io)).rejects.toThrow(/matched no image/);
    await expect(encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/*.png', '--out', 'x.safetensors', '--batch', '0'], io)).rejects.toThrow(/--batch must be a positive integer/);
    await expect(encodeCommand.run(['--bogus'], io)).rejects.toThrow(/unknown option --bogus/);
  });
});

describe('the plugin', () => {
  it('is the default and a named export, registers encoder "clip" and the encode command', () => {
    expect(clipPluginDefault).toBe(clipPlugin);
    const registry = new PluginRegistry([clipPlugin]);
    expect(registry.namesOf('encoder')).toEqual(['clip']);
    expect(registry.commands().map((c) => c.name)).toEqual(['encode']);
    expect(registry.resolveConfig('encoder', 'clip', { model: TINY_CLIP })).toEqual({
      model: TINY_CLIP, engine: 'tfjs', device: 'cpu', trainable: 'none',
    });
    expect(() => registry.resolveConfig('encoder', 'clip', { model: TINY_CLIP, colour: 'red' })).toThrow(/unknown key 'colour'/);
  });

  it('its factory builds a working encoder (frozen unless configured)', async () => {
    await ensureBackend();
    const definition = new PluginRegistry([clipPlugin]).get('encoder', 'clip');
    const frozen = definition.useFactory!({ model: TINY_CLIP, engine: 'tfjs', device: 'cpu', trainable: 'none' }, undefined as never) as ClipEncoder;
    expect(frozen.trainableVariables()).toEqual({});
    expect(frozen.info.embedDim).toBe(32);
    frozen.dispose();
    const tuned = definition.useFactory!({ model: TINY_CLIP, engine: 'tfjs', device: 'cpu', trainable: 'vision' }, undefined as never) as ClipEncoder;
    expect(Object.keys(tuned.trainableVariables()).length).toBeGreaterThan(10);
    tuned.dispose();
  });

  it('frozenImageEncoderFor opens the engine the config names; both embed alike', async () => {
    await ensureBackend();
    const base = { model: TINY_CLIP, device: 'cpu' as const, trainable: 'none' as const };
    const onnx = await frozenImageEncoderFor({ ...base, engine: 'onnx' });
    const tfjs = await frozenImageEncoderFor({ ...base, engine: 'tfjs' });
    expect(onnx.engine).toBe('onnxruntime-cpu');
    expect(tfjs.engine).toMatch(/^tfjs-/);
    const pixels = await clipPreprocessBatch([`${FIXTURES}preprocess/square.jpg`], { size: 32 });
    const a = await onnx.embed(pixels, 1);
    const b = await tfjs.embed(pixels, 1);
    expect(maxAbsDiff(a.embeds, b.embeds)).toBeLessThan(1e-4);
    await Promise.all([onnx.dispose(), tfjs.dispose()]);
  });
});
