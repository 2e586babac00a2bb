// One benchmark configuration of our LaRE stage 1 in its own process (so peak RSS is this configuration's).
// argv: MODEL_DIR IMAGE_DIR BATCH COUNT SIZE ENSEMBLE THREADS PRECISION NOISE_FILE MAPS_OUT INT8_MIN_ELEMENTS → prints one JSON
// line and writes the timed images' maps (float32, image order) to MAPS_OUT for the error against PyTorch.
// PRECISION int8static: static int8 VAE and UNet calibrated on the images after the first COUNT (never timed).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LareExtractor, contentHash, decodeRgbLikePil, larePixels, openSdOnnx, openSdOnnxStaticInt8 } from '../dist/index.js';

const [model, imageDir, batchArg, countArg, sizeArg, ensembleArg, threadsArg, precision, noiseFile, mapsOut, minElements] = process.argv.slice(2);
const batch = Number(batchArg);
const count = Number(countArg);
const size = Number(sizeArg);
const all = readdirSync(imageDir).filter((n) => n.endsWith('.png')).sort().map((n) => join(imageDir, n));
const images = all.slice(0, count);

async function prepare(paths) {
  return Promise.all(paths.map(async (p) => {
    const bytes = readFileSync(p);
    return { hash: contentHash(bytes), pixels: larePixels(await decodeRgbLikePil(bytes, p), size) };
  }));
}

let t0 = performance.now();
// The int8 graphs are made once beforehand by bench.mjs (not timed here); this only opens them.
const settings = { timestep: 200, ensemble: Number(ensembleArg), size, prompt: 'a photo of a face', seed: 0, noiseFile };
const options = { threads: Number(threadsArg) };
const sd = precision === 'int8static'
  ? await openSdOnnxStaticInt8(model, settings, await prepare(all.slice(count)), { ...options, minElements: Number(minElements ?? 4096) })
  : await openSdOnnx(model, { ...options, precision, int8MinElements: Number(minElements ?? 4096) });
const extractor = await LareExtractor.create(sd, settings);
const loadSeconds = (performance.now() - t0) / 1000;

// Warm-up batch (first-run allocations), not timed.
await extractor.maps(await prepare(images.slice(0, batch)));
const before = { ...extractor.times };
t0 = performance.now();
let done = 0;
const maps = [];
for (let i = 0; i < images.length; i += batch) {
  const chunk = images.slice(i, i + batch);
  maps.push(...(await extractor.maps(await prepare(chunk))));
  done += chunk.length;
}
const seconds = (performance.now() - t0) / 1000;
await sd.dispose();
const flat = new Float32Array(maps.reduce((n, m) => n + m.length, 0));
maps.reduce((at, m) => (flat.set(m, at), at + m.length), 0);
writeFileSync(mapsOut, Buffer.from(flat.buffer));
console.log(JSON.stringify({
  engine: `ours ${precision}`,
  batch,
  images: done,
  imgPerSec: done / seconds,
  vaeSecPerImage: (extractor.times.vaeMs - before.vaeMs) / 1000 / done,
  unetSecPerImage: (extractor.times.unetMs - before.unetMs) / 1000 / done,
  loadSeconds,
  peakRssGiB: process.resourceUsage().maxRSS / 1024 / 1024,
}));
