// npm run bench -w @dfd/plugin-fusion   (the root `npm run bench` builds first)
//
// One training step of CoOp + lare-egre + attention fuser on cached ViT-B/16-sized patch tokens (batch 16 by
// default), @dfd on each available tfjs backend against PyTorch doing the same modules, in the same run.
// Backends: DFD_BACKEND (one), else every one of `tensorflow`, `wasm` that initialises (one process each).
// Env: BENCH_BATCH (16), BENCH_REPEATS (3), BENCH_THREADS (PyTorch threads; default: all cores),
// DFD_TORCH_PYTHON (default /root/.cache/dfd/venv-torch/bin/python). Prints the load average: the figures
// are only comparable on a quiet machine.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const batch = process.env.BENCH_BATCH ?? '16';
const repeats = process.env.BENCH_REPEATS ?? '3';
const threads = process.env.BENCH_THREADS ?? String(cpus().length);
const python = process.env.DFD_TORCH_PYTHON ?? '/root/.cache/dfd/venv-torch/bin/python';
const backends = process.env.DFD_BACKEND ? [process.env.DFD_BACKEND] : ['tensorflow', 'wasm'];

function run(command, args, env = {}) {
  const res = spawnSync(command, args, { cwd: here, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = res.stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  if (res.status !== 0 || !line) {
    const lines = (res.stderr || res.stdout).trim().split('\n');
    return { error: lines.find((l) => /Error/.test(l))?.trim() ?? lines.at(-1) };
  }
  return JSON.parse(line);
}

console.log(`training step: CoOp (16 ctx, ViT-B/16 text tower) + lare-egre + attention fuser, cached ViT-B/16 patch tokens, batch ${batch}, median of ${repeats}`);
console.log(`load average at start: ${loadavg().map((l) => l.toFixed(1)).join(' ')} (${cpus().length} cores)`);
const ours = [];
let textLength;
for (const backend of backends) {
  const result = run(process.execPath, ['step.mjs', batch, repeats], { DFD_BACKEND: backend });
  if (result.error) {
    console.log(`tfjs-${backend}: not available (${result.error})`);
    continue;
  }
  if (result.tensorsGrowth !== 0) console.log(`  warning: tfjs-${backend} leaked ${result.tensorsGrowth} tensors per ${repeats} steps`);
  textLength = result.textLength;
  ours.push(result);
}
let torch = { error: `no Python with torch at ${python} (set DFD_TORCH_PYTHON)` };
if (existsSync(python) && textLength) torch = run(python, ['torch_step.py', batch, repeats, threads, String(textLength)]);
console.log('\nengine              step (ms)   vs PyTorch');
for (const r of ours) {
  const ratio = torch.ms ? `${(r.ms / torch.ms).toFixed(2)}x` : '-';
  console.log(`${r.engine.padEnd(18)} ${r.ms.toFixed(0).padStart(10)}   ${ratio.padStart(9)}`);
}
if (torch.ms) console.log(`${`pytorch ${torch.torch} (${threads} thr)`.padEnd(18)} ${torch.ms.toFixed(0).padStart(10)}`);
else console.log(`pytorch: ${torch.error}`);
console.log(`\nload average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
