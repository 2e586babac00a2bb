import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rngFor } from '@dfd/core';
import {
  ImageDecodeError,
  NORMALIZATION,
  parseTransformSpec,
  planTransform,
  prepareImage,
  pyRound,
  randomResizedCropRect,
  transformBoxes,
  transformImage,
  evalView,
} from '@dfd/dataset-df40';
import { tempDir, writeImage } from './helpers.js';

const FIXTURES = new URL('../../../tools/fixtures/df40/out/', import.meta.url);

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterAll(() => cleanup());

async function raw(path: string): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

describe('resize parity with PIL (bicubic)', () => {
  const cases = JSON.parse(readFileSync(new URL('resize/cases.json', FIXTURES), 'utf8')) as Array<{
    name: string; width: number; height: number; shorter: number; out: [number, number];
  }>;
  it.each(cases.map((c) => [c.name, c] as const))('%s: resize-shorter + center crop matches PIL within 8-bit rounding', async (_name, c) => {
    const input = new URL(`resize/${c.name}_in.png`, FIXTURES).pathname;
    const pil = await raw(new URL(`resize/${c.name}_pil.png`, FIXTURES).pathname);
    expect([pil.width, pil.height]).toEqual(c.out);
    const spec = parseTransformSpec({ size: c.shorter, crop: 'center', normalize: 'none' });
    const ours = await transformImage(input, spec, rngFor(0, 't'));
    expect(ours.plan.resize).toEqual({ width: c.out[0], height: c.out[1] });
    const left = ours.plan.post?.left ?? 0;
    const top = ours.plan.post?.top ?? 0;
    let sum = 0;
    let max = 0;
    let n = 0;
    for (let y = 0; y < ours.height; y++) {
      for (let x = 0; x < ours.width; x++) {
        for (let ch = 0; ch < 3; ch++) {
          const d = Math.abs(ours.data[(y * ours.width + x) * 3 + ch]! - pil.data[((y + top) * pil.width + x + left) * 3 + ch]!);
          sum += d;
          max = Math.max(max, d);
          n++;
        }
      }
    }
    const mae = sum / n;
    console.log(`resize parity ${c.name}: mean |sharp − PIL| = ${mae.toFixed(3)}, max = ${max} (0–255)`);
    // libvips and PIL both use antialiased Catmull-Rom but round differently at 8 bits (measured: mean
    // 0.15–0.31, max 4–16 on these noisy, striped images)
    expect(mae).toBeLessThan(0.5);
    expect(max).toBeLessThanOrEqual(20);
  });
});

describe('transform plans', () => {
  it('center-crop offsets match torchvision (Python rounding)', () => {
    const cases = JSON.parse(readFileSync(new URL('center_crop.json', FIXTURES), 'utf8')) as Array<{ width: number; height: number; size: number; left: number; top: number }>;
    for (const c of cases) {
      const plan = planTransform(parseTransformSpec({ size: c.size, resize: 0, crop: 'center' }), c.width, c.height, rngFor(0, 'x'));
      expect(plan.post ?? { left: 0, top: 0 }, JSON.stringify(c)).toMatchObject({ left: c.left, top: c.top });
    }
    expect(pyRound(0.5)).toBe(0);
    expect(pyRound(1.5)).toBe(2);
    expect(pyRound(2.5)).toBe(2);
  });

  it('random-resized-crop stays inside the image and within the scale range', () => {
    const rng = rngFor(3, 'rrc');
    for (let i = 0; i < 500; i++) {
      const r = randomResizedCropRect(200, 120, [0.08, 1], [3 / 4, 4 / 3], rng);
      expect(r.left).toBeGreaterThanOrEqual(0);
      expect(r.top).toBeGreaterThanOrEqual(0);
      expect(r.left + r.width).toBeLessThanOrEqual(200);
      expect(r.top + r.height).toBeLessThanOrEqual(120);
      expect((r.width * r.height) / (200 * 120)).toBeLessThanOrEqual(1.02);
    }
  });

  it('is deterministic for a seed and varies across seeds', () => {
    const spec = parseTransformSpec({ size: 32, crop: 'random-resized', flip: 0.5, blur: { p: 0.5, sigma: [0.1, 2] }, jpeg: { p: 0.5, quality: [30, 90] } });
    const plans = (seed: number) => Array.from({ length: 20 }, (_, i) => planTransform(spec, 64, 48, rngFor(seed, `s${i}`)));
    expect(plans(1)).toEqual(plans(1));
    expect(plans(1)).not.toEqual(plans(2));
    const flips = plans(1).filter((p) => p.flip).length;
    expect(flips).toBeGreaterThan(0);
    expect(flips).toBeLessThan(20);
  });
});

describe('image pipeline (sharp)', () => {
  it('produces identical pixels for the same seed, different ones for another seed', async () => {
    const path = join(dir, 'det.png');
    await writeImage(path, 80, 64);
    const spec = parseTransformSpec({ size: 32, crop: 'random-resized', flip: 0.5, blur: { p: 0.7, sigma: [0.5, 2] }, jpeg: { p: 0.7, quality: [30, 90] } });
    const a = await prepareImage(path, spec, rngFor(7, 'img'));
    const b = await prepareImage(path, spec, rngFor(7, 'img'));
    const c = await prepareImage(path, spec, rngFor(8, 'img'));
    expect(a.pixels.length).toBe(3 * 32 * 32);
    expect(Buffer.from(a.pixels.buffer).equals(Buffer.from(b.pixels.buffer))).toBe(true);
    expect(Buffer.from(a.pixels.buffer).equals(Buffer.from(c.pixels.buffer))).toBe(false);
  });

  it('scales boxes through resize, crop and flip onto the pixels they cover', async () => {
    // a white rectangle on black: after the transform, the white pixels must sit inside the mapped box
    const W = 100;
    const H = 80;
    const box = { region: 'mouth', x1: 20, y1: 20, x2: 60, y2: 40 };
    const data = Buffer.alloc(W * H * 3);
    for (let y = box.y1; y < box.y2; y++) for (let x = box.x1; x < box.x2; x++) data.fill(255, (y * W + x) * 3, (y * W + x) * 3 + 3);
    const path = join(dir, 'box.png');
    await writeFile(path, await sharp(data, { raw: { width: W, height: H, channels: 3 } }).png().toBuffer());

    const centre = parseTransformSpec({ size: 32, resize: 40, crop: 'center', normalize: 'none' });
    const plan = planTransform(centre, W, H, rngFor(0, 'b'));
    expect(plan.resize).toEqual({ width: 50, height: 40 });
    expect(plan.post).toEqual({ left: 9, top: 4, width: 32, height: 32 });
    expect(transformBoxes([box], plan)[0]).toEqual({ region: 'mouth', x1: 1, y1: 6, x2: 21, y2: 16 });

    for (const spec of [
      centre,
      parseTransformSpec({ size: 32, crop: 'random-resized', scale: [0.5, 1], flip: 1, normalize: 'none' }),
      parseTransformSpec({ size: 48, resize: 60, crop: 'random', flip: 1, normalize: 'none' }),
    ]) {
      for (let seed = 0; seed < 4; seed++) {
        const out = await prepareImage(path, spec, rngFor(seed, 'b'), { boxes: [box] });
        const mapped = out.boxes![0]!;
        const size = out.width;
        let inside = 0;
        let outside = 0;
        for (let y = 0; y < size; y++) {
          for (let x = 0; x < size; x++) {
            const white = out.pixels[y * size + x]! > 0.9; // red channel plane, [0,1] values
            if (!white) continue;
            const cx = x + 0.5;
            const cy = y + 0.5;
            if (cx >= mapped.x1 - 1 && cx <= mapped.x2 + 1 && cy >= mapped.y1 - 1 && cy <= mapped.y2 + 1) inside++;
            else outside++;
          }
        }
        expect(outside, `${spec.crop} seed ${seed}`).toBe(0);
        if (mapped.x2 - mapped.x1 > 3 && mapped.y2 - mapped.y1 > 3) expect(inside).toBeGreaterThan(0);
      }
    }
  });

  it('flip mirrors the columns exactly', async () => {
    const path = join(dir, 'flip.png');
    await writeImage(path, 40, 40);
    const base = { size: 32, crop: 'center' as const, normalize: 'none' as const };
    const plain = await prepareImage(path, parseTransformSpec({ ...base, flip: 0 }), rngFor(0, 'f'));
    const flipped = await prepareImage(path, parseTransformSpec({ ...base, flip: 1 }), rngFor(0, 'f'));
    expect(flipped.plan.flip).toBe(true);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          expect(flipped.pixels[c * 1024 + y * 32 + x]).toBe(plain.pixels[c * 1024 + y * 32 + (31 - x)]);
        }
      }
    }
  });

  it.each(['clip', 'imagenet', 'half'] as const)('normalises with the %s preset', async (name) => {
    const path = join(dir, `flat-${name}.png`);
    await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 128, g: 64, b: 255 } } }).png().toFile(path);
    const { pixels } = await prepareImage(path, parseTransformSpec({ size: 16, normalize: name }), rngFor(0, 'n'));
    const { mean, std } = NORMALIZATION[name];
    [128, 64, 255].forEach((v, c) => {
      expect(pixels[c * 256 + 37]).toBeCloseTo((v / 255 - mean[c]!) / std[c]!, 5);
    });
  });

  it('re-encodes PNG (not JPEG) sources as JPEG q95 when asked', async () => {
    const png = join(dir, 'p.png');
    const jpg = join(dir, 'p.jpg');
    await writeImage(png, 32, 32);
    await writeImage(jpg, 32, 32, 'jpeg');
    const spec = (pngToJpeg: boolean) => parseTransformSpec({ size: 32, pngToJpeg });
    const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
    expect(same(await evalView(png, spec(true)), await evalView(png, spec(false)))).toBe(false);
    expect(same(await evalView(jpg, spec(true)), await evalView(jpg, spec(false)))).toBe(true);
  });

  it('blur and JPEG re-encoding change the image; WebP and greyscale decode to RGB', async () => {
    const path = join(dir, 'aug.png');
    await writeImage(path, 32, 32);
    const energy = (p: Float32Array) => {
      let e = 0;
      for (let i = 1; i < 32 * 32; i++) if (i % 32 !== 0) e += Math.abs(p[2048 + i]! - p[2048 + i - 1]!); // blue: high-frequency pattern
      return e;
    };
    const base = await evalView(path, parseTransformSpec({ size: 32, normalize: 'none' }));
    const blurred = await evalView(path, parseTransformSpec({ size: 32, normalize: "none", blur: { p: 1, sigma: [2, 2] } }));
    expect(energy(blurred)).toBeLessThan(energy(base) * 0.8);
    const jpeg = await evalView(path, parseTransformSpec({ size: 32, normalize: 'none', jpeg: { p: 1, quality: [10, 10] } }));
    expect(jpeg).not.toEqual(base);
    const webp = join(dir, 'w.webp');
    await writeImage(webp, 32, 32, 'webp');
    expect(await evalView(webp, parseTransformSpec({ size: 32, normalize: 'none' }))).toEqual(base); // lossless
    const grey = join(dir, 'g.png');
    await sharp({ create: { width: 20, height: 20, channels: 3, background: { r: 90, g: 90, b: 90 } } }).greyscale().png().toFile(grey);
    const g = await evalView(grey, parseTransformSpec({ size: 16, normalize: 'none' }));
    expect(g).toHaveLength(3 * 256);
    expect(g[0]).toBeCloseTo(90 / 255, 5);
    expect(g[256]).toBeCloseTo(90 / 255, 5);
    expect(g[512]).toBeCloseTo(90 / 255, 5);
  });

  it('reports a corrupt file with its path', async () => {
    const bad = join(dir, 'bad.png');
    const good = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).png().toBuffer();
    await writeFile(bad, good.subarray(0, 60)); // truncated
    await expect(evalView(bad, parseTransformSpec({ size: 16 }))).rejects.toThrow(ImageDecodeError);
    await expect(evalView(bad, parseTransformSpec({ size: 16 }))).rejects.toThrow(bad);
  });
});
