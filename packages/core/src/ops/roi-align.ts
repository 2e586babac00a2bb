/**
 * `roiAlign`: torchvision's `ops.roi_align` (bilinear sampling, `aligned`, `sampling_ratio` with the adaptive
 * `ceil(roi_size / output_size)` grid when ≤ 0) on an NHWC feature map, exact to torchvision's CPU kernel.
 *
 * How: the sample positions depend only on the boxes, which carry no gradient in torchvision either. So the
 * boxes are read on the CPU, every output bin becomes one row of an interpolation matrix over the `H·W`
 * feature positions (bilinear weights of each sample point, divided by the sample count), and the output is a
 * batched matMul of that matrix with the features — one dense kernel on any backend, with the gradient with
 * respect to the features given by tfjs' matMul gradient. Averaging the bins of a region (global average pooling
 * of the aligned region, as RoI heads do) is the mean of its rows, so `pool: 'mean'` costs one row per region.
 *
 * The matrix is dense (`R·oh·ow × H·W` floats per image): cheap on patch grids (16×16) and a few face regions,
 * not meant for detection-sized maps with hundreds of RoIs (use `pool: 'mean'`, one row per box, there).
 *
 * Boxes are `[B, R, 4]` (x1, y1, x2, y2) per image: the `R` regions of image `b` are pooled from image `b`
 * (torchvision's `[K, 5]` rois with batch index, with a fixed number of regions per image).
 */
import * as tf from '@tensorflow/tfjs';

export interface RoiAlignOptions {
  /** Output bins per side: `[height, width]` or one number for both. */
  outputSize: number | [number, number];
  /** Multiplies box coordinates into feature-map coordinates, e.g. `gridSize / imageSize`. Default 1. */
  spatialScale?: number;
  /** Sample points per bin side; ≤ 0 = adaptive `ceil(roi_size / output_size)` (torchvision's default -1). */
  samplingRatio?: number;
  /** Shift boxes by −0.5 pixel so pixel centres align (torchvision's `aligned=True`). Default true. */
  aligned?: boolean;
  /** `none`: `[B, R, oh, ow, C]` as torchvision; `mean`: the mean over the bins, `[B, R, C]`. Default none. */
  pool?: 'none' | 'mean';
}

/** Bilinear weights of one sample point, accumulated into `row` (torchvision's `bilinear_interpolate`). */
function addBilinear(row: Float64Array, height: number, width: number, yIn: number, xIn: number, scale: number): void {
  if (yIn < -1 || yIn > height || xIn < -1 || xIn > width) return; // outside: contributes 0
  let y = yIn <= 0 ? 0 : yIn;
  let x = xIn <= 0 ? 0 : xIn;
  let yLow = Math.floor(y);
  let xLow = Math.floor(x);
  let yHigh: number;
  let xHigh: number;
  if (yLow >= height - 1) {
    yHigh = yLow = height - 1;
    y = yLow;
  } else yHigh = yLow + 1;
  if (xLow >= width - 1) {
    xHigh = xLow = width - 1;
    x = xLow;
  } else xHigh = xLow + 1;
  const ly = y - yLow;
  const lx = x - xLow;
  const hy = 1 - ly;
  const hx = 1 - lx;
  row[yLow * width + xLow]! += hy * hx * scale;
  row[yLow * width + xHigh]! += hy * lx * scale;
  row[yHigh * width + xLow]! += ly * hx * scale;
  row[yHigh * width + xHigh]! += ly * lx * scale;
}

/**
 * The interpolation matrix of one box: `[oh·ow, height·width]` rows (or one averaged row with `mean`), in
 * float64 so the sums match torchvision's float accumulation to rounding.
 */
export function roiAlignBoxWeights(
  box: ArrayLike<number>,
  height: number,
  width: number,
  options: Required<Omit<RoiAlignOptions, 'outputSize'>> & { outputSize: [number, number] },
): Float64Array {
  const [pooledH, pooledW] = options.outputSize;
  const offset = options.aligned ? 0.5 : 0;
  const startW = box[0]! * options.spatialScale - offset;
  const startH = box[1]! * options.spatialScale - offset;
  let roiW = box[2]! * options.spatialScale - offset - startW;
  let roiH = box[3]! * options.spatialScale - offset - startH;
  if (!options.aligned) {
    roiW = Math.max(roiW, 1);
    roiH = Math.max(roiH, 1);
  }
  const binH = roiH / pooledH;
  const binW = roiW / pooledW;
  const gridH = options.samplingRatio > 0 ? options.samplingRatio : Math.ceil(roiH / pooledH);
  const gridW = options.samplingRatio > 0 ? options.samplingRatio : Math.ceil(roiW / pooledW);
  const count = Math.max(gridH * gridW, 1);
  const area = height * width;
  const mean = options.pool === 'mean';
  const rows = new Float64Array((mean ? 1 : pooledH * pooledW) * area);
  const binScale = mean ? 1 / (count * pooledH * pooledW) : 1 / count;
  for (let ph = 0; ph < pooledH; ph++) {
    for (let pw = 0; pw < pooledW; pw++) {
      const row = mean ? rows : rows.subarray((ph * pooledW + pw) * area, (ph * pooledW + pw + 1) * area);
      for (let iy = 0; iy < gridH; iy++) {
        const y = startH + ph * binH + ((iy + 0.5) * binH) / gridH;
        for (let ix = 0; ix < gridW; ix++) {
          const x = startW + pw * binW + ((ix + 0.5) * binW) / gridW;
          addBilinear(row, height, width, y, x, binScale);
        }
      }
    }
  }
  return rows;
}

function resolveOptions(options: RoiAlignOptions) {
  const size = options.outputSize;
  const outputSize: [number, number] = typeof size === 'number' ? [size, size] : size;
  if (!outputSize.every((s) => Number.isInteger(s) && s > 0)) {
    throw new Error(`roiAlign: outputSize must be positive integers, got ${JSON.stringify(size)}`);
  }
  return {
    outputSize,
    spatialScale: options.spatialScale ?? 1,
    samplingRatio: options.samplingRatio ?? -1,
    aligned: options.aligned ?? true,
    pool: options.pool ?? 'none',
  };
}

/**
 * The batched interpolation matrix `[B, R·rowsPerBox, H·W]` for boxes `[B, R, 4]` (plain numbers, row-major),
 * as float32. Exposed so callers can reuse it across several feature maps of the same geometry.
 */
export function roiAlignWeights(
  boxes: ArrayLike<number>,
  batch: number,
  regions: number,
  height: number,
  width: number,
  options: RoiAlignOptions,
): tf.Tensor3D {
  const resolved = resolveOptions(options);
  const rowsPerBox = resolved.pool === 'mean' ? 1 : resolved.outputSize[0] * resolved.outputSize[1];
  const area = height * width;
  const out = new Float32Array(batch * regions * rowsPerBox * area);
  for (let k = 0; k < batch * regions; k++) {
    const box = Array.from({ length: 4 }, (_, i) => boxes[k * 4 + i]!);
    if (!box.every(Number.isFinite)) throw new Error(`roiAlign: box ${k} (image ${Math.floor(k / regions)}) is not finite: [${box.join(', ')}]`);
    out.set(roiAlignBoxWeights(box, height, width, resolved), k * rowsPerBox * area);
  }
  return tf.tensor3d(out, [batch, regions * rowsPerBox, area]);
}

/**
 * RoI Align of `features` `[B, H, W, C]` (NHWC) over `boxes` `[B, R, 4]` (x1, y1, x2, y2 in the coordinates
 * that `spatialScale` maps onto the feature grid). Returns `[B, R, oh, ow, C]`, or `[B, R, C]` with
 * `pool: 'mean'`. Differentiable with respect to `features` (not the boxes, as in torchvision).
 */
export function roiAlign(features: tf.Tensor4D, boxes: tf.Tensor3D | ArrayLike<number>, options: RoiAlignOptions): tf.Tensor {
  const [batch, height, width, channels] = features.shape;
  let values: ArrayLike<number>;
  let regions: number;
  if (boxes instanceof tf.Tensor) {
    if (boxes.rank !== 3 || boxes.shape[0] !== batch || boxes.shape[2] !== 4) {
      throw new Error(`roiAlign: boxes must be [${batch}, R, 4] for features [${features.shape.join(', ')}], got [${boxes.shape.join(', ')}]`);
    }
    regions = boxes.shape[1];
    values = boxes.dataSync();
  } else {
    values = boxes;
    regions = values.length / (4 * batch);
    if (!Number.isInteger(regions)) throw new Error(`roiAlign: ${values.length} box numbers do not make [${batch}, R, 4]`);
  }
  const resolved = resolveOptions(options);
  return tf.tidy(() => {
    const weights = roiAlignWeights(values, batch, regions, height, width, resolved);
    const pooled = tf.matMul(weights, features.reshape([batch, height * width, channels]));
    if (resolved.pool === 'mean') return pooled.reshape([batch, regions, channels]);
    return pooled.reshape([batch, regions, resolved.outputSize[0], resolved.outputSize[1], channels]);
  });
}

export interface RegionPoolingOptions {
  outputSize: number;
  spatialScale: number;
  samplingRatio?: number;
  /** `mean`: one row per image, the mean over its present regions; `concat`: one row per region. */
  aggregate: 'mean' | 'concat';
  /** Names the caller in error messages. */
  who?: string;
}

/** A box is present when it has area (x2 > x1 and y2 > y1); loaders use zero boxes for missing regions. */
export function boxPresent(values: ArrayLike<number>, k: number): boolean {
  return values[k * 4 + 2]! > values[k * 4]! && values[k * 4 + 3]! > values[k * 4 + 1]!;
}

/**
 * The `[B, rows, H·W]` matrix taking a flattened `[B, H·W, C]` feature map to region features: RoI Align
 * (aligned, bilinear) over each box followed by the mean over its bins, then either one row per region
 * (`concat`; an absent region's row is zero) or one row per image averaging its present regions (`mean`; zero
 * when none is present). Boxes `[B, R, 4]` must have `expectedRegions` regions.
 */
export function regionPoolingWeights(boxes: tf.Tensor3D, expectedRegions: number, height: number, width: number, options: RegionPoolingOptions): tf.Tensor3D {
  const who = options.who ?? 'regionPoolingWeights';
  const [batch, regions] = boxes.shape;
  if (regions !== expectedRegions || boxes.shape[2] !== 4) {
    throw new Error(`${who}: the batch has boxes [${boxes.shape.join(', ')}] but the config says regions: ${expectedRegions}; set regions to ${regions}`);
  }
  const values = boxes.dataSync();
  const resolved = resolveOptions({ outputSize: options.outputSize, spatialScale: options.spatialScale, samplingRatio: options.samplingRatio, aligned: true, pool: 'mean' });
  const area = height * width;
  const mean = options.aggregate === 'mean';
  const out = new Float32Array(batch * (mean ? 1 : regions) * area);
  for (let b = 0; b < batch; b++) {
    const present = Array.from({ length: regions }, (_, r) => b * regions + r).filter((k) => boxPresent(values, k));
    for (const k of present) {
      const box = Array.from(values.subarray(k * 4, k * 4 + 4));
      if (!box.every(Number.isFinite)) throw new Error(`${who}: box ${k % regions} of image ${b} is not finite: [${box.join(', ')}]`);
      const row = roiAlignBoxWeights(box, height, width, resolved);
      const offset = (mean ? b : k) * area;
      const scale = mean ? 1 / present.length : 1;
      for (let i = 0; i < area; i++) out[offset + i]! += row[i]! * scale;
    }
  }
  return tf.tensor3d(out, [batch, mean ? 1 : regions, area]);
}
