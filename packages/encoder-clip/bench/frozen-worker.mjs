// One measurement of our onnxruntime vision tower in its own process (its peak RSS is its own):
//   node frozen-worker.mjs <model dir> <fp32|int8|int8static|bf16> <batch> <threads> [cosine pixels .f32] [out .f32]
// Prints one JSON line; with a cosine batch, writes its image_embeds to <out>. `int8static` calibrates on
// the images in $BENCH_CALIBRATION (a .f32 of preprocessed pixels; the graph is cached per set).
// With <batch> = build it only builds (or finds) the graph and prints how long that took: the benchmark's
// own process must stay small, since a child's peak RSS starts from its parent's (Linux keeps the
// high-water mark across fork and exec).
import { readFileSync, writeFileSync } from 'node:fs';
import { calibrationSet, OnnxClipImageEncoder } from '@dfd/encoder-clip';

const [dir, precision, batchArg, threadsArg, cosIn, cosOut] = process.argv.slice(2);
const batch = Number(batchArg);
const threads = Number(threadsArg);
const MIN_SECONDS = Number(process.env.BENCH_MIN_SECONDS ?? 6);

let onnx;
const buildStarted = performance.now();
try {
  if (precision === 'int8static') {
    const pixels = new Float32Array(readFileSync(process.env.BENCH_CALIBRATION).buffer.slice(0));
    const calibration = calibrationSet(pixels, pixels.length / (3 * 224 * 224));
    onnx = await OnnxClipImageEncoder.create(dir, { threads, precision: 'int8', calibration });
  } else {
    onnx = await OnnxClipImageEncoder.create(dir, { threads, precision });
  }
} catch (error) {
  process.stdout.write(`${JSON.stringify({ error: error.message.split('\n')[0] })}\n`);
  process.exit(0);
}
if (batchArg === 'build') {
  await onnx.dispose();
  process.stdout.write(`${JSON.stringify({ seconds: (performance.now() - buildStarted) / 1000, path: onnx.path })}\n`);
  process.exit(0);
}
const size = onnx.info.imageSize;
const pixels = new Float32Array(batch * 3 * size * size);
for (let i = 0; i < pixels.length; i++) pixels[i] = Math.sin(i * 0.37) * 1.5;
const run = () => onnx.embed(pixels, batch, { patchTokens: true });
await run();
let images = 0;
const start = performance.now();
do {
  await run();
  images += batch;
} while ((performance.now() - start) / 1000 < MIN_SECONDS);
const seconds = (performance.now() - start) / 1000;
if (cosIn) {
  const cos = new Float32Array(readFileSync(cosIn).buffer.slice(0));
  const { embeds } = await onnx.embed(cos, cos.length / (3 * size * size));
  writeFileSync(cosOut, new Uint8Array(embeds.buffer, embeds.byteOffset, embeds.byteLength));
}
await onnx.dispose();
process.stdout.write(`${JSON.stringify({ engine: `ours-${precision}`, batch, threads, images, seconds, imagesPerSecond: images / seconds, backend: onnx.engine, peakRssMb: process.resourceUsage().maxRSS / 1024 })}\n`);
