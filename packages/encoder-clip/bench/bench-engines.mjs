// npm run bench:engines -w @dfd/encoder-clip
// Images/s and peak RSS of a ViT-B/16-shaped CLIP vision tower (random weights, 224 px, patch tokens on)
// at batch 1, 8, 32: the tfjs backend in use and onnxruntime (CPU), and, when the fixture venv with torch
// exists, PyTorch's torchvision vit_b_16 with the same thread count, measured in this same run.
// Each measurement runs in its own process so its peak RSS is its own. Target: ONNX at batch 8 >= PyTorch.
// On a shared machine other processes steal cores unevenly, so onnxruntime and PyTorch are measured in
// BENCH_ROUNDS interleaved rounds (default 3) and the best round of each is compared (tfjs: one round).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const threads = Number(process.env.BENCH_THREADS ?? cpus().length);
const minSeconds = process.env.BENCH_MIN_SECONDS ?? '6';
const batches = (process.env.BENCH_BATCHES ?? '1,8,32').split(',').map(Number);
const engines = (process.env.BENCH_ENGINES ?? 'onnx,tfjs,pytorch').split(',');
const python = process.env.DFD_CLIP_PYTHON ?? '/root/.cache/dfd/venv-clip/bin/python';
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

function run(command, args) {
  try {
    const out = execFileSync(command, args, { cwd: here, env: { ...process.env, BENCH_MIN_SECONDS: minSeconds }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out.trim().split('\n').at(-1));
  } catch (error) {
    const lines = String(error.stderr || error.message).trim().split('\n');
    return { error: (lines.find((l) => /Error/.test(l)) ?? lines.at(-1) ?? 'failed').trim() };
  }
}

function measureOnce(engine, batch) {
    let result;
    if (engine === 'pytorch') {
      if (!existsSync(python)) {
        result = { error: `no Python with torch at ${python} (set DFD_CLIP_PYTHON)` };
      } else {
        result = run(python, ['torch_vit.py', String(batch), String(threads), minSeconds]);
      }
    } else {
      result = run(process.execPath, ['worker.mjs', engine, String(batch), String(threads)]);
    }
    const r = { engine, batch, ...result };
    console.error(r.error ? `${engine} b${batch}: ${r.error}` : `${engine} b${batch}: ${r.imagesPerSecond.toFixed(2)} img/s, peak RSS ${r.peakRssMb.toFixed(0)} MB (${r.backend})`);
    return r;
}

const results = [];
for (const batch of batches) {
  const rounds_ = new Map(engines.map((e) => [e, []]));
  for (let round = 0; round < rounds; round++) {
    for (const engine of engines) {
      if (engine === 'tfjs' && round > 0) continue;
      const r = measureOnce(engine, batch);
      rounds_.get(engine).push(r);
      if (r.error) rounds_.set(engine, [r]);
    }
  }
  for (const engine of engines) {
    const all = rounds_.get(engine);
    const ok = all.filter((r) => !r.error);
    if (!ok.length) {
      results.push(all[0]);
      continue;
    }
    const best = ok.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a));
    results.push({ ...best, rounds: ok.map((r) => r.imagesPerSecond.toFixed(2)).join(' / ') });
  }
}

const rate = (engine, batch) => results.find((r) => r.engine === engine && r.batch === batch && !r.error)?.imagesPerSecond;
console.log(`\nload average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log(`ViT-B/16 vision tower, 224 px, random weights, ${threads} threads, ${cpus()[0]?.model ?? 'cpu'}`);
console.log('| engine | backend | batch | images/s (best) | rounds | peak RSS MB | vs PyTorch |');
console.log('|---|---|---|---|---|---|---|');
for (const r of results) {
  if (r.error) {
    console.log(`| ${r.engine} | — | ${r.batch} | not run: ${r.error} | | | |`);
    continue;
  }
  const torch = rate('pytorch', r.batch);
  console.log(`| ${r.engine} | ${r.backend} | ${r.batch} | ${r.imagesPerSecond.toFixed(2)} | ${r.rounds} | ${r.peakRssMb.toFixed(0)} | ${torch ? (r.imagesPerSecond / torch).toFixed(2) + '×' : '—'} |`);
}
const onnx8 = rate('onnx', 8);
const torch8 = rate('pytorch', 8);
if (onnx8 && torch8) {
  console.log(`\ntarget (ONNX batch 8 >= PyTorch batch 8): ${onnx8.toFixed(2)} vs ${torch8.toFixed(2)} img/s → ${onnx8 >= torch8 ? 'met' : 'NOT met'}`);
}
