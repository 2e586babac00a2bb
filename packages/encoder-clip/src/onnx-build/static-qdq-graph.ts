/**
 * Static int8 for an existing ONNX model (Stable Diffusion's VAE encoder and UNet), in two rewrites:
 *
 * 1. `writeRangeProbeModel`: the fp32 model plus, for every tensor static int8 needs a range of, a
 *    `ReduceMin` and a `ReduceMax` as extra graph outputs (`rangeProbeOutputs`). Running it over the
 *    calibration set and keeping the extremes is min-max calibration, onnxruntime's default.
 * 2. `quantizeOnnxStatic`: the QDQ form onnxruntime fuses into integer kernels.
 *    - `Conv` with a float 4-D weight: input `DQ(Q(x))`, weight int8 per output channel, bias int32 with
 *      scale x_scale·w_scale (zero point 0), output `DQ(Q(y))` → fused into `QLinearConv`. Unlike the
 *      dynamic `ConvInteger` (4× slower than fp32 here, measured.md), `QLinearConv` is faster than fp32.
 *    - `MatMul` with a float 2-D weight: input `DQ(Q(x))`, weight int8 per output column → fused into
 *      `MatMulIntegerToFloat` (the product stays float; its bias `Add` is untouched).
 *
 * Weights are symmetric 7-bit (`INT8_WEIGHT_MAX`), activations asymmetric uint8 per tensor. A tensor read
 * by several quantised nodes gets one Q/DQ pair; a Conv output that is itself a quantised input is not
 * quantised twice.
 */
import { DataType, encodeNode, encodeValueInfo } from './proto.js';
import type { ParsedNode, ParsedTensor } from './proto-reader.js';
import { int8WeightScale, quantizeWeightValue } from './quantize.js';
import { quantizeMatMulWeight } from './quantize-graph.js';
import { uint8Quantization, type ActivationRange } from './static-int8.js';
import { assertBeside, ExternalDataWriter, GraphQuantizeError, initializerFloats, readOnnxModel, withNodeIO, writeRewrittenModel, type OnnxModelParts } from './graph-rewrite.js';

/** Graph output names of the range probe of tensor `name` (scalars). */
export const rangeProbeOutputs = (name: string) => ({ min: `dfd_range_min:${name}`, max: `dfd_range_max:${name}` });

export interface StaticQdqOptions {
  /** Weights with fewer elements stay float (default 4096). */
  minElements?: number;
}

export interface StaticQdqReport {
  convs: number;
  matmuls: number;
  /** Activation tensors given a Q/DQ pair. */
  activations: number;
  bytesWritten: number;
}

interface Target {
  node: ParsedNode;
  kind: 'conv' | 'matmul';
  weight: ParsedTensor;
  bias: ParsedTensor | undefined;
}

/** The nodes static int8 quantises, in graph order. */
function staticTargets(parts: OnnxModelParts, minElements: number): Target[] {
  const targets: Target[] = [];
  for (const node of parts.nodes) {
    if (node.domain || (node.op !== 'Conv' && node.op !== 'MatMul')) continue;
    const weight = parts.inits.get(node.inputs[1] ?? '');
    const rank = node.op === 'Conv' ? 4 : 2;
    if (!weight || weight.dataType !== DataType.FLOAT || weight.dims.length !== rank) continue;
    if (weight.dims.reduce((a, b) => a * b, 1) < minElements) continue;
    const bias = node.op === 'Conv' && node.inputs[2] ? parts.inits.get(node.inputs[2]) : undefined;
    if (node.op === 'Conv' && node.inputs[2] && (!bias || bias.dataType !== DataType.FLOAT)) continue; // a computed bias: leave the Conv float
    targets.push({ node, kind: node.op === 'Conv' ? 'conv' : 'matmul', weight, bias });
  }
  return targets;
}

/** Every tensor a static rewrite needs a calibrated range of: quantised inputs and Conv outputs. */
function rangeTensors(targets: Target[]): string[] {
  const names = new Set<string>();
  for (const t of targets) {
    names.add(t.node.inputs[0]!);
    if (t.kind === 'conv') names.add(t.node.outputs[0]!);
  }
  return [...names];
}

/** Writes the calibration model of `input` beside it; returns the probed tensors. */
export async function writeRangeProbeModel(input: string, output: string, options: StaticQdqOptions = {}): Promise<string[]> {
  assertBeside(input, output);
  const parts = await readOnnxModel(input);
  const tensors = rangeTensors(staticTargets(parts, options.minElements ?? 4096));
  const probes: Uint8Array[] = [];
  const outputs: Uint8Array[] = [];
  for (const name of tensors) {
    const out = rangeProbeOutputs(name);
    probes.push(encodeNode({ op: 'ReduceMin', name: out.min, inputs: [name], outputs: [out.min], attributes: { keepdims: 0 } }));
    probes.push(encodeNode({ op: 'ReduceMax', name: out.max, inputs: [name], outputs: [out.max], attributes: { keepdims: 0 } }));
    outputs.push(encodeValueInfo(out.min, DataType.FLOAT, []), encodeValueInfo(out.max, DataType.FLOAT, []));
  }
  await writeRewrittenModel(parts, output, { nodes: [...parts.nodes.map((n) => n.raw), ...probes], newOutputs: outputs });
  return tensors;
}

/** Folds one run's probe outputs into `ranges` (the extremes over every run so far). */
export function foldProbeRanges(ranges: Map<string, ActivationRange>, outputs: Record<string, { data: unknown }>): void {
  const prefix = rangeProbeOutputs('').min;
  for (const [key, value] of Object.entries(outputs)) {
    if (!key.startsWith(prefix)) continue;
    const name = key.slice(prefix.length);
    const min = (value.data as Float32Array)[0]!;
    const max = (outputs[rangeProbeOutputs(name).max]!.data as Float32Array)[0]!;
    const known = ranges.get(name);
    ranges.set(name, known ? { min: Math.min(known.min, min), max: Math.max(known.max, max) } : { min, max });
  }
}

/** Per output channel (axis 0 of `[M, ...]`): symmetric 7-bit weights and their scales. */
function quantizePerChannel(w: Float32Array, channels: number): { values: Int8Array; scales: Float32Array } {
  const per = w.length / channels;
  const values = new Int8Array(w.length);
  const scales = new Float32Array(channels);
  for (let m = 0; m < channels; m++) {
    let max = 0;
    for (let i = m * per; i < (m + 1) * per; i++) max = Math.max(max, Math.abs(w[i]!));
    scales[m] = int8WeightScale(max);
    for (let i = m * per; i < (m + 1) * per; i++) values[i] = quantizeWeightValue(w[i]!, scales[m]!);
  }
  return { values, scales };
}

/** Builds the rewrite's nodes and initializers; one instance per `quantizeOnnxStatic` call. */
class QdqWriter {
  readonly nodes: Uint8Array[] = [];
  /** Tensor → its dequantised form (itself, for a Conv output already passed through Q/DQ). */
  private readonly dequantized = new Map<string, string>();
  /** Weight initializer → its dequantised int8 form (a weight shared by several nodes is written once). */
  private readonly weights = new Map<string, string>();
  activations = 0;

  constructor(
    private readonly data: ExternalDataWriter,
    private readonly ranges: ReadonlyMap<string, ActivationRange>,
  ) {}

  private params(tensor: string) {
    const range = this.ranges.get(tensor);
    if (!range) throw new GraphQuantizeError(`no calibrated range for '${tensor}': calibrate with the probe model of this very graph`);
    if (!Number.isFinite(range.min) || !Number.isFinite(range.max)) {
      throw new GraphQuantizeError(`the calibrated range of '${tensor}' is not finite (NaN or inf activations on the calibration images); check the weights and images`);
    }
    return uint8Quantization(range);
  }

  /** `Q → DQ` of `source` with the calibrated parameters of `rangeOf`; `output` names the dequantised tensor. */
  private async pair(source: string, rangeOf: string, output: string): Promise<number> {
    const { scale, zeroPoint } = this.params(rangeOf);
    const scaleName = await this.data.add(`${output}_dfd_scale`, [], Float32Array.of(scale), DataType.FLOAT);
    const zeroName = await this.data.add(`${output}_dfd_zero_point`, [], Uint8Array.of(zeroPoint), DataType.UINT8);
    const q = `${output}_dfd_q`;
    this.nodes.push(encodeNode({ op: 'QuantizeLinear', name: q, inputs: [source, scaleName, zeroName], outputs: [q] }));
    this.nodes.push(encodeNode({ op: 'DequantizeLinear', name: output, inputs: [q, scaleName, zeroName], outputs: [output] }));
    this.activations++;
    return scale;
  }

  /** The dequantised form of an activation, making its pair on first use. Returns its name and scale. */
  async input(tensor: string): Promise<{ name: string; scale: number }> {
    const known = this.dequantized.get(tensor);
    if (known) return { name: known, scale: this.params(tensor).scale };
    const name = `${tensor}_dfd_dq`;
    const scale = await this.pair(tensor, tensor, name);
    this.dequantized.set(tensor, name);
    return { name, scale };
  }

  /** The quantised node writes `${tensor}_dfd_f32`; a pair turns it back into `tensor` for its readers. */
  async output(tensor: string): Promise<string> {
    const raw = `${tensor}_dfd_f32`;
    await this.pair(raw, tensor, tensor);
    this.dequantized.set(tensor, tensor);
    return raw;
  }

  /** `DQ(int8 weight)` along `axis`, zero points 0. */
  async weight(name: string, dims: number[], q: { values: Int8Array; scales: Float32Array }, axis: number): Promise<string> {
    const known = this.weights.get(name);
    if (known) return known;
    const base = `${name}_dfd_int8`;
    this.weights.set(name, `${base}_dq`);
    const inputs = [
      await this.data.add(base, dims, q.values, DataType.INT8),
      await this.data.add(`${base}_scale`, [q.scales.length], q.scales, DataType.FLOAT),
      await this.data.add(`${base}_zero_point`, [q.scales.length], new Int8Array(q.scales.length), DataType.INT8),
    ];
    this.nodes.push(encodeNode({ op: 'DequantizeLinear', name: `${base}_dq`, inputs, outputs: [`${base}_dq`], attributes: { axis } }));
    return `${base}_dq`;
  }

  /** A Conv bias as int32 in units of x_scale·w_scale (what QLinearConv adds), dequantised; one per Conv (`conv`: its output). */
  async bias(conv: string, bias: Float32Array, inputScale: number, weightScales: Float32Array): Promise<string> {
    const scales = weightScales.map((s) => inputScale * s);
    const values = Int32Array.from(bias, (b, m) => Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.round(b / scales[m]!))));
    const base = `${conv}_dfd_bias_int32`;
    const inputs = [
      await this.data.add(base, [values.length], values, DataType.INT32),
      await this.data.add(`${base}_scale`, [scales.length], scales, DataType.FLOAT),
      await this.data.add(`${base}_zero_point`, [scales.length], new Int32Array(scales.length), DataType.INT32),
    ];
    this.nodes.push(encodeNode({ op: 'DequantizeLinear', name: `${base}_dq`, inputs, outputs: [`${base}_dq`], attributes: { axis: 0 } }));
    return `${base}_dq`;
  }
}

/** Rewrites `input` to static int8 QDQ into `output` (same folder) with ranges from its probe model. */
export async function quantizeOnnxStatic(
  input: string,
  output: string,
  ranges: ReadonlyMap<string, ActivationRange>,
  options: StaticQdqOptions = {},
): Promise<StaticQdqReport> {
  assertBeside(input, output);
  const parts = await readOnnxModel(input);
  const targets = new Map(staticTargets(parts, options.minElements ?? 4096).map((t) => [t.node, t]));
  const data = await ExternalDataWriter.open(output);
  const qdq = new QdqWriter(data, ranges);
  const report: StaticQdqReport = { convs: 0, matmuls: 0, activations: 0, bytesWritten: 0 };
  const dropInitializers = new Set<string>();
  const useOnce = (tensor: ParsedTensor | undefined) => {
    if (tensor && (parts.consumers.get(tensor.name) ?? []).every((n) => targets.has(n))) dropInitializers.add(tensor.name);
  };
  try {
    for (const node of parts.nodes) {
      const target = targets.get(node);
      if (!target) {
        qdq.nodes.push(node.raw);
        continue;
      }
      const x = await qdq.input(node.inputs[0]!);
      const w = await initializerFloats(target.weight, parts.dir);
      if (target.kind === 'matmul') {
        const [k, n] = target.weight.dims as [number, number];
        const weight = await qdq.weight(target.weight.name, [k, n], quantizeMatMulWeight(w, k, n), 1);
        qdq.nodes.push(withNodeIO(node, [x.name, weight], node.outputs));
        report.matmuls++;
      } else {
        const channels = target.weight.dims[0]!;
        const q = quantizePerChannel(w, channels);
        const inputs = [x.name, await qdq.weight(target.weight.name, target.weight.dims, q, 0)];
        if (target.bias) inputs.push(await qdq.bias(node.outputs[0]!, await initializerFloats(target.bias, parts.dir), x.scale, q.scales));
        const conv = withNodeIO(node, inputs, [`${node.outputs[0]!}_dfd_f32`, ...node.outputs.slice(1)]);
        qdq.nodes.push(conv);
        await qdq.output(node.outputs[0]!);
        report.convs++;
      }
      useOnce(target.weight);
      useOnce(target.bias);
    }
    await data.commit();
  } catch (error) {
    await data.abort();
    throw error;
  }
  report.activations = qdq.activations;
  report.bytesWritten = data.bytes;
  await writeRewrittenModel(parts, output, { nodes: qdq.nodes, dropInitializers, newInitializers: data.tensors });
  return report;
}
