/**
 * Static int8 of an existing ONNX model (the rewrite the Stable Diffusion graphs get): a small Conv → Relu →
 * Conv → MatMul graph written with our builder, its range probes run by onnxruntime, the QDQ rewrite
 * checked node by node and run against fp32.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import {
  foldProbeRanges,
  GraphQuantizeError,
  OnnxGraphBuilder,
  quantizeOnnxStatic,
  rangeProbeOutputs,
  writeRangeProbeModel,
  type ActivationRange,
} from '@dfd/encoder-clip';

const C = 8;
const S = 12;
const N = 24;
let dir: string;
let model: string;

/** Deterministic values in [−1, 1). */
const wave = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k + 0.3) * 0.9);

async function run(path: string, x: Float32Array, optimizedModelFilePath?: string): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(path, { executionProviders: ['cpu'], graphOptimizationLevel: 'all', ...(optimizedModelFilePath ? { optimizedModelFilePath } : {}) });
  try {
    return await session.run({ x: new ort.Tensor('float32', x, [2, C, S, S]) });
  } finally {
    await session.release();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dfd-static-qdq-'));
  model = join(dir, 'model.onnx');
  const g = await OnnxGraphBuilder.create(model);
  g.useOpset('', 17);
  const x = g.input('x', 1, [2, C, S, S]);
  const w1 = await g.weight('conv1.weight', [C, C, 3, 3], wave(C * C * 9, 0.7));
  const b1 = await g.weight('conv1.bias', [C], wave(C, 1.3));
  const h = g.op('Relu', [g.op('Conv', [x, w1, b1], { pads: [1, 1, 1, 1] })]);
  const w2 = await g.weight('conv2.weight', [C, C, 3, 3], wave(C * C * 9, 0.41));
  const y = g.op('Conv', [h, w2], { pads: [1, 1, 1, 1] });
  const flat = g.op('Reshape', [y, g.int64s('shape', [2 * C * S, S])]);
  const m = await g.weight('proj.weight', [S, N], wave(S * N, 0.23));
  g.op('MatMul', [flat, m], undefined, undefined, 'out');
  g.output('out', 1, [2 * C * S, N]);
  await g.finish({}, 'static_qdq_test');
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('static int8 rewrite of an existing ONNX model (QDQ)', () => {
  const input = wave(2 * C * S * S, 0.013);

  async function calibrate(): Promise<Map<string, ActivationRange>> {
    const probe = join(dir, 'probe.onnx');
    const tensors = await writeRangeProbeModel(model, probe, { minElements: 16 });
    const ranges = new Map<string, ActivationRange>();
    const outputs = await run(probe, input);
    foldProbeRanges(ranges, outputs);
    expect([...ranges.keys()].sort()).toEqual([...tensors].sort());
    return ranges;
  }

  it('probes the inputs of every Conv and MatMul and the Conv outputs, with their true extremes', async () => {
    const ranges = await calibrate();
    // x, conv1's output, relu's output (conv2's input), conv2's output, the reshaped MatMul input.
    expect(ranges.size).toBe(5);
    let min = Infinity;
    let max = -Infinity;
    for (const v of input) (min = Math.min(min, v)), (max = Math.max(max, v));
    expect(ranges.get('x')).toEqual({ min: Math.fround(min), max: Math.fround(max) });
    // A second run folds in: the range can only widen.
    const wider = new Map(ranges);
    foldProbeRanges(wider, { [rangeProbeOutputs('x').min]: { data: Float32Array.of(-5) }, [rangeProbeOutputs('x').max]: { data: Float32Array.of(0) } });
    expect(wider.get('x')).toEqual({ min: -5, max: Math.fround(max) });
  });

  it('writes Q/DQ around both Convs (int32 bias) and the MatMul, runs, and stays close to fp32', async () => {
    const ranges = await calibrate();
    const out = join(dir, 'static.onnx');
    const report = await quantizeOnnxStatic(model, out, ranges, { minElements: 16 });
    expect(report).toMatchObject({ convs: 2, matmuls: 1 });
    // x, conv1 out, relu out, conv2 out; the MatMul input is the reshape of conv2's (dequantised) output, its own pair.
    expect(report.activations).toBe(5);
    const graph = await readFile(out);
    expect(graph.includes('_dfd_bias_int32')).toBe(true);
    expect(graph.includes('conv1.weight_dfd_int8')).toBe(true);
    const fp32 = (await run(model, input)).out!.data as Float32Array;
    const optimized = join(dir, 'static.optimized.onnx');
    const int8 = (await run(out, input, optimized)).out!.data as Float32Array;
    // onnxruntime fused the pattern into integer kernels (what makes static int8 faster than fp32), not
    // a float Conv on dequantised weights.
    const kernels = await readFile(optimized);
    expect(kernels.includes('QLinearConv')).toBe(true);
    expect(kernels.includes('MatMulIntegerToFloat')).toBe(true);
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let i = 0; i < fp32.length; i++) (dot += fp32[i]! * int8[i]!), (na += fp32[i]! ** 2), (nb += int8[i]! ** 2);
    const cosine = dot / Math.sqrt(na * nb);
    expect(cosine).toBeGreaterThan(0.995); // measured 0.9979: four uint8 activations and 7-bit weights on 8 channels
    // Not the fp32 graph under another name: the int8 rounding shows.
    expect(fp32.some((v, i) => v !== int8[i])).toBe(true);
  });

  it('refuses a range that is missing or not finite, naming the tensor', async () => {
    const ranges = await calibrate();
    const missing = new Map(ranges);
    missing.delete('x');
    await expect(quantizeOnnxStatic(model, join(dir, 'bad.onnx'), missing, { minElements: 16 })).rejects.toThrow(GraphQuantizeError);
    await expect(quantizeOnnxStatic(model, join(dir, 'bad.onnx'), missing, { minElements: 16 })).rejects.toThrow(/'x'/);
    const nan = new Map(ranges).set('x', { min: NaN, max: 1 });
    await expect(quantizeOnnxStatic(model, join(dir, 'bad.onnx'), nan, { minElements: 16 })).rejects.toThrow(/'x' is not finite/);
  });
});
