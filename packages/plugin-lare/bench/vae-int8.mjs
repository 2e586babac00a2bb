// Is an int8 VAE encoder worth it? (`node bench/vae-int8.mjs [ONNX_DIR] [SIZE] [THREADS]`, under the heavy-job
// lock.) Times the VAE encoder alone, fp32 against our MatMul-only int8 rewrite, alternating runs in one
// process. The VAE encoder is almost all convolutions (only the mid-block attention has MatMuls), and int8
// convolutions (ConvInteger) are slower than fp32 on these CPUs, so dfd lare extract --precision int8 keeps
// the VAE in fp32 unless this shows a gain.
import { homedir, loadavg } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { createLareSession, ensureInt8Graph } from '../dist/index.js';

const dir = process.argv[2] ?? join(homedir(), '.cache/dfd/lare-bench/sd15-random-onnx');
const size = Number(process.argv[3] ?? 256);
const threads = Number(process.argv[4] ?? 2);
const path = join(dir, 'vae_encoder', 'model.onnx');
const built = await ensureInt8Graph(path, size < 256 ? { minElements: 256 } : {});
const sessions = { fp32: await createLareSession(path, { threads }), int8: await createLareSession(built.path, { threads }) };
const pixels = Float32Array.from({ length: 3 * size * size }, (_, i) => Math.sin(i * 0.37));
const times = { fp32: [], int8: [] };
const out = {};
for (let round = 0; round < 4; round++) {
  for (const name of ['fp32', 'int8']) {
    const t = performance.now();
    const result = await sessions[name].run({ sample: new ort.Tensor('float32', pixels, [1, 3, size, size]) });
    if (round > 0) times[name].push(performance.now() - t); // round 0: warm-up
    out[name] = result.latent_mean.data;
  }
}
let diff = 0, scale = 0;
for (let i = 0; i < out.fp32.length; i++) {
  diff = Math.max(diff, Math.abs(out.fp32[i] - out.int8[i]));
  scale = Math.max(scale, Math.abs(out.fp32[i]));
}
const median = (a) => a.sort((x, y) => x - y)[a.length >> 1];
console.log(JSON.stringify({
  size, threads, matmulsInt8: built.manifest.report.quantized,
  fp32Ms: median(times.fp32), int8Ms: median(times.int8), speedup: median(times.fp32) / median(times.int8),
  latentMeanRelError: diff / scale, loadAverage: loadavg().map((l) => l.toFixed(2)).join(' '),
}));
