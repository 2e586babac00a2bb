/**
 * Rewrites an existing ONNX model (an exported CLIP tower, a Stable Diffusion UNet with gigabytes of external
 * data) to int8: every `MatMul` whose second input is a float32 2-D initializer becomes
 * `com.microsoft:DynamicQuantizeMatMul` with int8 weights (symmetric 7-bit per output column) and, when the product
 * feeds one `Add` of a 1-D initializer, that bias fused in. Convolutions are left alone: onnxruntime's
 * `ConvInteger` is 4× slower than fp32 on these CPUs (measured.md), so MatMul-only is the fast route.
 *
 * The new model is written beside the original (same folder), so the initializers it does not touch keep
 * pointing at the original external-data file: nothing is copied, and only the quantised weights go to
 * `<out>.data`. Every other field of the model and graph is kept byte for byte.
 */
import { encodeNode, DataType } from './proto.js';
import type { ParsedNode } from './proto-reader.js';
import { int8WeightScale, quantizeWeightValue } from './quantize.js';
import { assertBeside, ExternalDataWriter, initializerFloats, readOnnxModel, writeRewrittenModel } from './graph-rewrite.js';

export { GraphQuantizeError } from './graph-rewrite.js';

export interface QuantizeGraphOptions {
  /** Weights with fewer elements stay float (default 4096: tiny products gain nothing). */
  minElements?: number;
}

export interface QuantizeGraphReport {
  quantized: number;
  biasesFused: number;
  skipped: number;
  bytesWritten: number;
}

/** `B [K, N]` float → int8 `[K, N]` and one scale per column N (symmetric 7-bit, zero point 0; see INT8_WEIGHT_MAX). */
export function quantizeMatMulWeight(b: Float32Array, k: number, n: number): { values: Int8Array; scales: Float32Array } {
  const scales = new Float32Array(n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) scales[j] = Math.max(scales[j]!, Math.abs(b[i * n + j]!));
  for (let j = 0; j < n; j++) scales[j] = int8WeightScale(scales[j]!);
  const values = new Int8Array(k * n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) values[i * n + j] = quantizeWeightValue(b[i * n + j]!, scales[j]!);
  return { values, scales };
}

/** Quantises `input`'s MatMuls into `output` (which must be in the same folder). */
export async function quantizeOnnxMatMuls(input: string, output: string, options: QuantizeGraphOptions = {}): Promise<QuantizeGraphReport> {
  assertBeside(input, output);
  const minElements = options.minElements ?? 4096;
  const parts = await readOnnxModel(input);
  const { nodes, inits, consumers, graphOutputs } = parts;
  const data = await ExternalDataWriter.open(output);
  const report: QuantizeGraphReport = { quantized: 0, biasesFused: 0, skipped: 0, bytesWritten: 0 };
  const replaced = new Map<ParsedNode, Uint8Array | null>();
  const dropInitializers = new Set<string>();
  try {
    for (const node of nodes) {
      if (node.op !== 'MatMul' || node.domain) continue;
      const weight = inits.get(node.inputs[1] ?? '');
      if (!weight || weight.dataType !== DataType.FLOAT || weight.dims.length !== 2 || weight.dims[0]! * weight.dims[1]! < minElements) {
        report.skipped++;
        continue;
      }
      const [k, n] = weight.dims as [number, number];
      const q = quantizeMatMulWeight(await initializerFloats(weight, parts.dir), k, n);
      const base = `${weight.name}_dfd_int8`;
      const inputs = [node.inputs[0]!, await data.add(base, [k, n], q.values, DataType.INT8), await data.add(`${base}_scale`, [n], q.scales, DataType.FLOAT), ''];
      let outputs = node.outputs;
      const users = consumers.get(node.outputs[0]!) ?? [];
      const add = users.length === 1 && users[0]!.op === 'Add' && !users[0]!.domain && !graphOutputs.has(node.outputs[0]!) ? users[0]! : undefined;
      const biasName = add?.inputs.find((name) => name !== node.outputs[0]);
      const bias = biasName ? inits.get(biasName) : undefined;
      if (add && bias && bias.dataType === DataType.FLOAT && bias.dims.length === 1 && bias.dims[0] === n) {
        inputs.push(bias.name);
        outputs = add.outputs;
        replaced.set(add, null);
        report.biasesFused++;
      } else {
        inputs.pop();
      }
      replaced.set(node, encodeNode({ op: 'DynamicQuantizeMatMul', domain: 'com.microsoft', name: `${node.outputs[0]}_dfd_int8`, inputs, outputs }));
      if ((consumers.get(weight.name) ?? []).length === 1) dropInitializers.add(weight.name);
      report.quantized++;
    }
    await data.commit();
  } catch (error) {
    await data.abort();
    throw error;
  }
  report.bytesWritten = data.bytes;
  const rewritten = nodes.filter((node) => replaced.get(node) !== null).map((node) => replaced.get(node) ?? node.raw);
  await writeRewrittenModel(parts, output, { nodes: rewritten, dropInitializers, newInitializers: data.tensors, microsoftDomain: true });
  return report;
}
