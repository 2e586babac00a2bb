// npm run bench -w examples   (the root `npm run bench` builds first; alone: npm run build)
//
// The training-relevant steps on tfjs' wasm and tensorflow backends and on PyTorch, in one run:
//   CoOp step (2 prompts, n_ctx 16, EOT truncation on) with ViT-B/16- and ViT-L/14-shaped text towers,
//   CoCoOp step at batch 8 (ViT-B/16 text tower), ViT-B/16 image tower forward at batch 8 (224 px).
// Random weights; each measurement in its own process (the backend is per process), median of
// BENCH_REPEATS (default 3) after a warm-up. tensorflow and PyTorch get BENCH_THREADS threads (default:
// all cores); wasm is single-threaded. Targets: tensorflow >= 8x wasm on the CoOp step, and within 2x of
// PyTorch. Figures from a machine shared with other jobs are provisional: the load average is printed.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const REPEATS = process.env.BENCH_REPEATS ?? '3';
const THREADS = process.env.BENCH_THREADS ?? String(availableParallelism());
const TASKS = (process.env.BENCH_TASKS ?? 'coop-b16,coop-l14,cocoop-b8,vit-b16-b8').split(',');
const ENGINES = (process.env.BENCH_ENGINES ?? 'wasm,tensorflow,pytorch').split(',');
const PYTHON = process.env.DFD_TORCH_PYTHON ?? `${process.env.HOME}/.cache/dfd/venv-torch/bin/python`;
const LABELS = {
  'coop-b16': 'CoOp step, B/16 text tower',
  'coop-l14': 'CoOp step, L/14 text tower',
  'cocoop-b8': 'CoCoOp step, batch 8, B/16',
  'vit-b16-b8': 'ViT-B/16 image forward, batch 8',
};

function run(command, args, env) {
  try {
    const out = execFileSync(command, args, { cwd: here, env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out.trim().split('\n').at(-1));
  } catch (error) {
    const lines = String(error.stderr || error.message).trim().split('\n');
    return { error: (lines.find((l) => /Error/.test(l)) ?? lines.at(-1) ?? 'failed').trim().slice(0, 160) };
  }
}

function measure(engine, task, tokens) {
  if (engine === 'pytorch') {
    if (!existsSync(PYTHON)) return { error: `no Python with torch at ${PYTHON} (set DFD_TORCH_PYTHON)` };
    return run(PYTHON, ['torch_steps.py', task, REPEATS, String(tokens ?? 77), THREADS], {});
  }
  return run(process.execPath, ['backend-worker.mjs', task, REPEATS], {
    DFD_BACKEND: engine,
    TF_NUM_INTRAOP_THREADS: THREADS,
    TF_CPP_MIN_LOG_LEVEL: '2',
  });
}

const results = {};
for (const task of TASKS) {
  results[task] = {};
  for (const engine of ENGINES) {
    // PyTorch uses the sequence length the tfjs side used (the text pass stopped at the longest EOT).
    const tokens = Object.values(results[task]).find((r) => r.tokens)?.tokens;
    const r = measure(engine, task, tokens);
    results[task][engine] = r;
    console.error(r.error ? `${task} ${engine}: ${r.error}` : `${task} ${engine}: ${r.ms.toFixed(0)} ms`);
  }
}

const ms = (task, engine) => results[task]?.[engine]?.ms;
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(1)}×` : '—');
console.log(`\nload average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}; ${cpus()[0]?.model ?? 'cpu'}, ${THREADS} threads (wasm: 1)`);
console.log(`median of ${REPEATS} after a warm-up, random weights`);
console.log('| step | wasm ms | tensorflow ms | PyTorch ms | wasm / tensorflow | tensorflow / PyTorch |');
console.log('|---|---|---|---|---|---|');
for (const task of TASKS) {
  const cell = (engine) => (ms(task, engine) ? ms(task, engine).toFixed(0) : `not run (${results[task][engine]?.error ?? 'skipped'})`);
  console.log(`| ${LABELS[task]} | ${cell('wasm')} | ${cell('tensorflow')} | ${cell('pytorch')} | ${ratio(ms(task, 'wasm'), ms(task, 'tensorflow'))} | ${ratio(ms(task, 'tensorflow'), ms(task, 'pytorch'))} |`);
}
for (const task of ['coop-b16', 'coop-l14'].filter((t) => TASKS.includes(t))) {
  const speedup = ms(task, 'wasm') / ms(task, 'tensorflow');
  const vsTorch = ms(task, 'tensorflow') / ms(task, 'pytorch');
  if (Number.isFinite(speedup)) console.log(`target ${LABELS[task]}: tensorflow >= 8× wasm: ${speedup.toFixed(1)}× → ${speedup >= 8 ? 'met' : 'NOT met'}`);
  if (Number.isFinite(vsTorch)) console.log(`target ${LABELS[task]}: tensorflow within 2× of PyTorch: ${vsTorch.toFixed(2)}× → ${vsTorch <= 2 ? 'met' : 'NOT met'}`);
}
