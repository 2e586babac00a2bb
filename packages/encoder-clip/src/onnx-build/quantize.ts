/**
 * Weight layouts for the graph: a PyTorch `Linear` weight `[out, in]` becomes MatMul's `B [in, out]`, in
 * float32 or as symmetric per-output-channel int8 (scale = max |w| / INT8_WEIGHT_MAX per column, zero point 0),
 * the weight format of onnxruntime's `DynamicQuantizeMatMul` (activations are quantised to uint8 at run time,
 * per tensor, by the kernel itself).
 */

/**
 * int8 weights use 7 bits, |q| ≤ 63 (onnxruntime's `reduce_range`). On x86 CPUs without VNNI (AVX2 only,
 * like this project's development machine) onnxruntime's uint8 × int8 kernels add pairs of products in
 * int16 (VPMADDUBSW), which saturates when full-range weights meet large activations: 2·255·127 > 32767.
 * Measured on the examples' tiny CLIP (400 mini-DF40 images): the int8 embeddings' min cosine to fp32 was
 * 0.9965 with 8-bit weights and 0.9994 with 7-bit ones (static: 0.9962 → 0.9996). With 7 bits no CPU
 * saturates, so every machine of a cluster computes the same exact integer products from one int8 graph.
 */
export const INT8_WEIGHT_MAX = 63;

/** The symmetric scale of a weight column (or channel) whose largest magnitude is `maxAbs`. */
export function int8WeightScale(maxAbs: number): number {
  return maxAbs > 0 ? maxAbs / INT8_WEIGHT_MAX : 1;
}

/** `w / scale` rounded and clamped to the 7-bit weight range. */
export function quantizeWeightValue(w: number, scale: number): number {
  return Math.max(-INT8_WEIGHT_MAX, Math.min(INT8_WEIGHT_MAX, Math.round(w / scale)));
}

/** `[rows, cols]` row-major → `[cols, rows]` row-major. */
export function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    const from = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[from + c]!;
  }
  return out;
}

export interface QuantizedMatrix {
  /** `[in, out]` int8, row-major. */
  values: Int8Array;
  /** One scale per output column. */
  scales: Float32Array;
}

/** Quantises a Linear weight `[out, in]` to MatMul's int8 `B [in, out]` with per-column scales. */
export function quantizeLinearWeight(weight: Float32Array, out: number, inFeatures: number): QuantizedMatrix {
  const values = new Int8Array(out * inFeatures);
  const scales = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    const row = o * inFeatures;
    let max = 0;
    for (let i = 0; i < inFeatures; i++) max = Math.max(max, Math.abs(weight[row + i]!));
    const scale = int8WeightScale(max);
    scales[o] = scale;
    for (let i = 0; i < inFeatures; i++) {
      // Math.round rounds .5 up, numpy rounds half to even; the difference is one step on exact ties only.
      values[i * out + o] = quantizeWeightValue(weight[row + i]!, scale);
    }
  }
  return { values, scales };
}
