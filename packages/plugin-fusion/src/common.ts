/** Helpers shared by the fusers: describing and checking the inputs they were built for. */
import type { FusionDims, FusionInput, tf } from '@dfd/core';

export function describeDims(dims: FusionDims): string {
  return [`image: ${dims.image}`, ...dims.enhanced.map((e) => `${e.name}: ${e.dim}`)].join(', ');
}

/** Throws when `fuse` gets inputs other than those `build` saw (names, order, widths), or before `build`. */
export function checkInputs(who: string, dims: FusionDims | undefined, input: FusionInput): FusionDims {
  if (!dims) throw new Error(`${who}: fuse() called before build()`);
  const got = input.enhanced.map((e) => `${e.name}: ${e.features.shape[1]}`);
  const want = dims.enhanced.map((e) => `${e.name}: ${e.dim}`);
  if (input.image.shape[1] !== dims.image || got.join(', ') !== want.join(', ')) {
    throw new Error(`${who}: built for (${describeDims(dims)}) but got (image: ${input.image.shape[1]}, ${got.join(', ')})`);
  }
  return dims;
}

/** `[B, N, C]` patch tokens of the batch, or an error naming the fix. */
export function patchTokens(who: string, input: FusionInput, dims: FusionDims): tf.Tensor3D {
  const tokens = input.imageFeatures.patchTokens;
  if (!tokens) throw new Error(`${who}: the image tower gave no patch tokens (the encoder must support encodeImage({ patchTokens: true }))`);
  const [b, h, w, c] = tokens.shape;
  if (c !== dims.visionWidth) throw new Error(`${who}: patch tokens are ${c} wide but the encoder's vision width is ${dims.visionWidth}`);
  return tokens.reshape([b, h * w, c]) as tf.Tensor3D;
}
