/**
 * The arithmetic of static int8 for the vision graph: what a calibration pass records (each Linear input's
 * per-channel minimum and maximum), the uint8 parameters of a per-tensor range, and SmoothQuant's channel
 * scales (Xiao et al. 2023): an input channel j divided by s_j and the matching weight column multiplied by
 * s_j leave the product unchanged in exact arithmetic, and with s_j = max|X_j|^α / max|W_:,j|^(1−α) they move
 * the activations' outlier channels into the weights, where per-column int8 scales absorb them.
 */

/** The observed range of one tensor (per-tensor quantisation). */
export interface ActivationRange {
  min: number;
  max: number;
}

/** Per input channel: the smallest and largest value of one Linear input over the calibration set. */
export interface ChannelRanges {
  min: Float32Array;
  max: Float32Array;
}

/** What static int8 builds from: the calibrated channel ranges of every Linear input, and SmoothQuant's α (0: none). */
export interface StaticInt8Calibration {
  channels: ReadonlyMap<string, ChannelRanges>;
  smoothAlpha: number;
}

/**
 * Smoothing is off by default. On the one trained CLIP this machine has (the examples' tiny CLIP, no outlier
 * channels), with 7-bit weights, α 0.5 raised the int8 embeddings' min cosine to fp32 from 0.99959 to
 * 0.99973 on 400 mini-DF40 images but moved the detectors' test AUC more than plain static int8 in two of
 * four runs (examples/src/precision-auc.ts; encoder-clip README). SmoothQuant's paper uses α 0.5 for models
 * whose activations carry outlier channels: pass it for a real checkpoint and measure
 * (`npm run bench -w @dfd/encoder-clip` with BENCH_MODEL_B16).
 */
export const DEFAULT_SMOOTH_ALPHA = 0;

/**
 * Static per-tensor uint8 parameters for a calibrated range: asymmetric, the range widened to hold 0 so
 * zero is exact (onnxruntime's quantisation tool does the same).
 */
export function uint8Quantization(range: ActivationRange): { scale: number; zeroPoint: number } {
  const min = Math.min(0, range.min);
  const max = Math.max(0, range.max);
  if (!(max > min)) return { scale: 1, zeroPoint: 0 };
  const scale = (max - min) / 255;
  return { scale, zeroPoint: Math.max(0, Math.min(255, Math.round(-min / scale))) };
}

/** The per-tensor range of an input whose channels are divided by `scales` (exact: every s_j > 0). */
export function tensorRange(channels: ChannelRanges, scales?: Float32Array): ActivationRange {
  let min = Infinity;
  let max = -Infinity;
  for (let j = 0; j < channels.min.length; j++) {
    const s = scales ? scales[j]! : 1;
    min = Math.min(min, channels.min[j]! / s);
    max = Math.max(max, channels.max[j]! / s);
  }
  return { min, max };
}

/** Bounds on a smoothing scale, so a dead channel (all zeros) or a zero weight column cannot blow it up. */
const MIN_SCALE = 1e-5;
const MAX_SCALE = 1e5;

/**
 * SmoothQuant's scales for a Linear `[out, in]` (PyTorch layout) and the channel ranges of its input:
 * s_j = max|X_j|^α / max_o|W[o, j]|^(1−α), clamped.
 */
export function smoothingScales(channels: ChannelRanges, weight: Float32Array, out: number, inFeatures: number, alpha: number): Float32Array {
  if (channels.min.length !== inFeatures) throw new Error(`smoothing: ${channels.min.length} calibrated channels for a Linear with ${inFeatures} inputs`);
  const weightMax = new Float32Array(inFeatures);
  for (let o = 0; o < out; o++) {
    const row = o * inFeatures;
    for (let j = 0; j < inFeatures; j++) weightMax[j] = Math.max(weightMax[j]!, Math.abs(weight[row + j]!));
  }
  const scales = new Float32Array(inFeatures);
  for (let j = 0; j < inFeatures; j++) {
    const x = Math.max(Math.abs(channels.min[j]!), Math.abs(channels.max[j]!));
    const s = x > 0 && weightMax[j]! > 0 ? x ** alpha / weightMax[j]! ** (1 - alpha) : 1;
    scales[j] = Math.min(MAX_SCALE, Math.max(MIN_SCALE, s));
  }
  return scales;
}

/** `weight[o, j] *= scales[j]` for a Linear `[out, in]`, in place. */
export function scaleInputColumns(weight: Float32Array, scales: Float32Array, out: number, inFeatures: number): void {
  for (let o = 0; o < out; o++) for (let j = 0; j < inFeatures; j++) weight[o * inFeatures + j]! *= scales[j]!;
}

/** `values[offset + j] /= scales[j]` for j < scales.length, in place (LayerNorm γ and β, a producer's rows). */
export function divideChannels(values: Float32Array, scales: Float32Array, offset = 0, stride = 1, rows = 1): void {
  for (let r = 0; r < rows; r++) for (let j = 0; j < scales.length; j++) values[(offset + j) * stride + r]! /= scales[j]!;
}
