// One benchmark configuration of our LaRE stage 1 in its own process (so peak RSS is this configuration's).
// argv: MODEL_DIR IMAGE_DIR BATCH COUNT SIZE ENSEMBLE THREADS → prints one JSON line.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LareExtractor, contentHash, decodeRgbLikePil, larePixels, openSdOnnx } from '../dist/index.js';

const [model, imageDir, batchArg, countArg, sizeArg, ensembleArg, threadsArg] = process.argv.slice(2);
const batch = Number(batchArg);
const count = Number(countArg);
const size = Number(sizeArg);
const images = readdirSync(imageDir).filter((n) => n.endsWith('.png')).sort().slice(0, count).map((n) => join(imageDir, n));

let t0 = performance.now();
const sd = await openSdOnnx(model, { threads: Number(threadsArg) });
const extractor = await LareExtractor.create(sd, { timestep: 200, ensemble: Number(ensembleArg), size, prompt: 'a photo of a face', seed: 0 });
const loadSeconds = (performance.now() - t0) / 1000;

async function prepare(paths) {
  return Promise.all(paths.map(async (p) => {
    const bytes = readFileSync(p);
    return { hash: contentHash(bytes), pixels: larePixels(await decodeRgbLikePil(bytes, p), size) };
  }));
}

// Warm-up batch (first-run allocations), not timed.
await extractor.maps(await prepare(images.slice(0, batch)));
const before = { ...extractor.times };
t0 = performance.now();
let done = 0;
for (let i = 0; i < images.length; i += batch) {
  const chunk = images.slice(i, i + batch);
  await extractor.maps(await prepare(chunk));
  done += chunk.length;
}
const seconds = (performance.now() - t0) / 1000;
await sd.dispose();
console.log(JSON.stringify({
  engine: 'onnxruntime',
  batch,
  images: done,
  imgPerSec: done / seconds,
  vaeSecPerImage: (extractor.times.vaeMs - before.vaeMs) / 1000 / done,
  unetSecPerImage: (extractor.times.unetMs - before.unetMs) / 1000 / done,
  loadSeconds,
  peakRssGiB: process.resourceUsage().maxRSS / 1024 / 1024,
}));
