// One benchmark measurement in its own process (so peak RSS belongs to it alone):
//   node worker.mjs <onnx|tfjs> <batch> <threads>
// Prints one JSON line: { engine, batch, imagesPerSecond, seconds, images, peakRssMb }.
import { readFileSync, writeFileSync, existsSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBackend, tf } from '@dfd/core';
import { ClipEncoder, ClipTokenizer, OnnxClipImageEncoder, expectedClipTensors, readClipConfig } from '@dfd/encoder-clip';

const [engine, batchArg, threadsArg] = process.argv.slice(2);
const batch = Number(batchArg);
const threads = Number(threadsArg);
const SRC = fileURLToPath(new URL('../../../tools/fixtures/clip/out/bench-vit-b16/', import.meta.url));
const MIN_SECONDS = Number(process.env.BENCH_MIN_SECONDS ?? 6);

/** Deterministic pseudo-random values in [-scale, scale) (weights only need to be finite and varied). */
function randomArray(n, seed, scale = 0.02) {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** The benchmark model folder: config + ONNX graph from the fixtures, weights.bin filled once. */
function modelDir() {
  const dir = join(tmpdir(), 'dfd-clip-bench-vit-b16');
  if (!existsSync(join(dir, 'onnx/weights.bin'))) {
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    for (const f of ['config.json', 'vocab.json', 'merges.txt']) copyFileSync(join(SRC, f), join(dir, f));
    copyFileSync(join(SRC, 'onnx/vision_model.onnx'), join(dir, 'onnx/vision_model.onnx'));
    const manifest = JSON.parse(readFileSync(join(SRC, 'onnx/manifest.json'), 'utf8'));
    const blob = randomArray(manifest.weights_bin_bytes / 4, 7);
    writeFileSync(join(dir, 'onnx/weights.bin'), new Uint8Array(blob.buffer));
  }
  return dir;
}

async function measure(run, pixels, warmUp = run) {
  await warmUp(pixels);
  let images = 0;
  const start = performance.now();
  do {
    await run(pixels);
    images += batch;
  } while ((performance.now() - start) / 1000 < MIN_SECONDS);
  const seconds = (performance.now() - start) / 1000;
  return { images, seconds, imagesPerSecond: images / seconds };
}

const dir = modelDir();
const pixels = randomArray(batch * 3 * 224 * 224, 3, 2);
let result;
if (engine === 'onnx') {
  const onnx = await OnnxClipImageEncoder.create(dir, { threads });
  result = await measure((p) => onnx.embed(p, batch, { patchTokens: true }), pixels);
  result.backend = onnx.engine;
  await onnx.dispose();
} else {
  const selection = await ensureBackend();
  const config = await readClipConfig(dir);
  const tensors = new Map();
  let seed = 11;
  for (const [name, shape] of Object.entries(expectedClipTensors(config))) {
    if (!name.startsWith('vision_model.') && name !== 'visual_projection.weight' && name !== 'logit_scale') continue;
    tensors.set(name, { shape, data: randomArray(shape.reduce((a, b) => a * b, 1), seed++) });
  }
  const clip = new ClipEncoder(config, tensors, ClipTokenizer.fromFolderSync(dir), dir);
  const input = tf.tensor4d(pixels, [batch, 3, 224, 224]);
  const forward = async (x) => {
    const out = clip.encodeImage(x, { patchTokens: true });
    await out.embeds.data();
    await out.patchTokens.data();
    tf.dispose([out.embeds, out.patchTokens]);
  };
  // Warm up on one image: a full batch-32 warm-up on wasm would take minutes and teaches it nothing more.
  const one = input.slice([0, 0, 0, 0], [1, 3, 224, 224]);
  result = await measure(() => forward(input), pixels, () => forward(one));
  one.dispose();
  result.backend = `tfjs-${selection.name}`;
  input.dispose();
  clip.dispose();
}
process.stdout.write(`${JSON.stringify({ engine, batch, threads, ...result, peakRssMb: process.resourceUsage().maxRSS / 1024 })}\n`);
