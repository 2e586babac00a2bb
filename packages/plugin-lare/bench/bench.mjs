// `npm run bench -w @dfd/plugin-lare`: LaRE stage 1, ours (onnxruntime) against PyTorch + diffusers doing the
// same procedure on the same threads, batch 1 and 4, per-stage times and peak RSS, each configuration in its
// own process. SD 1.5's architecture with random weights, made once by bench/setup_sd15.py in a cache folder
// outside the repository (heavy: run under the heavy-job lock). Figures are ratios measured in one run.
//
// Env: LARE_BENCH_CACHE (default ~/.cache/dfd/lare-bench), LARE_BENCH_IMAGES (default 8), LARE_BENCH_BATCHES
// (default "1,4"), LARE_BENCH_THREADS (default 2), LARE_BENCH_PYTHON (default ~/.cache/dfd/venv-torch/bin/python),
// LARE_BENCH_TINY=1 (smoke test on the tiny fixture model at 64 px; needs tools/fixtures/lare-stage1/make_fixtures.py
// run on this machine for its diffusers folder in /tmp).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '../../..');
const python = process.env.LARE_BENCH_PYTHON ?? join(homedir(), '.cache/dfd/venv-torch/bin/python');
const cache = process.env.LARE_BENCH_CACHE ?? join(homedir(), '.cache/dfd/lare-bench');
const tiny = process.env.LARE_BENCH_TINY === '1';
const count = Number(process.env.LARE_BENCH_IMAGES ?? 8);
const batches = (process.env.LARE_BENCH_BATCHES ?? '1,4').split(',').map(Number);
const threads = process.env.LARE_BENCH_THREADS ?? '2';
const size = tiny ? 64 : 256;
const ensemble = 4;

const onnxDir = tiny ? join(repo, 'tools/fixtures/lare-stage1/out/tiny-sd') : join(cache, 'sd15-random-onnx');
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
for (let i = 0; i < count + Math.max(...batches); i++) {
  // Different content per image (noise keyed by content); 320×288 so the resize is real work.
  const raw = Buffer.alloc(320 * 288 * 3);
  for (let j = 0; j < raw.length; j++) raw[j] = (j * 7 + i * 131 + ((j / 960) | 0) * 3) & 255;
  await sharp(raw, { raw: { width: 320, height: 288, channels: 3 } }).png().toFile(join(imageDir, `img${String(i).padStart(3, '0')}.png`));
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
  const ours = runOne(process.execPath, [join(here, 'worker.mjs'), onnxDir, ...common]);
  const torch = runOne(python, [join(here, 'torch_lare.py'), diffusersDir, ...common]);
  rows.push({ batch, ours, torch });
  console.log(`batch ${batch}: done (load average ${load()})`);
}
console.log('\n| batch | engine | img/s | VAE s/img | UNet s/img | peak RSS GiB | img/s vs PyTorch |');
console.log('|---|---|---|---|---|---|---|');
for (const { batch, ours, torch } of rows) {
  for (const r of [torch, ours]) {
    if (!r) continue;
    const ratio = r === ours && torch ? `${fmt(ours.imgPerSec / torch.imgPerSec, 2)}×` : '';
    console.log(`| ${batch} | ${r.engine} | ${fmt(r.imgPerSec)} | ${fmt(r.vaeSecPerImage)} | ${fmt(r.unetSecPerImage)} | ${fmt(r.peakRssGiB, 2)} | ${ratio} |`);
  }
}
console.log(`\nload average after: ${load()} (figures are provisional on a shared machine; compare the ratios)`);
rmSync(imageDir, { recursive: true, force: true });
