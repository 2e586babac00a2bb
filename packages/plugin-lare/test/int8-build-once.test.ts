/** Two shards asking for the same int8 UNet at once build it once (the build lock of @dfd/core). */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureInt8Graph } from '../src/stage1/int8-graph.js';
import { tinySdCopy } from './helpers.js';

describe('two shards asking for the same int8 UNet at once', () => {
  it('build it once: the second waits, then finds it cached', async () => {
    const { dir: work, model } = await tinySdCopy('dfd-build-lock-sd-', []);
    try {
      const unet = join(model, 'unet', 'model.onnx');
      const [a, b] = await Promise.all([ensureInt8Graph(unet, { minElements: 256 }), ensureInt8Graph(unet, { minElements: 256 })]);
      expect([a.built, b.built].sort()).toEqual([false, true]);
      expect(a.path).toBe(b.path);
      expect(a.manifest.createdAt).toBe(b.manifest.createdAt);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
