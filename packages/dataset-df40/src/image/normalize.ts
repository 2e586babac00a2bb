/**
 * Normalisation presets and the HWC uint8 → CHW float32 conversion (with the horizontal flip folded in,
 * which is exact and cheaper than a sharp pass).
 */
export const NORMALIZATION = {
  /** OpenAI CLIP (shared/reference/methods.md §1.2). */
  clip: { mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711] },
  /** ImageNet (LaRE stage 2, CLIPping's non-CLIP transforms). */
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  /** DF40/DeepfakeBench and CLaRE: mean = std = 0.5. */
  half: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
  /** Plain [0, 1]. */
  none: { mean: [0, 0, 0], std: [1, 1, 1] },
} as const;

export type NormalizationName = keyof typeof NORMALIZATION;
export interface Normalization {
  mean: readonly number[];
  std: readonly number[];
}

export function normalizationOf(value: NormalizationName | Normalization): Normalization {
  return typeof value === 'string' ? NORMALIZATION[value] : value;
}

/**
 * Writes `(pixel/255 − mean)/std` as CHW into `out` at `offset` (floats). `channels` may be 1 (grey,
 * replicated), 3, or 4 (alpha ignored). With `flip` the columns are mirrored.
 */
export function hwcToChw(
  data: Uint8Array,
  width: number,
  height: number,
  channels: number,
  norm: Normalization,
  flip = false,
  out: Float32Array = new Float32Array(3 * width * height),
  offset = 0,
): Float32Array {
  const plane = width * height;
  const scale = [0, 1, 2].map((c) => 1 / (255 * norm.std[c]!));
  const shift = [0, 1, 2].map((c) => norm.mean[c]! / norm.std[c]!);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const src = (row + (flip ? width - 1 - x : x)) * channels;
      const dst = offset + row + x;
      for (let c = 0; c < 3; c++) {
        const value = data[src + (channels >= 3 ? c : 0)]!;
        out[dst + c * plane] = value * scale[c]! - shift[c]!;
      }
    }
  }
  return out;
}
