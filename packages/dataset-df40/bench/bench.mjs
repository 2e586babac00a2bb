// npm run bench -w @dfd/dataset-df40   (the root `npm run bench` builds first; alone, run `npx tsc -b packages/dataset-df40`)
//
// Images/s through decode + resize (bicubic, shorter side 224) + center crop + normalise of 256×256 PNG
// faces at concurrency 1 and 2, plus the augmenting train transform and the full BatchLoader (tfjs
// tensors, prefetch). Baseline in the same run: what the CLIP ONNX image path (@dfd/encoder-clip's
// ViT-B/16-shaped bench worker, batch 8, all cores) extracts per second. Target: pipeline ≥ 5× ONNX.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { rngFor } from '@dfd/core';
import { ImageBatchLoader, applyDomain, evalView, parseTransformSpec, prepareImage, randomIdentity, randomPose, renderFace } from '@dfd/dataset-df40';

const MIN_SECONDS = Number(process.env.BENCH_MIN_SECONDS ?? 5);
const IMAGES = 48;
const dir = join(tmpdir(), `dfd-df40-bench-${process.pid}`);

async function makeImages() {
  mkdirSync(dir, { recursive: true });
  const paths = [];
  for (let i = 0; i < IMAGES; i++) {
    const face = renderFace(256, randomIdentity(rngFor(1, `id${i}`)), randomPose(rngFor(1, `pose${i}`)));
    applyDomain(face.canvas, 'ff', 1, rngFor(1, `noise${i}`));
    const path = join(dir, `${i}.png`);
    writeFileSync(path, await sharp(face.canvas.toBytes(), { raw: { width: 256, height: 256, channels: 3 } }).png().toBuffer());
    paths.push(path);
  }
  return paths;
}

/** Runs `task` over the images round-robin with `concurrency` in flight for at least MIN_SECONDS. */
async function rate(paths, concurrency, task) {
  for (const p of paths.slice(0, 4)) await task(p); // warm-up
  let done = 0;
  let next = 0;
  const started = performance.now();
  const deadline = started + MIN_SECONDS * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      await task(paths[next++ % paths.length]);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return done / ((performance.now() - started) / 1000);
}

async function loaderRate(paths, concurrency) {
  const loader = new ImageBatchLoader({ size: 224, concurrency, prefetch: 1, logSkips: false });
  const samples = paths.map((path, i) => ({ id: String(i), path, label: i % 2, subset: 'bench', split: 'test', videoId: `bench/${i}` }));
  const source = loader.create(samples, { split: 'test', batchSize: 16, shuffle: false, augment: false, seed: 0, needs: { pixels: true, features: false, extras: [], boxes: true } });
  let images = 0;
  const started = performance.now();
  let epoch = 0;
  while (performance.now() - started < MIN_SECONDS * 1000) {
    for await (const batch of source.batches(epoch++)) {
      images += batch.samples.length;
      batch.dispose();
    }
  }
  return images / ((performance.now() - started) / 1000);
}

function onnxBaseline() {
  const worker = fileURLToPath(new URL('../../encoder-clip/bench/worker.mjs', import.meta.url));
  if (!existsSync(worker)) return { error: 'packages/encoder-clip/bench/worker.mjs not found' };
  try {
    const out = execFileSync(process.execPath, [worker, 'onnx', '8', String(cpus().length)], {
      cwd: fileURLToPath(new URL('../../encoder-clip/bench/', import.meta.url)),
      env: { ...process.env, BENCH_MIN_SECONDS: String(MIN_SECONDS) },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out.trim().split('\n').at(-1));
  } catch (error) {
    return { error: String(error.stderr || error.message).trim().split('\n').slice(-2).join(' | ') };
  }
}

const paths = await makeImages();
try {
  const evalSpec = parseTransformSpec({ size: 224, crop: 'center', normalize: 'clip' });
  const trainSpec = parseTransformSpec({ size: 224, crop: 'random-resized', flip: 0.5, blur: { p: 0.5, sigma: [0.1, 2] }, jpeg: { p: 0.5, quality: [30, 100] }, normalize: 'clip' });
  let k = 0;
  const rows = [];
  for (const concurrency of [1, 2]) {
    rows.push({ what: 'eval: decode + resize 224 + center crop + normalise', concurrency, rate: await rate(paths, concurrency, (p) => evalView(p, evalSpec)) });
  }
  rows.push({ what: 'train: + random-resized-crop, flip, blur p.5, JPEG p.5', concurrency: 2, rate: await rate(paths, 2, (p) => prepareImage(p, trainSpec, rngFor(0, String(k++)))) });
  rows.push({ what: 'BatchLoader eval batches of 16 (tfjs tensors, boxes, prefetch 1)', concurrency: 2, rate: await loaderRate(paths, 2) });
  const onnx = onnxBaseline();
  const base = onnx.error ? undefined : onnx.imagesPerSecond;
  console.log(`\n256×256 PNG faces, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, libuv pool ${process.env.UV_THREADPOOL_SIZE ?? 4}, ${MIN_SECONDS} s per row`);
  console.log('| pipeline | concurrency | images/s | × ONNX CLIP |');
  console.log('|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.what} | ${r.concurrency} | ${r.rate.toFixed(1)} | ${base ? (r.rate / base).toFixed(1) + '×' : '—'} |`);
  if (base) {
    console.log(`| baseline: CLIP ViT-B/16 ONNX image tower (encoder-clip worker, batch 8, ${cpus().length} threads) | — | ${base.toFixed(2)} | 1× |`);
    const worst = Math.min(...rows.slice(0, 2).map((r) => r.rate));
    console.log(`\ntarget (eval pipeline ≥ 5× ONNX at concurrency 1 and 2): ${(worst / base).toFixed(1)}× → ${worst >= 5 * base ? 'met' : 'NOT met'}`);
  } else {
    console.log(`\nONNX baseline not measured: ${onnx.error}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
