// npm run bench -w @dfd/encoder-clip
// The frozen CLIP image tower at each precision against PyTorch's best CPU modes, in one run, same threads:
// ViT-B/16 and ViT-L/14 vision towers (patch tokens on) at batch 1, 8, 32 — ours fp32 / int8 (dynamic and static) / bf16
// (onnxruntime-node, graphs built by our TypeScript writer from the HF folder) vs transformers'
// CLIPVisionModelWithProjection in fp32 and bf16 autocast, on the same weights. Each measurement is its own
// process (peak RSS is its own). The embedding cosine to PyTorch fp32 is measured on a batch of real images
// (the fixture photos, plus flipped copies). Targets (issue 15): ours int8 >= 3x ours fp32 and >= 1.2x
// PyTorch bf16 at ViT-B/16 batch 8 with cosine >= 0.999; ViT-L/14 peak RSS <= 2 GiB.
//
// Knobs: BENCH_MODELS (B16,L14), BENCH_BATCHES (1,8,32), BENCH_ENGINES, BENCH_THREADS, BENCH_MIN_SECONDS,
// BENCH_MODEL_B16 / BENCH_MODEL_L14 (a real HF CLIP folder instead of random weights), DFD_CLIP_PYTHON.
// The older engine comparison (tfjs vs onnxruntime vs torchvision) is bench-engines.mjs.
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync, readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { clipPreprocessBatch } from '@dfd/encoder-clip';
import { makeModel } from './make-model.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const fixtures = fileURLToPath(new URL('../../../tools/fixtures/clip/out/preprocess/', import.meta.url));
const threads = Number(process.env.BENCH_THREADS ?? cpus().length);
const minSeconds = process.env.BENCH_MIN_SECONDS ?? '6';
const models = (process.env.BENCH_MODELS ?? 'B16,L14').split(',');
const batches = (process.env.BENCH_BATCHES ?? '1,8,32').split(',').map(Number);
const engines = (process.env.BENCH_ENGINES ?? 'ours-fp32,ours-int8,ours-int8static,ours-bf16,pytorch-fp32,pytorch-bf16').split(',');
const python = process.env.DFD_CLIP_PYTHON ?? ['/root/.cache/dfd/venv-clip/bin/python', '/root/.cache/dfd/venv-torch/bin/python'].find(existsSync);
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
const loadAtStart = load();

const calibrationPixels = join(tmpdir(), 'dfd-bench-calibration-pixels.f32');

function run(command, args) {
  try {
    const out = execFileSync(command, args, { cwd: here, env: { ...process.env, BENCH_MIN_SECONDS: minSeconds, BENCH_CALIBRATION: calibrationPixels }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
    return JSON.parse(out.trim().split('\n').at(-1));
  } catch (error) {
    const lines = String(error.stderr || error.message).trim().split('\n');
    return { error: (lines.find((l) => /Error/.test(l)) ?? lines.at(-1) ?? 'failed').trim().slice(0, 160) };
  }
}

const photos = ['landscape.jpg', 'portrait.png', 'rgba.png', 'small-gray.png', 'square.jpg'].map((f) => join(fixtures, f));

/** 10 real images at 224 px (the fixture photos and their mirror images), CLIP-normalised NCHW. */
async function cosineBatch(path) {
  const flipped = await Promise.all(photos.map((f) => sharp(f).flop().png().toBuffer()));
  const pixels = await clipPreprocessBatch([...photos, ...flipped], { size: 224 });
  writeFileSync(path, new Uint8Array(pixels.buffer));
  return photos.length * 2;
}

/** Static int8's calibration set: the five photos upside down (not the images the cosine is measured on). */
async function calibrationBatch(path) {
  const flipped = await Promise.all(photos.map((f) => sharp(f).flip().png().toBuffer()));
  const pixels = await clipPreprocessBatch(flipped, { size: 224 });
  writeFileSync(path, new Uint8Array(pixels.buffer));
}

function cosines(a, b, dim) {
  const out = [];
  for (let r = 0; r < a.length / dim; r++) {
    let dot = 0, na = 0, nb = 0;
    for (let i = r * dim; i < (r + 1) * dim; i++) { dot += a[i] * b[i]; na += a[i] ** 2; nb += b[i] ** 2; }
    out.push(dot / Math.sqrt(na * nb));
  }
  return { min: Math.min(...out), mean: out.reduce((x, y) => x + y, 0) / out.length };
}
const readF32 = (path) => (existsSync(path) ? new Float32Array(readFileSync(path).buffer.slice(0)) : undefined);

const cosPixels = join(tmpdir(), 'dfd-bench-cos-pixels.f32');
const cosImages = await cosineBatch(cosPixels);
await calibrationBatch(calibrationPixels);
const results = [];
const builds = [];
for (const arch of models) {
  const dir = process.env[`BENCH_MODEL_${arch}`] ?? (await makeModel(arch, join(tmpdir(), `dfd-bench-clip-${arch}`)));
  // Each graph is built (or found) in a child of its own, before the measured ones: a build in this process
  // would raise every later child's peak RSS (Linux carries the parent's high-water mark into the child).
  for (const precision of ['fp32', 'int8', 'int8static']) {
    const r = run(process.execPath, ['frozen-worker.mjs', dir, precision, 'build', String(threads)]);
    builds.push({ arch, precision, seconds: r.error ? undefined : r.seconds, path: r.path ?? r.error });
  }
  for (const batch of batches) {
    for (const engine of engines) {
      const [kind, precision] = engine.split('-');
      const cosOut = join(tmpdir(), `dfd-bench-cos-${arch}-${engine}.f32`);
      const withCos = batch === 8 ? [cosPixels, cosOut] : [];
      let r;
      if (kind === 'pytorch') {
        r = python ? run(python, ['torch_clip.py', dir, precision, String(batch), String(threads), minSeconds, ...withCos]) : { error: 'no Python with torch (set DFD_CLIP_PYTHON)' };
      } else {
        r = run(process.execPath, ['frozen-worker.mjs', dir, precision, String(batch), String(threads), ...withCos]);
      }
      r = { arch, engine, batch, ...r };
      results.push(r);
      console.error(r.error ? `${arch} ${engine} b${batch}: ${r.error}` : `${arch} ${engine} b${batch}: ${r.imagesPerSecond.toFixed(2)} img/s, peak RSS ${r.peakRssMb.toFixed(0)} MB (load ${load()})`);
    }
  }
  const dim = { B16: 512, L14: 768 }[arch] ?? 0;
  const torchRef = readF32(join(tmpdir(), `dfd-bench-cos-${arch}-pytorch-fp32.f32`));
  const oursRef = readF32(join(tmpdir(), `dfd-bench-cos-${arch}-ours-fp32.f32`));
  for (const r of results.filter((x) => x.arch === arch && x.batch === 8 && !x.error)) {
    const mine = readF32(join(tmpdir(), `dfd-bench-cos-${arch}-${r.engine}.f32`));
    if (mine && torchRef && dim) r.cosTorch = cosines(mine, torchRef, dim);
    if (mine && oursRef && dim) r.cosOurs = cosines(mine, oursRef, dim);
  }
}

const rate = (arch, engine, batch) => results.find((r) => r.arch === arch && r.engine === engine && r.batch === batch && !r.error)?.imagesPerSecond;
console.log(`\nload average: ${loadAtStart} at the start, ${load()} at the end (other jobs share this machine: figures are provisional)`);
console.log(`CLIP vision towers, 224 px, patch tokens on, ${threads} threads, ${cpus()[0]?.model ?? 'cpu'}; cosine on ${cosImages} real images (batch-8 runs)`);
for (const b of builds) console.log(`graph ${b.arch} ${b.precision}: ${b.seconds === undefined ? `not built: ${b.path}` : `${b.seconds.toFixed(1)} s to open (a build, when the first: TypeScript writer, once per model), ${b.path}`}`);
console.log('| model | engine | batch | img/s | peak RSS MB | × ours fp32 | × PyTorch bf16 | cosine to PyTorch fp32 (min / mean) |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of results) {
  if (r.error) {
    console.log(`| ${r.arch} | ${r.engine} | ${r.batch} | not run: ${r.error} | | | | |`);
    continue;
  }
  const f = rate(r.arch, 'ours-fp32', r.batch);
  const bf = rate(r.arch, 'pytorch-bf16', r.batch);
  const cos = r.cosTorch ? `${r.cosTorch.min.toFixed(5)} / ${r.cosTorch.mean.toFixed(5)}` : r.cosOurs ? `(to ours fp32) ${r.cosOurs.min.toFixed(5)}` : '';
  console.log(`| ${r.arch} | ${r.engine} | ${r.batch} | ${r.imagesPerSecond.toFixed(2)} | ${r.peakRssMb.toFixed(0)} | ${f ? (r.imagesPerSecond / f).toFixed(2) + '×' : '—'} | ${bf ? (r.imagesPerSecond / bf).toFixed(2) + '×' : '—'} | ${cos} |`);
}
const i8 = rate('B16', 'ours-int8', 8);
const f32 = rate('B16', 'ours-fp32', 8);
const tbf = rate('B16', 'pytorch-bf16', 8);
const cosI8 = results.find((r) => r.arch === 'B16' && r.engine === 'ours-int8' && r.batch === 8)?.cosTorch?.min;
if (i8 && f32) console.log(`\ntarget int8 >= 3× ours fp32 (B/16, batch 8): ${(i8 / f32).toFixed(2)}× → ${i8 / f32 >= 3 ? 'met' : 'NOT met'}`);
if (i8 && tbf) console.log(`target int8 >= 1.2× PyTorch bf16 autocast (B/16, batch 8): ${(i8 / tbf).toFixed(2)}× → ${i8 / tbf >= 1.2 ? 'met' : 'NOT met'}`);
if (cosI8 !== undefined) console.log(`target cosine >= 0.999 (B/16 int8, min over images): ${cosI8.toFixed(5)} → ${cosI8 >= 0.999 ? 'met' : 'NOT met'}`);
if (i8) console.log(`moonshot >= 25 img/s (B/16 int8, batch 8): ${i8.toFixed(2)} → ${i8 >= 25 ? 'met' : 'not met'}`);
const i8s = rate('B16', 'ours-int8static', 8);
if (i8s && i8) console.log(`static int8 (calibrated on 5 upside-down photos) vs dynamic int8 (B/16, batch 8): ${(i8s / i8).toFixed(2)}×`);
const l14 = results.filter((r) => r.arch === 'L14' && r.engine.startsWith('ours') && !r.error);
if (l14.length) {
  const peak = Math.max(...l14.map((r) => r.peakRssMb));
  console.log(`target ViT-L/14 peak RSS <= 2 GiB (ours, all batches and precisions): ${peak.toFixed(0)} MB → ${peak <= 2048 ? 'met' : 'NOT met'}`);
}
