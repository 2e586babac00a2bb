/**
 * Stage-by-stage parity with diffusers/transformers/torch (tools/fixtures/lare-stage1/make_fixtures.py):
 * the reference runs the PyTorch modules, we run the ONNX export through onnxruntime.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRgbLikePil, larePixels } from '../src/stage1/image.js';
import { encodeImages, encodePrompt, LareExtractor } from '../src/stage1/lare.js';
import { openSdOnnx, type SdOnnxModel } from '../src/stage1/sd-model.js';
import { contentHash } from '../src/stage1/noise.js';
import { FIXTURES, IMAGES, NOISE, TINY_SD, reference, relativeError, type Cases } from './helpers.js';

const TOL = 1e-4;
let cases: Cases;
let model: SdOnnxModel;
let linear500: SdOnnxModel;
let linearDir: string;

async function pixelsOf(name: string, size: number): Promise<Float32Array> {
  const bytes = await readFile(join(IMAGES, name));
  return larePixels(await decodeRgbLikePil(bytes, name), size);
}

beforeAll(async () => {
  cases = JSON.parse(await readFile(join(FIXTURES, 'cases.json'), 'utf8')) as Cases;
  model = await openSdOnnx(TINY_SD, { threads: 1 });
  // Another num_train_timesteps and beta schedule: the same model with a 500-step linear schedule.
  linearDir = await mkdtemp(join(tmpdir(), 'lare-linear500-'));
  await cp(TINY_SD, linearDir, { recursive: true });
  await writeFile(
    join(linearDir, 'scheduler', 'scheduler_config.json'),
    JSON.stringify({ _class_name: 'DDPMScheduler', num_train_timesteps: 500, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear' }),
  );
  linear500 = await openSdOnnx(linearDir, { threads: 1 });
});

afterAll(async () => {
  await model?.dispose();
  await linear500?.dispose();
  if (linearDir) await rm(linearDir, { recursive: true, force: true });
});

describe('stage parity with diffusers', () => {
  it('text embedding of the prompt and of the empty prompt', async () => {
    for (const [prompt, tensor] of [
      [cases.prompt, 'text.embedding'],
      ['', 'text_empty.embedding'],
    ] as const) {
      const ours = await encodePrompt(model, prompt);
      const err = relativeError(ours.embedding, await reference(tensor));
      expect(err, `${tensor} relative error`).toBeLessThan(TOL);
    }
  });

  it('pixels (PIL convert + bicubic resize + scaling) of RGB, grey, CMYK, RGBA and JPEG images', async () => {
    for (const [key, name] of Object.entries(cases.images)) {
      const err = relativeError(await pixelsOf(name, cases.size), await reference(`${key}.pixels`));
      expect(err, `${key} pixels`).toBeLessThan(1e-6);
    }
  });

  it('VAE mean and log-variance', async () => {
    for (const [key, name] of Object.entries(cases.images)) {
      const { mean, logvar } = await encodeImages(model, await reference(`${key}.pixels`), 1, cases.size);
      expect(relativeError(mean, await reference(`${key}.mean`)), `${key} mean`).toBeLessThan(TOL);
      expect(relativeError(logvar, await reference(`${key}.logvar`)), `${key} logvar`).toBeLessThan(TOL);
      void name;
    }
  });

  it('final maps for every case (t = 0, 200, 999, E = 1, empty prompt, 500-step linear schedule)', async () => {
    const errors: Record<string, number> = {};
    for (const c of cases.maps) {
      const sd = c.schedule === 'linear500' ? linear500 : model;
      const extractor = await LareExtractor.create(sd, { timestep: c.t, ensemble: c.ensemble, size: cases.size, prompt: c.prompt, seed: 0, noiseFile: NOISE });
      const name = cases.images[c.image]!;
      const bytes = await readFile(join(IMAGES, name));
      const [map] = await extractor.maps([{ pixels: await pixelsOf(name, cases.size), hash: contentHash(bytes) }]);
      errors[c.tensor] = relativeError(map!, await reference(c.tensor));
    }
    for (const [tensor, err] of Object.entries(errors)) expect(err, tensor).toBeLessThan(TOL);
    console.log('LaRE map relative errors vs diffusers:', errors);
  });

  it('a batch of several images gives each image the map it gets alone', async () => {
    const extractor = await LareExtractor.create(model, { timestep: 200, ensemble: 2, size: cases.size, prompt: cases.prompt, seed: 5 });
    const names = Object.values(cases.images);
    const inputs = await Promise.all(names.map(async (n) => ({ pixels: await pixelsOf(n, cases.size), hash: contentHash(await readFile(join(IMAGES, n))) })));
    const together = await extractor.maps(inputs);
    for (let i = 0; i < inputs.length; i++) {
      const [alone] = await extractor.maps([inputs[i]!]);
      expect(relativeError(together[i]!, alone!)).toBeLessThan(1e-5);
    }
  });
});
