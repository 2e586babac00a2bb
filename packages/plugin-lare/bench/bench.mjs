// `npm run bench -w @dfd/plugin-lare`: LaRE stage 1, ours (onnxruntime fp32 and int8 UNet) against PyTorch +
// diffusers (fp32 and bf16 autocast) doing the same procedure on the same threads, batch 1 and 4: img/s,
// per-stage times, peak RSS (each configuration in its own process) and each map's error against PyTorch
// fp32 (every engine reads one fixed noise file, so the maps are comparable). SD 1.5's architecture with random weights, made once by bench/setup_sd15.py in a cache folder
// outside the repository (heavy: run under the heavy-job lock). Figures are ratios measured in one run.
//
// Env: LARE_BENCH_CACHE (default ~/.cache/dfd/lare-bench), LARE_BENCH_IMAGES (default 8), LARE_BENCH_BATCHES
// (default "1,4"), LARE_BENCH_THREADS (default 2), LARE_BENCH_ENGINES (default torch-fp32,ours-fp32,ours-int8,ours-int8static; torch-bf16 is emulated and slow on AVX2), LARE_BENCH_PYTHON (default ~/.cache/dfd/venv-torch/bin/python),
// LARE_BENCH_TINY=1 (smoke test on the tiny fixture model at 64 px; needs tools/fixtures/lare-stage1/make_fixtures.py
// run on this machine for its diffusers folder in /tmp).
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { writeSafetensors } from '@dfd/core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '../../..');
const python = process.env.LARE_BENCH_PYTHON ?? join(homedir(), '.cache/dfd/venv-torch/bin/python');
const cache = process.env.LARE_BENCH_CACHE ?? join(homedir(), '.cache/dfd/lare-bench');
const tiny = process.env.LARE_BENCH_TINY === '1';
const count = Number(process.env.LARE_BENCH_IMAGES ?? 8);
const batches = (process.env.LARE_BENCH_BATCHES ?? '1,4').split(',').map(Number);
const threads = process.env.LARE_BENCH_THREADS ?? '2';
const engines = (process.env.LARE_BENCH_ENGINES ?? 'torch-fp32,ours-fp32,ours-int8,ours-int8static').split(',');
// ours-int8static calibrates on these untimed images (the ones after the timed `count`).
const calibrationCount = 4;
const size = tiny ? 64 : 256;
const ensemble = 4;

const fixtureSd = join(repo, 'tools/fixtures/lare-stage1/out/tiny-sd');
let onnxDir = tiny ? fixtureSd : join(cache, 'sd15-random-onnx');
// Tiny MatMuls are ≤ 32×256: quantise from 256 elements so the smoke test runs a real int8 graph.
const int8MinElements = tiny ? '256' : '4096';
const diffusersDir = tiny ? '/tmp/dfd-lare-tiny-diffusers' : join(cache, 'sd15-random');
const fmt = (x, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

if (!existsSync(python)) {
  console.log(`lare bench: skipped (no Python venv at ${python}; see bench/setup_sd15.py for the install line)`);
  process.exit(0);
}
if (!tiny && !existsSync(join(onnxDir, 'dfd-export.json'))) {
  // Heavy (minutes, ~10 GB RAM at peak, ~8 GB disk): run `npm run bench` itself under the heavy-job lock
  // (flock /tmp/dfd-heavy.lock npm run bench); taking the lock here again would deadlock that caller.
  console.log(`lare bench: building SD 1.5 (random weights) and its ONNX export in ${cache} (once; minutes, several GB)`);
  execFileSync(python, [join(here, 'setup_sd15.py'), cache], { stdio: 'inherit' });
}
if (!existsSync(diffusersDir)) {
  console.log(`lare bench: skipped (no diffusers folder ${diffusersDir})`);
  process.exit(0);
}

const imageDir = mkdtempSync(join(tmpdir(), 'lare-bench-'));
mkdirSync(imageDir, { recursive: true });
if (tiny) {
  // The int8 graph is written beside the model: use a copy, not the committed fixture.
  cpSync(fixtureSd, join(imageDir, 'tiny-sd'), { recursive: true });
  onnxDir = join(imageDir, 'tiny-sd');
}
for (let i = 0; i < count + calibrationCount; i++) {
  // Different content per image (noise keyed by content); 320×288 so the resize is real work.
  const raw = Buffer.alloc(320 * 288 * 3);
  for (let j = 0; j < raw.length; j++) raw[j] = (j * 7 + i * 131 + ((j / 960) | 0) * 3) & 255;
  await sharp(raw, { raw: { width: 320, height: 288, channels: 3 } }).png().toFile(join(imageDir, `img${String(i).padStart(3, '0')}.png`));
}

// One fixed noise (image_noise [4,h,w], eps [E,4,h,w]) for every engine: standard normals from a seeded LCG.
const latent = size / 8;
let state = 12345;
const uniform = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
const normals = (n) => Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()));
const noiseFile = join(imageDir, 'noise.safetensors');
await writeSafetensors(noiseFile, {
  image_noise: { shape: [4, latent, latent], data: normals(4 * latent * latent) },
  eps: { shape: [ensemble, 4, latent, latent], data: normals(ensemble * 4 * latent * latent) },
});

if (engines.includes('ours-int8')) {
  // Made once and cached beside the model (unet/dfd-int8.onnx); its build time is reported, not benchmarked.
  // Built in a child: a build here would raise every later child's peak RSS (Linux carries a parent's
  // high-water mark into its children across fork and exec).
  const script = `import { ensureInt8Graph } from ${JSON.stringify(pathToFileURL(join(here, '../dist/index.js')).href)};
const b = await ensureInt8Graph(${JSON.stringify(join(onnxDir, 'unet', 'model.onnx'))}, { minElements: ${Number(int8MinElements)}, log: (m) => console.error('lare bench: ' + m) });
console.log(JSON.stringify({ built: b.built, quantized: b.manifest.report.quantized, seconds: b.manifest.buildSeconds }));`;
  const built = runOne(process.execPath, ['--input-type=module', '-e', script]);
  if (!built) process.exit(1);
  console.log(`lare bench: int8 UNet ${built.built ? 'built' : 'found'}: ${built.quantized} MatMuls int8, ${built.seconds.toFixed(0)} s to build`);
}

if (engines.includes('ours-int8static')) {
  // Calibration and both rewrites, once, in a child (untimed; cached per calibration, which the workers reuse).
  const script = `import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { contentHash, decodeRgbLikePil, ensureStaticInt8Graphs, larePixels } from ${JSON.stringify(pathToFileURL(join(here, '../dist/index.js')).href)};
const dir = ${JSON.stringify(imageDir)};
const paths = readdirSync(dir).filter((n) => n.endsWith('.png')).sort().slice(${count}).map((n) => join(dir, n));
const images = await Promise.all(paths.map(async (p) => { const bytes = readFileSync(p); return { hash: contentHash(bytes), pixels: larePixels(await decodeRgbLikePil(bytes, p), ${size}) }; }));
const settings = { timestep: 200, ensemble: ${ensemble}, size: ${size}, prompt: 'a photo of a face', seed: 0, noiseFile: ${JSON.stringify(noiseFile)} };
const t = performance.now();
const b = await ensureStaticInt8Graphs(${JSON.stringify(onnxDir)}, settings, images, { threads: ${Number(threads)}, minElements: ${Number(int8MinElements)}, log: (m) => console.error('lare bench: ' + m) });
console.log(JSON.stringify({ built: b.built, seconds: (performance.now() - t) / 1000 }));`;
  const built = runOne(process.execPath, ['--input-type=module', '-e', script]);
  if (!built) process.exit(1);
  console.log(`lare bench: static int8 VAE encoder and UNet ${built.built ? 'calibrated and built' : 'found'} on ${calibrationCount} untimed images, ${built.seconds.toFixed(0)} s`);
}

function mapError(file, reference) {
  if (!file || !reference || !existsSync(file) || !existsSync(reference)) return {};
  const a = new Float32Array(new Uint8Array(readFileSync(file)).buffer);
  const b = new Float32Array(new Uint8Array(readFileSync(reference)).buffer);
  if (a.length !== b.length) return {};
  const per = 4 * latent * latent;
  let rel = 0;
  let cos = 1;
  for (let i = 0; i < a.length; i += per) {
    let diff = 0, scale = 0, ab = 0, aa = 0, bb = 0;
    for (let j = i; j < i + per; j++) {
      diff = Math.max(diff, Math.abs(a[j] - b[j]));
      scale = Math.max(scale, Math.abs(b[j]));
      ab += a[j] * b[j]; aa += a[j] * a[j]; bb += b[j] * b[j];
    }
    rel = Math.max(rel, diff / scale);
    cos = Math.min(cos, ab / Math.sqrt(aa * bb));
  }
  return { rel, cos };
}

function runOne(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = r.stdout.trim().split('\n').pop();
  try {
    return JSON.parse(line);
  } catch {
    console.error(`${cmd} failed:\n${r.stderr.slice(-2000)}`);
    return undefined;
  }
}

console.log(`lare bench: ${tiny ? 'tiny fixture model' : 'SD 1.5 architecture, random weights'}, ${size} px, E=${ensemble}, t=200, ${threads} threads, ${count} timed images per run`);
console.log(`load average before: ${load()}`);
const rows = [];
for (const batch of batches) {
  const common = [imageDir, String(batch), String(count), String(size), String(ensemble), threads];
  const maps = (engine) => join(imageDir, `maps-${engine}-b${batch}.f32`);
  const results = {};
  for (const engine of engines) {
    const [kind, mode] = engine.split('-');
    results[engine] = kind === 'torch'
      ? runOne(python, [join(here, 'torch_lare.py'), diffusersDir, ...common, mode, noiseFile, maps(engine)])
      : runOne(process.execPath, [join(here, 'worker.mjs'), onnxDir, ...common, mode, noiseFile, maps(engine), int8MinElements]);
    console.log(`batch ${batch} ${engine}: ${results[engine] ? `${fmt(results[engine].imgPerSec)} img/s` : 'failed'} (load average ${load()})`);
  }
  for (const engine of engines) if (results[engine]) rows.push({ batch, r: results[engine], error: mapError(maps(engine), maps('torch-fp32')), base: results['torch-fp32'] });
}
console.log('\n| batch | engine | img/s | × PyTorch fp32 | VAE s/img | UNet s/img | peak RSS GiB | map max rel. error vs PyTorch fp32 | min cosine |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const { batch, r, error, base } of rows) {
  const ratio = base ? `${fmt(r.imgPerSec / base.imgPerSec, 2)}×` : '';
  console.log(`| ${batch} | ${r.engine} | ${fmt(r.imgPerSec)} | ${ratio} | ${fmt(r.vaeSecPerImage)} | ${fmt(r.unetSecPerImage)} | ${fmt(r.peakRssGiB, 2)} | ${error.rel === undefined ? '-' : error.rel.toExponential(1)} | ${error.cos === undefined ? '-' : error.cos.toFixed(5)} |`);
}
if (process.env.LARE_BENCH_VAE_INT8 !== '0') {
  // The VAE encoder alone, fp32 against our int8 rewrite (bench/vae-int8.mjs): int8 VAE only if this gains.
  const vae = runOne(process.execPath, [join(here, 'vae-int8.mjs'), onnxDir, String(size), threads]);
  if (vae) console.log(`\nVAE encoder alone, batch 1, ${vae.matmulsInt8} MatMuls int8: fp32 ${fmt(vae.fp32Ms, 0)} ms, int8 ${fmt(vae.int8Ms, 0)} ms (${fmt(vae.speedup, 2)}×), latent mean rel. error ${vae.latentMeanRelError.toExponential(1)}, load ${vae.loadAverage}`);
}
console.log(`\nload average after: ${load()} (figures are provisional on a shared machine; compare the ratios)`);
rmSync(imageDir, { recursive: true, force: true });
