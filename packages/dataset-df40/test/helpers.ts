import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import sharp from 'sharp';
import type { CliIO } from '@dfd/core';

export async function tempDir(prefix = 'dfd-df40-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A real PNG (or JPEG) whose pixels encode (x, y) so crops and flips are checkable. */
export async function writeImage(path: string, width: number, height: number, format: 'png' | 'jpeg' | 'webp' = 'png', seed = 0): Promise<void> {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = Math.round((255 * x) / Math.max(1, width - 1));
      data[i + 1] = Math.round((255 * y) / Math.max(1, height - 1));
      data[i + 2] = (x * 7 + y * 13 + seed * 31) % 256;
    }
  }
  await mkdir(dirname(path), { recursive: true });
  const img = sharp(data, { raw: { width, height, channels: 3 } });
  await writeFile(path, await (format === 'png' ? img.png() : format === 'jpeg' ? img.jpeg({ quality: 95 }) : img.webp({ lossless: true })).toBuffer());
}

export async function writeText(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

export function captureIO(cwd: string): CliIO & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk, _enc, done) {
        append(String(chunk));
        done();
      },
    });
  return {
    stdout: sink((s) => (out += s)),
    stderr: sink((s) => (err += s)),
    cwd,
    env: {},
    isTTY: false,
    out: () => out,
    err: () => err,
  };
}
