/**
 * Writes CLIP's vision tower (transformers' `CLIPVisionModelWithProjection`: embeddings, pre-LN, encoder,
 * post-LN on the class token, visual projection) as an ONNX graph, straight from a Hugging Face folder's
 * `config.json` + `model.safetensors`. Inputs and outputs are those of the exported towers the rest of the
 * package reads: `pixel_values [B, 3, S, S]` → `image_embeds [B, D]`, `last_hidden_state [B, 1 + h·w, W]`
 * (encoder output, before post-LN).
 *
 * Layout choices, each for onnxruntime's CPU kernels:
 * - q, k and v are one `[W, 3W]` product (one larger GEMM instead of three), split before the attention.
 * - Attention is `com.microsoft:MultiHeadAttention` (scale 1/√d, transformers' scaling), one kernel instead
 *   of reshape/transpose/matmul/softmax chains; the activation is `com.microsoft:QuickGelu` (α 1.702) or
 *   `Gelu`/`FastGelu`, as the config's `hidden_act` says.
 * - `int8`: every encoder Linear is `com.microsoft:DynamicQuantizeMatMul` with int8 weights (per-column
 *   symmetric scales) and its bias fused; activations are quantised per tensor at run time. The patch
 *   convolution and the final projection stay float32: measured.md shows `ConvInteger` is 4× slower than
 *   fp32 here, and the projection is one small product per image.
 */
import type { SafetensorsFile } from '@dfd/core';
import type { ClipConfig, HiddenAct } from '../config.js';
import { DataType } from './proto.js';
import type { OnnxGraphBuilder } from './graph-builder.js';
import { quantizeLinearWeight, transpose } from './quantize.js';
import { concatFloat32 } from '../float32.js';
import { divideChannels, scaleInputColumns, smoothingScales, tensorRange, uint8Quantization, type StaticInt8Calibration } from './static-int8.js';

export type GraphPrecision = 'fp32' | 'int8';

/** Bumped whenever the graph written for the same weights changes (part of the cache manifest). */
export const CLIP_VISION_GRAPH_VERSION = 2; // 2: int8 weights 7-bit (INT8_WEIGHT_MAX)

/** Graph output names of the calibration probes of Linear layer `name` (per-channel minima and maxima, `[in]`). */
export const probeOutputs = (name: string) => ({ min: `range_min:${name}`, max: `range_max:${name}` });

export class ClipGraphError extends Error {
  override name = 'ClipGraphError';
}

const MS = 'com.microsoft';

class WeightReader {
  constructor(
    private readonly file: SafetensorsFile,
    private readonly prefix: string,
  ) {}

  async read(name: string, shape: number[]): Promise<Float32Array> {
    const full = `${this.prefix}${name}`;
    if (!this.file.has(full)) throw new ClipGraphError(`${this.file.path} has no tensor '${full}' (a CLIP vision tower needs it)`);
    const { shape: found, data } = await this.file.readFloat32(full);
    if (found.length !== shape.length || found.some((d, i) => d !== shape[i])) {
      throw new ClipGraphError(`${this.file.path}: tensor '${full}' has shape [${found.join(', ')}], expected [${shape.join(', ')}] from config.json`);
    }
    return data;
  }
}

/** `vision_model.` for CLIPModel / CLIPVisionModelWithProjection folders. */
function visionPrefix(file: SafetensorsFile): { vision: string; projection: string } {
  if (file.has('vision_model.embeddings.class_embedding')) return { vision: 'vision_model.', projection: 'visual_projection.weight' };
  throw new ClipGraphError(
    `${file.path} holds no CLIP vision tower (no 'vision_model.embeddings.class_embedding'); expected a Hugging Face CLIPModel or CLIPVisionModelWithProjection checkpoint`,
  );
}

/** Graph variants kept for measurement (bench): the default is what the cache builds. */
export interface GraphVariant {
  /** `fused`: com.microsoft:MultiHeadAttention (default); `plain`: reshape/transpose/MatMul/Softmax. */
  attention?: 'fused' | 'plain';
  /** In an int8 graph, Linear layers whose name matches stay float32 (e.g. /mlp\.fc2/). */
  keepFloat?: RegExp;
  /**
   * fp32 graph for calibration: every Linear input also goes to two outputs (`probeOutputs(name)`), its
   * per-channel minimum and maximum over the batch and tokens.
   */
  probeRanges?: boolean;
  /**
   * Calibrated channel ranges. In an int8 graph: static activation quantisation (QDQ), each Linear input
   * QuantizeLinear → DequantizeLinear with the uint8 parameters of its range, the weight a DequantizeLinear
   * of the int8 weights (onnxruntime fuses the pattern into integer kernels); without it int8 is dynamic.
   * With `smoothAlpha` > 0 (either precision) SmoothQuant's scales are folded into the weights: into the
   * LayerNorm before qkv and fc1, and into v before out_proj (fc2 follows a GELU, which no scale passes).
   */
  calibration?: StaticInt8Calibration;
}

/** What the writer decided from a calibration, for the manifest. */
export interface GraphReport {
  /** Per-tensor range of each statically quantised Linear input (after smoothing). */
  activationRanges?: Record<string, [number, number]>;
  /** Linear layers whose input channels were smoothed. */
  smoothed?: string[];
}

interface Ctx {
  g: OnnxGraphBuilder;
  w: WeightReader;
  precision: GraphPrecision;
  variant: GraphVariant;
  /** SmoothQuant scales applied to each Linear's input channels (filled while layers are written). */
  smoothing: Map<string, Float32Array>;
  report: GraphReport;
}

/** Scaled dot-product attention from standard ops: `[B, T, W]` q, k, v → `[B, T, W]`. */
function plainAttention(ctx: Ctx, q: string, k: string, v: string, heads: number, width: number): string {
  const { g } = ctx;
  const d = width / heads;
  const split = g.int64s('shape', [0, 0, heads, d]);
  const qh = g.op('Transpose', [g.op('Reshape', [q, split])], { perm: [0, 2, 1, 3] });
  const kh = g.op('Transpose', [g.op('Reshape', [k, split])], { perm: [0, 2, 3, 1] });
  const vh = g.op('Transpose', [g.op('Reshape', [v, split])], { perm: [0, 2, 1, 3] });
  const scores = g.op('Mul', [g.op('MatMul', [qh, kh]), g.constant('scale', [], Float32Array.of(1 / Math.sqrt(d)))]);
  const context = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), vh]);
  return g.op('Reshape', [g.op('Transpose', [context], { perm: [0, 2, 1, 3] }), g.int64s('shape', [0, 0, width])]);
}

/** `x @ weightᵀ + bias` for a PyTorch Linear `[out, in]`, in the graph's precision. */
async function linear(ctx: Ctx, x: string, name: string, weight: Float32Array, bias: Float32Array | undefined, out: number, inFeatures: number): Promise<string> {
  const { g } = ctx;
  if (ctx.variant.probeRanges) {
    const probe = probeOutputs(name);
    g.op('ReduceMin', [x], { axes: [0, 1], keepdims: 0 }, undefined, probe.min);
    g.op('ReduceMax', [x], { axes: [0, 1], keepdims: 0 }, undefined, probe.max);
    g.output(probe.min, DataType.FLOAT, [inFeatures]);
    g.output(probe.max, DataType.FLOAT, [inFeatures]);
  }
  let product: string;
  if (ctx.precision === 'int8' && !ctx.variant.keepFloat?.test(name)) {
    const q = quantizeLinearWeight(weight, out, inFeatures);
    const b = await g.weight(`${name}.weight_int8`, [inFeatures, out], q.values);
    const scale = await g.weight(`${name}.weight_scale`, [out], q.scales);
    const biasName = bias ? await g.weight(`${name}.bias`, [out], bias) : undefined;
    if (!ctx.variant.calibration) return g.op('DynamicQuantizeMatMul', [x, b, scale, '', ...(biasName ? [biasName] : [])], undefined, MS);
    product = staticQdqMatMul(ctx, x, name, b, scale, out);
    return biasName ? g.op('Add', [product, biasName]) : product;
  }
  product = g.op('MatMul', [x, await g.weight(`${name}.weight_t`, [inFeatures, out], transpose(weight, out, inFeatures))]);
  return bias ? g.op('Add', [product, await g.weight(`${name}.bias`, [out], bias)]) : product;
}

/** `DQ(Q(x)) @ DQ(B)`: the QDQ form of a statically quantised MatMul (weights int8 per column, zero point 0). */
function staticQdqMatMul(ctx: Ctx, x: string, name: string, weightInt8: string, weightScale: string, out: number): string {
  const { g } = ctx;
  const channels = ctx.variant.calibration!.channels.get(name);
  if (!channels) throw new ClipGraphError(`no calibrated activation range for '${name}': the calibration did not cover every Linear layer`);
  const range = tensorRange(channels, ctx.smoothing.get(name));
  (ctx.report.activationRanges ??= {})[name] = [range.min, range.max];
  const { scale, zeroPoint } = uint8Quantization(range);
  const xScale = g.constant(`${name}.input_scale`, [], Float32Array.of(scale));
  const xZero = g.constant(`${name}.input_zero_point`, [], Uint8Array.of(zeroPoint), DataType.UINT8);
  const xq = g.op('DequantizeLinear', [g.op('QuantizeLinear', [x, xScale, xZero]), xScale, xZero]);
  const wZero = g.constant(`${name}.weight_zero_point`, [out], new Int8Array(out));
  const w = g.op('DequantizeLinear', [weightInt8, weightScale, wZero], { axis: 1 });
  return g.op('MatMul', [xq, w]);
}

/** LayerNorm; with `smoothedBy`, γ and β divided by the next Linear's smoothing scales. */
async function layerNorm(ctx: Ctx, x: string, name: string, width: number, eps: number, output?: string, smoothedBy?: Float32Array): Promise<string> {
  const gamma = await ctx.w.read(`${name}.weight`, [width]);
  const beta = await ctx.w.read(`${name}.bias`, [width]);
  if (smoothedBy) {
    divideChannels(gamma, smoothedBy);
    divideChannels(beta, smoothedBy);
  }
  const scale = await ctx.g.weight(`${name}.weight`, [width], gamma);
  const bias = await ctx.g.weight(`${name}.bias`, [width], beta);
  return ctx.g.op('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: { float: eps } }, undefined, output);
}

function activation(ctx: Ctx, x: string, act: HiddenAct): string {
  switch (act) {
    case 'quick_gelu':
      return ctx.g.op('QuickGelu', [x], { alpha: { float: 1.702 } }, MS);
    case 'gelu':
      return ctx.g.op('Gelu', [x], undefined, MS);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return ctx.g.op('FastGelu', [x], undefined, MS);
    case 'relu':
      return ctx.g.op('Relu', [x]);
  }
}

/**
 * SmoothQuant's scales for Linear `name` (weights `[out, in]`, PyTorch layout), multiplied into its weight
 * columns here; the caller divides the producer of its input by them. Undefined when not smoothing.
 */
function smooth(ctx: Ctx, name: string, weight: Float32Array, out: number, inFeatures: number): Float32Array | undefined {
  const calibration = ctx.variant.calibration;
  if (!calibration || !(calibration.smoothAlpha > 0) || ctx.variant.keepFloat?.test(name)) return undefined;
  const channels = calibration.channels.get(name);
  if (!channels) throw new ClipGraphError(`no calibrated channel ranges for '${name}': the calibration did not cover every Linear layer`);
  const scales = smoothingScales(channels, weight, out, inFeatures, calibration.smoothAlpha);
  scaleInputColumns(weight, scales, out, inFeatures);
  ctx.smoothing.set(name, scales);
  (ctx.report.smoothed ??= []).push(name);
  return scales;
}

async function encoderLayer(ctx: Ctx, x: string, i: number, config: ClipConfig): Promise<string> {
  const v = config.vision;
  const W = v.hiddenSize;
  const p = `encoder.layers.${i}`;
  const { g, w } = ctx;
  const proj = (n: string) => w.read(`${p}.self_attn.${n}.weight`, [W, W]);
  const bias = (n: string) => w.read(`${p}.self_attn.${n}.bias`, [W]);
  const qkvWeight = concatFloat32([await proj('q_proj'), await proj('k_proj'), await proj('v_proj')]);
  const qkvBias = concatFloat32([await bias('q_proj'), await bias('k_proj'), await bias('v_proj')]);
  const outWeight = await proj('out_proj');
  // Both scales from the weights as read; the two foldings touch different axes of qkvWeight and commute.
  const qkvScales = smooth(ctx, `${p}.self_attn.qkv`, qkvWeight, 3 * W, W);
  const outScales = smooth(ctx, `${p}.self_attn.out_proj`, outWeight, W, W);
  if (outScales) {
    // Attention mixes v's rows over tokens, so dividing v's output channel j divides the context's channel j.
    divideChannels(qkvWeight, outScales, 2 * W, W, W);
    divideChannels(qkvBias, outScales, 2 * W);
  }
  const h = await layerNorm(ctx, x, `${p}.layer_norm1`, W, v.layerNormEps, undefined, qkvScales);
  const qkv = await linear(ctx, h, `${p}.self_attn.qkv`, qkvWeight, qkvBias, 3 * W, W);
  const [q, k, vv] = g.node('Split', [qkv, g.int64s('split', [W, W, W])], { attributes: { axis: -1 }, outputs: 3 });
  const attended =
    ctx.variant.attention === 'plain'
      ? plainAttention(ctx, q!, k!, vv!, v.numHeads, W)
      : g.op('MultiHeadAttention', [q!, k!, vv!], { num_heads: v.numHeads, scale: { float: 1 / Math.sqrt(W / v.numHeads) } }, MS);
  const attnOut = await linear(ctx, attended, `${p}.self_attn.out_proj`, outWeight, await bias('out_proj'), W, W);
  const afterAttn = g.op('Add', [x, attnOut]);
  const I = v.intermediateSize;
  const fc1Weight = await w.read(`${p}.mlp.fc1.weight`, [I, W]);
  const fc1Scales = smooth(ctx, `${p}.mlp.fc1`, fc1Weight, I, W);
  const h2 = await layerNorm(ctx, afterAttn, `${p}.layer_norm2`, W, v.layerNormEps, undefined, fc1Scales);
  const fc1 = await linear(ctx, h2, `${p}.mlp.fc1`, fc1Weight, await w.read(`${p}.mlp.fc1.bias`, [I]), I, W);
  const fc2 = await linear(ctx, activation(ctx, fc1, v.hiddenAct), `${p}.mlp.fc2`, await w.read(`${p}.mlp.fc2.weight`, [W, I]), await w.read(`${p}.mlp.fc2.bias`, [W]), W, I);
  return g.op('Add', [afterAttn, fc2]);
}

/** Patch embedding, class token and positions: `[B, 3, S, S]` → `[B, 1 + h·w, W]`. */
async function embeddings(ctx: Ctx, pixels: string, config: ClipConfig): Promise<string> {
  const { g, w } = ctx;
  const v = config.vision;
  const W = v.hiddenSize;
  const P = v.patchSize;
  const tokens = (v.imageSize / P) ** 2 + 1;
  const kernel = await g.weight('embeddings.patch_embedding.weight', [W, 3, P, P], await w.read('embeddings.patch_embedding.weight', [W, 3, P, P]));
  const patches = g.op('Conv', [pixels, kernel], { kernel_shape: [P, P], strides: [P, P] });
  const flat = g.op('Reshape', [patches, g.int64s('shape', [0, W, -1])]);
  const sequence = g.op('Transpose', [flat], { perm: [0, 2, 1] });
  const cls = await g.weight('embeddings.class_embedding', [1, 1, W], await w.read('embeddings.class_embedding', [W]));
  const batch = g.op('Shape', [pixels], { start: 0, end: 1 });
  const clsShape = g.op('Concat', [batch, g.int64s('shape', [1, W])], { axis: 0 });
  const clsTokens = g.op('Expand', [cls, clsShape]);
  const joined = g.op('Concat', [clsTokens, sequence], { axis: 1 });
  const positions = await g.weight('embeddings.position_embedding.weight', [tokens, W], await w.read('embeddings.position_embedding.weight', [tokens, W]));
  return g.op('Add', [joined, positions]);
}

/** Adds the whole tower to `g`; weights are read one tensor at a time from `file`. */
export async function writeClipVisionGraph(
  g: OnnxGraphBuilder,
  file: SafetensorsFile,
  config: ClipConfig,
  precision: GraphPrecision,
  variant: GraphVariant = {},
): Promise<GraphReport> {
  const names = visionPrefix(file);
  const ctx: Ctx = { g, w: new WeightReader(file, names.vision), precision, variant, smoothing: new Map(), report: {} };
  g.useOpset(MS, 1);
  const v = config.vision;
  const W = v.hiddenSize;
  const tokens = (v.imageSize / v.patchSize) ** 2 + 1;
  const pixels = g.input('pixel_values', DataType.FLOAT, ['batch', 3, v.imageSize, v.imageSize]);
  let x = await layerNorm(ctx, await embeddings(ctx, pixels, config), 'pre_layrnorm', W, v.layerNormEps);
  for (let i = 0; i < v.numLayers; i++) x = await encoderLayer(ctx, x, i, config);
  const hidden = g.op('Identity', [x], undefined, undefined, 'last_hidden_state');
  const cls = g.op('Gather', [hidden, g.constant('index', [], BigInt64Array.of(0n))], { axis: 1 });
  const pooled = await layerNorm(ctx, cls, 'post_layernorm', W, v.layerNormEps);
  const D = config.projectionDim;
  if (!file.has(names.projection)) throw new ClipGraphError(`${file.path} has no '${names.projection}' (CLIP's visual projection)`);
  const projection = (await file.readFloat32(names.projection)).data;
  if (projection.length !== D * W) throw new ClipGraphError(`${file.path}: '${names.projection}' should be [${D}, ${W}] from config.json`);
  g.op('MatMul', [pooled, await g.weight('visual_projection.weight_t', [W, D], transpose(projection, D, W))], undefined, undefined, 'image_embeds');
  g.output('image_embeds', DataType.FLOAT, ['batch', D]);
  g.output('last_hidden_state', DataType.FLOAT, ['batch', tokens, W]);
  return ctx.report;
}
