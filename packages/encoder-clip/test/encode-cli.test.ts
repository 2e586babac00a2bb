/** `dfd encode` run directly (`run(args, io)`) on the tiny CLIP with real image files on disk. */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureCliIo } from '../../../test/support/cli-io.js';
import { runDfd } from '../../../test/support/dfd-child.js';
import { ensureBackend, PluginRegistry, readSafetensors, tf, UsageError } from '@dfd/core';
import clipPluginDefault, { clipPlugin, clipPreprocessBatch, drawCalibrationImages, encodeCommand, frozenImageEncoderFor, loadClip, type ClipEncoder } from '@dfd/encoder-clip';
import { FIXTURES, TINY_CLIP, maxAbsDiff } from './helpers.js';


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
    const io = captureCliIo(dir);
    const code = await encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/**/*.{png,jpg}', '--out', 'feats.safetensors', '--batch', '4', '--patch-tokens'], io);
    expect(code).toBe(0);
    expect(io.out()).toMatch(/6 images, 0 already in .*, 6 to do \(.*onnxruntime-cpu, fp32, batch 4\)/);
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
    const io = captureCliIo(dir);
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
    const io = captureCliIo(dir);
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
    const io = captureCliIo(dir);
    await expect(encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/*.png', '--out', 'feats.safetensors'], io)).rejects.toThrow(/with --patch-tokens/);
    await expect(encodeCommand.run(['--model', TINY_CLIP, '--out', 'x.safetensors'], io)).rejects.toThrow(UsageError);
    await expect(encodeCommand.run(['--model', TINY_CLIP, '--images', 'nothing/*.png', '--out', 'x.safetensors'], io)).rejects.toThrow(/matched no image/);
    await expect(encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/*.png', '--out', 'x.safetensors', '--batch', '0'], io)).rejects.toThrow(/--batch must be a positive integer/);
    await expect(encodeCommand.run(['--bogus'], io)).rejects.toThrow(/unknown option --bogus/);
    await expect(encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/*.png', '--out', 'x.safetensors', '--precision', 'fp8'], io)).rejects.toThrow(/--precision must be one of fp32, bf16, int8/);
    await expect(encodeCommand.run(['--model', TINY_CLIP, '--images', 'imgs/*.png', '--out', 'x.safetensors', '--engine', 'tfjs', '--precision', 'int8'], io)).rejects.toThrow(/needs --engine onnx/);
  });

  it('--precision int8 on a Hugging Face folder without onnx/: builds the graph once, records the precision, refuses to mix', async () => {
    const model = join(dir, 'hf-only');
    await mkdir(model);
    for (const file of ['config.json', 'model.safetensors']) await copyFile(join(TINY_CLIP, file), join(model, file));
    const io = captureCliIo(dir);
    expect(await encodeCommand.run(['--model', model, '--images', 'imgs/**/*.{png,jpg}', '--out', 'int8.safetensors', '--precision', 'int8'], io)).toBe(0);
    expect(io.out()).toMatch(/onnxruntime-cpu-int8, int8, batch 16/);
    expect(io.err()).toMatch(/building the int8 ONNX vision tower/);
    const index = JSON.parse(await readFile(join(dir, 'int8.safetensors.index.json'), 'utf8'));
    expect(index).toMatchObject({ precision: 'int8', engine: 'onnxruntime-cpu-int8' });
    const { tensors, metadata } = await readSafetensors(join(dir, 'int8.safetensors'));
    expect(metadata.precision).toBe('int8');
    const fp32 = (await readSafetensors(join(dir, 'feats.safetensors'))).tensors.embeds!.data as Float32Array;
    const int8 = tensors.embeds!.data as Float32Array;
    for (let r = 0; r < 6; r++) {
      const a = int8.subarray(r * 32, (r + 1) * 32);
      const b = fp32.subarray(r * 32, (r + 1) * 32);
      let dot = 0;
      let na = 0;
      let nb = 0;
      for (let i = 0; i < 32; i++) {
        dot += a[i]! * b[i]!;
        na += a[i]! ** 2;
        nb += b[i]! ** 2;
      }
      // 64-wide random tiny tower: int8 is coarse here (measured 0.987); the width-768 tower is tested in onnx-build.test.ts.
      expect(dot / Math.sqrt(na * nb)).toBeGreaterThan(0.98);
    }
    const again = captureCliIo(dir);
    expect(await encodeCommand.run(['--model', model, '--images', 'imgs/**/*.{png,jpg}', '--out', 'int8.safetensors', '--precision', 'int8'], again)).toBe(0);
    expect(again.err()).not.toMatch(/building/);
    expect(again.out()).toMatch(/6 already in/);
    await expect(encodeCommand.run(['--model', model, '--images', 'imgs/**/*.{png,jpg}', '--out', 'int8.safetensors'], captureCliIo(dir))).rejects.toThrow(
      /another model or precision .*precision int8.*precision fp32/,
    );
  });

  it('--precision int8 --calibrate N: static int8 calibrated on N images drawn from the whole list, the same for every shard', async () => {
    const model = join(dir, 'hf-static');
    await mkdir(model);
    for (const file of ['config.json', 'model.safetensors']) await copyFile(join(TINY_CLIP, file), join(model, file));
    const args = (out: string, ...more: string[]) => ['--model', model, '--images', 'imgs/**/*.{png,jpg}', '--out', out, '--precision', 'int8', '--calibrate', '4', ...more];
    const io = captureCliIo(dir);
    expect(await encodeCommand.run(args('static.safetensors'), io)).toBe(0);
    expect(io.err()).toMatch(/calibrating int8 activation ranges on 4 images/);
    expect(io.out()).toMatch(/onnxruntime-cpu-int8-static, int8, batch 16/);
    const index = JSON.parse(await readFile(join(dir, 'static.safetensors.index.json'), 'utf8'));
    expect(index).toMatchObject({ precision: 'int8', engine: 'onnxruntime-cpu-int8-static' });
    const manifests = (await readdir(join(model, 'onnx/dfd'))).filter((f) => /^vision-int8-static-.*\.manifest\.json$/.test(f));
    expect(manifests).toHaveLength(1);
    const manifest = JSON.parse(await readFile(join(model, 'onnx/dfd', manifests[0]!), 'utf8'));
    expect(manifest.calibration).toMatchObject({ images: 4 });
    expect(manifest.method).toMatch(/^int8-static-qdq/);
    expect(index.weightsDigest).toBe(manifest.digest);
    // A shard draws the same calibration images from the whole list: the same graph, not a second one.
    const shard = captureCliIo(dir);
    expect(await encodeCommand.run(args('shard0.safetensors', '--shard', '0/2'), shard)).toBe(0);
    expect(shard.err()).not.toMatch(/building/);
    expect(JSON.parse(await readFile(join(dir, 'shard0.safetensors.index.json'), 'utf8')).weightsDigest).toBe(manifest.digest);
    // Dynamic int8 is another precision namespace: its file refuses the static rows.
    await expect(encodeCommand.run(args('int8.safetensors'), captureCliIo(dir))).rejects.toThrow(/another model or precision/);
    await expect(encodeCommand.run(['--model', model, '--images', 'imgs/*.png', '--out', 'x.safetensors', '--calibrate', '4'], captureCliIo(dir))).rejects.toThrow(
      /--calibrate goes with --precision int8/,
    );
  });

  it("the encoder config's calibrate: static int8 for the feature cache, announced as int8-static; refused without int8", async () => {
    const model = join(dir, 'hf-static');
    const base = { model, device: 'cpu' as const, trainable: 'none' as const, engine: 'onnx' as const };
    const encoder = await frozenImageEncoderFor({ ...base, precision: 'int8', calibrate: { images, count: 4, smoothAlpha: 0 } });
    expect(encoder.engine).toBe('onnxruntime-cpu-int8-static');
    // The same list, draw and preprocessing as `dfd encode --calibrate 4` above: the same cached graph.
    const index = JSON.parse(await readFile(join(dir, 'static.safetensors.index.json'), 'utf8'));
    expect(encoder.weightsDigest).toBe(index.weightsDigest);
    await encoder.dispose();
    await expect(frozenImageEncoderFor({ ...base, precision: 'fp32', calibrate: { images: 'imgs/*.png', count: 4, smoothAlpha: 0 } })).rejects.toThrow(/calibrate is for precision 'int8'/);
  });

  it('SIGTERM (scancel) saves the batch in flight and exits 130; the rerun finishes with the rows of an uninterrupted run', async () => {
    const many = join(dir, 'many');
    await mkdir(many);
    for (let i = 0; i < 48; i++) await sharp({ create: { width: 36, height: 36, channels: 3, background: { r: 5 * i, g: 90, b: 240 - 5 * i } } }).png().toFile(join(many, `m${String(i).padStart(2, '0')}.png`));
    const args = ['encode', '--model', TINY_CLIP, '--images', 'many/*.png', '--batch', '4', '--checkpoint-every', '1'];
    // The signal goes out when the command announces its work, before its first batch; the loop notices it
    // after the batch in flight (one, or a few when this test's process is slow to react).
    const stopped = await runDfd(dir, [...args, '--out', 'stopped.safetensors'], /48 to do/, 'SIGTERM');
    expect(stopped.code, stopped.output).toBe(130);
    expect(stopped.output).toMatch(/encode: SIGTERM: saving after the batch in flight/);
    const [, done, saved] = /stopped by SIGTERM after (\d+)\/48 images; (\d+) rows saved/.exec(stopped.output) ?? [];
    expect(Number(saved)).toBe(Number(done));
    expect(Number(done) % 4).toBe(0);
    expect(Number(done)).toBeLessThan(48);
    expect(JSON.parse(await readFile(join(dir, 'stopped.safetensors.index.json'), 'utf8')).rows).toHaveLength(Number(done));
    const resumed = await runDfd(dir, [...args, '--out', 'stopped.safetensors']);
    expect(resumed.code, resumed.output).toBe(0);
    expect(resumed.output).toMatch(new RegExp(`48 images, ${done} already in`));
    const whole = await runDfd(dir, [...args, '--out', 'whole.safetensors']);
    expect(whole.code, whole.output).toBe(0);
    const a = await readSafetensors(join(dir, 'stopped.safetensors'));
    const b = await readSafetensors(join(dir, 'whole.safetensors'));
    expect(a.metadata.paths).toBe(b.metadata.paths);
    expect(Buffer.from((a.tensors.embeds!.data as Float32Array).buffer).equals(Buffer.from((b.tensors.embeds!.data as Float32Array).buffer))).toBe(true);
  }, 60_000);

  it('draws calibration images evenly over the list', () => {
    const list = Array.from({ length: 10 }, (_, i) => `img${i}`);
    expect(drawCalibrationImages(list, 4)).toEqual(['img1', 'img3', 'img6', 'img8']);
    expect(drawCalibrationImages(list, 20)).toEqual(list);
  });
});

describe('the plugin', () => {
  it('is the default and a named export, registers encoder "clip" and the encode command', () => {
    expect(clipPluginDefault).toBe(clipPlugin);
    const registry = new PluginRegistry([clipPlugin]);
    expect(registry.namesOf('encoder')).toEqual(['clip']);
    expect(registry.commands().map((c) => c.name)).toEqual(['encode']);
    expect(registry.resolveConfig('encoder', 'clip', { model: TINY_CLIP })).toEqual({
      model: TINY_CLIP, engine: 'tfjs', device: 'cpu', precision: 'fp32', trainable: 'none',
    });
    expect(() => registry.resolveConfig('encoder', 'clip', { model: TINY_CLIP, colour: 'red' })).toThrow(/unknown key 'colour'/);
  });

  it('its factory builds a working encoder (frozen unless configured)', async () => {
    await ensureBackend();
    const definition = new PluginRegistry([clipPlugin]).get('encoder', 'clip');
    const frozen = definition.useFactory!({ model: TINY_CLIP, engine: 'tfjs', device: 'cpu', precision: 'fp32', trainable: 'none' }, undefined as never) as ClipEncoder;
    expect(frozen.trainableVariables()).toEqual({});
    expect(frozen.info.embedDim).toBe(32);
    frozen.dispose();
    const tuned = definition.useFactory!({ model: TINY_CLIP, engine: 'tfjs', device: 'cpu', precision: 'fp32', trainable: 'vision' }, undefined as never) as ClipEncoder;
    expect(Object.keys(tuned.trainableVariables()).length).toBeGreaterThan(10);
    tuned.dispose();
  });

  it('frozenImageEncoderFor opens the engine the config names; both embed alike', async () => {
    await ensureBackend();
    const base = { model: TINY_CLIP, device: 'cpu' as const, precision: 'fp32' as const, trainable: 'none' as const };
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
