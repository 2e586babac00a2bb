// npm run bench -w @dfd/plugin-ufd   (the root `npm run bench` builds first; alone: npx tsc -b packages/plugin-ufd packages/dataset-df40 packages/encoder-clip)
//
// Feature cache: one epoch of the synthetic mini-DF40's training split (eval view, batch 32) on a cold
// cache (miss: decode + transform + encode + store; the baseline) and on a warm one (hit: read the stored
// embeddings), with the tiny CLIP's ONNX image path and its tfjs tower. The ratio is what a second epoch, a
// second head or a re-evaluation saves.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EncoderImagePath, ensureBackend, FeatureCacheLoader } from '@dfd/core';
import { Df40JsonDataset, generateMiniDf40, ImageBatchLoader } from '@dfd/dataset-df40';
import { loadClip, OnnxClipImageEncoder } from '@dfd/encoder-clip';

const MODEL = fileURLToPath(new URL('../../../examples/models/tiny-clip-df40', import.meta.url));
const backend = await ensureBackend();
const data = mkdtempSync(join(tmpdir(), 'dfd-ufd-bench-data-'));
await generateMiniDf40({ out: data, overwrite: true });
const samples = await new Df40JsonDataset({ root: data }).samples({ split: 'train' });
const options = { split: 'train', batchSize: 32, shuffle: true, augment: false, seed: 1, needs: { pixels: false, features: true, extras: [], boxes: false } };
const preprocessing = { size: 32, eval: { crop: 'center', normalize: 'clip' } };

async function epoch(loader) {
  const started = performance.now();
  let n = 0;
  for await (const batch of loader.create(samples, options).batches(0)) {
    n += batch.samples.length;
    batch.dispose();
  }
  return { seconds: (performance.now() - started) / 1000, n };
}

const tfjsEncoder = await loadClip(MODEL);
const engines = {
  onnx: () => OnnxClipImageEncoder.create(MODEL),
  [`tfjs-${backend.name}`]: async () => new EncoderImagePath(tfjsEncoder),
};
console.log(`feature cache, one epoch of the mini-DF40 train split (${samples.length} listed images, eval view 32 px)`);
console.log('engine        miss (s)   hit (s)   images   hit speed-up');
for (const [name, open] of Object.entries(engines)) {
  const dir = mkdtempSync(join(tmpdir(), 'dfd-ufd-bench-cache-'));
  const encoder = await open();
  const make = () => new FeatureCacheLoader({ inner: new ImageBatchLoader(preprocessing), encoder, dir, preprocessing });
  const miss = await epoch(make());
  const hit = await epoch(make());
  console.log(`${name.padEnd(12)} ${miss.seconds.toFixed(3).padStart(9)} ${hit.seconds.toFixed(3).padStart(9)} ${String(hit.n).padStart(8)} ${(miss.seconds / hit.seconds).toFixed(1).padStart(13)}×`);
  await encoder.dispose();
  rmSync(dir, { recursive: true, force: true });
}
tfjsEncoder.dispose();
rmSync(data, { recursive: true, force: true });
