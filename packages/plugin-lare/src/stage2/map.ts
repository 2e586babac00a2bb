/**
 * LaRE-map helpers shared by the stage-2 enhancers: fetching and checking the map from the batch extras, and
 * PyTorch's `adaptive_avg_pool2d` (bins `[floor(i·in/out), ceil((i+1)·in/out))`) as one matMul.
 */
import { tf } from '@dfd/core';

/** The `[B, C, H, W]` map under `key`, with a message naming the fix when it is absent or misshapen. */
export function lareMap(extras: Record<string, tf.Tensor>, key: string, channels: number, who: string): tf.Tensor4D {
  const map = extras[key];
  if (!map) {
    const keys = Object.keys(extras);
    throw new Error(
      `${who}: the batch has no '${key}' extra (has: ${keys.length ? keys.join(', ') : 'none'}). ` +
        `Give the dataset the LaRE maps (samples' extras.${key}, e.g. from \`dfd lare extract\`) or set mapKey`,
    );
  }
  if (map.rank !== 4 || map.shape[1] !== channels) {
    throw new Error(`${who}: extras.${key} must be [B, ${channels}, H, W] (NCHW as stored), got [${map.shape.join(', ')}]`);
  }
  return map as tf.Tensor4D;
}

/** `[out, in]` averaging matrix of adaptive average pooling along one axis. */
export function adaptivePoolMatrix(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  for (let i = 0; i < outSize; i++) {
    const start = Math.floor((i * inSize) / outSize);
    const end = Math.ceil(((i + 1) * inSize) / outSize);
    for (let j = start; j < end; j++) m[i * inSize + j] = 1 / (end - start);
  }
  return m;
}

/**
 * `[H·W, out·out]`: column `i·out + j` averages bin (i, j), so `map.reshape([B·C, H·W]) @ K` is
 * `adaptive_avg_pool2d(map, out)` flattened row-major — the token order of a flattened patch grid.
 */
export function adaptivePoolKernel(height: number, width: number, out: number): tf.Tensor2D {
  const ph = adaptivePoolMatrix(height, out);
  const pw = adaptivePoolMatrix(width, out);
  const k = new Float32Array(height * width * out * out);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let i = 0; i < out; i++) {
        const wy = ph[i * height + y]!;
        if (!wy) continue;
        for (let j = 0; j < out; j++) k[(y * width + x) * out * out + i * out + j] = wy * pw[j * width + x]!;
      }
    }
  }
  return tf.tensor2d(k, [height * width, out * out]);
}

/** Caches pooling kernels by geometry (maps of one run share a size; a kernel is made once). */
export class AdaptivePool {
  private readonly kernels = new Map<string, tf.Tensor2D>();

  constructor(readonly out: number) {}

  /** `[B, C, H, W]` → `[B, C, out·out]` (row-major bins). */
  apply(map: tf.Tensor4D): tf.Tensor3D {
    const [b, c, h, w] = map.shape;
    const key = `${h}x${w}`;
    let kernel = this.kernels.get(key);
    if (!kernel) {
      kernel = tf.keep(adaptivePoolKernel(h, w, this.out));
      this.kernels.set(key, kernel);
    }
    return tf.matMul(map.reshape([b * c, h * w]), kernel).reshape([b, c, this.out * this.out]) as tf.Tensor3D;
  }

  dispose(): void {
    for (const k of this.kernels.values()) k.dispose();
    this.kernels.clear();
  }
}
