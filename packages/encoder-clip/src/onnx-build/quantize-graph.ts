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
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { DataType, encodeNode, encodeTensor, ProtoWriter } from './proto.js';
import { parseNode, parseTensor, readFields, type ParsedNode, type ParsedTensor } from './proto-reader.js';
import { int8WeightScale, quantizeWeightValue } from './quantize.js';

export class GraphQuantizeError extends Error {
  override name = 'GraphQuantizeError';
}

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

async function tensorFloats(tensor: ParsedTensor, modelDir: string): Promise<Float32Array> {
  const count = tensor.dims.reduce((a, b) => a * b, 1);
  let bytes: Uint8Array;
  if (tensor.external) {
    const handle = await open(join(modelDir, tensor.external.location), 'r');
    try {
      bytes = new Uint8Array(count * 4);
      const { bytesRead } = await handle.read(bytes, 0, bytes.length, tensor.external.offset);
      if (bytesRead !== bytes.length) throw new GraphQuantizeError(`${tensor.name}: external data ${tensor.external.location} is truncated`);
    } finally {
      await handle.close();
    }
  } else if (tensor.data) {
    bytes = tensor.data;
  } else {
    throw new GraphQuantizeError(`${tensor.name}: initializer without data`);
  }
  const copy = new Uint8Array(bytes); // aligned
  return new Float32Array(copy.buffer, 0, count);
}

/** Quantises `input`'s MatMuls into `output` (which must be in the same folder). */
export async function quantizeOnnxMatMuls(input: string, output: string, options: QuantizeGraphOptions = {}): Promise<QuantizeGraphReport> {
  const modelDir = dirname(resolve(input));
  if (dirname(resolve(output)) !== modelDir) throw new GraphQuantizeError(`write the int8 model beside ${input} (same folder), so untouched weights stay where they are`);
  const minElements = options.minElements ?? 4096;
  const model = new Uint8Array(await readFile(input));
  const modelFields = readFields(model);
  const graphField = modelFields.find((f) => f.field === 7);
  if (!graphField?.payload) throw new GraphQuantizeError(`${input} has no graph`);
  const graphFields = readFields(graphField.payload);
  const nodes = graphFields.filter((f) => f.field === 1).map((f) => parseNode(f.payload!));
  const inits = new Map<string, ParsedTensor>(graphFields.filter((f) => f.field === 5).map((f) => [parseTensor(f.payload!).name, parseTensor(f.payload!)]));
  const graphOutputs = new Set(graphFields.filter((f) => f.field === 12).map((f) => new TextDecoder().decode(readFields(f.payload!).find((x) => x.field === 1)?.payload)));
  const consumers = new Map<string, ParsedNode[]>();
  for (const node of nodes) for (const name of node.inputs) consumers.set(name, [...(consumers.get(name) ?? []), node]);

  const dataPath = `${resolve(output)}.data`;
  const data = await open(`${dataPath}.tmp-${process.pid}`, 'w');
  let offset = 0;
  const newInits: Uint8Array[] = [];
  const writeWeight = async (name: string, dims: number[], array: Int8Array | Float32Array, type: number) => {
    offset += (4096 - (offset % 4096)) % 4096;
    const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
    await data.write(bytes, 0, bytes.length, offset);
    newInits.push(encodeTensor(name, type as 1, dims, { external: { location: basename(dataPath), offset, length: bytes.length } }));
    offset += bytes.length;
    return name;
  };

  const report: QuantizeGraphReport = { quantized: 0, biasesFused: 0, skipped: 0, bytesWritten: 0 };
  const replaced = new Map<ParsedNode, Uint8Array | null>();
  const dropInit = new Set<string>();
  try {
    for (const node of nodes) {
      if (node.op !== 'MatMul' || node.domain) continue;
      const weight = inits.get(node.inputs[1] ?? '');
      if (!weight || weight.dataType !== DataType.FLOAT || weight.dims.length !== 2 || weight.dims[0]! * weight.dims[1]! < minElements) {
        report.skipped++;
        continue;
      }
      const [k, n] = weight.dims as [number, number];
      const q = quantizeMatMulWeight(await tensorFloats(weight, modelDir), k, n);
      const base = `${weight.name}_dfd_int8`;
      const inputs = [node.inputs[0]!, await writeWeight(base, [k, n], q.values, DataType.INT8), await writeWeight(`${base}_scale`, [n], q.scales, DataType.FLOAT), ''];
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
      if ((consumers.get(weight.name) ?? []).length === 1) dropInit.add(weight.name);
      report.quantized++;
    }
    await data.close();
  } catch (error) {
    await data.close().catch(() => undefined);
    throw error;
  }
  report.bytesWritten = offset;

  const graph = new ProtoWriter();
  for (const node of nodes) {
    const swap = replaced.get(node);
    if (swap === null) continue;
    graph.bytes(1, swap ?? node.raw);
  }
  for (const f of graphFields) {
    if (f.field === 1) continue;
    if (f.field === 5 && dropInit.has(parseTensor(f.payload!).name)) continue;
    graph.raw(f.bytes);
  }
  for (const init of newInits) graph.bytes(5, init);

  const out = new ProtoWriter();
  let hasMs = false;
  for (const f of modelFields) {
    if (f.field === 7) {
      out.bytes(7, graph.finish());
      continue;
    }
    if (f.field === 8 && readFields(f.payload!).some((x) => x.field === 1 && new TextDecoder().decode(x.payload) === 'com.microsoft')) hasMs = true;
    out.raw(f.bytes);
  }
  if (!hasMs) out.message(8, (o) => o.string(1, 'com.microsoft').int(2, 1));
  await rename(`${dataPath}.tmp-${process.pid}`, dataPath);
  const tmp = `${resolve(output)}.tmp-${process.pid}`;
  await writeFile(tmp, out.finish());
  await rename(tmp, resolve(output));
  return report;
}
