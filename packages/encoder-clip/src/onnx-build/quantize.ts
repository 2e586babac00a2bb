/**
 * Weight layouts for the graph: a PyTorch `Linear` weight `[out, in]` becomes MatMul's `B [in, out]`, in
 * float32 or as symmetric per-output-channel int8 (scale = max |w| / 127 per column, zero point 0), the
 * weight format of onnxruntime's `DynamicQuantizeMatMul` (activations are quantised to uint8 at run time,
 * per tensor, by the kernel itself).
 */

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
    const scale = max > 0 ? max / 127 : 1;
    scales[o] = scale;
    for (let i = 0; i < inFeatures; i++) {
      // Math.round rounds .5 up, numpy rounds half to even; the difference is one step on exact ties only.
      values[i * out + o] = Math.max(-127, Math.min(127, Math.round(weight[row + i]! / scale)));
    }
  }
  return { values, scales };
}
