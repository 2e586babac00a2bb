/**
 * `lare-roi`: CLaRE's RoI branch (the seed's "Enhancement 2", shared/reference/methods.md §8.2) done right:
 * torchvision-exact `roi_align` (aligned, bilinear, adaptive sampling) of the patch-token map over the face
 * boxes **scaled to the feature stride** (`gridSize / imageSize`; CLaRE left `spatial_scale` at 1.0, so its
 * boxes in pixels sampled far outside the 16×16 map), averaged over the output bins (CLaRE's GAP), then the
 * mean over the image's regions (CLaRE) or their concatenation. A region with an empty box (x2 ≤ x1 or y2 ≤ y1:
 * the loader's placeholder for a missing region) is left out of the mean; an image with none gives zeros, as
 * CLaRE. No trainable weights: the fuser learns what to do with the features.
 */
import { configToken, inject, injectable, roiAlignBoxWeights, tf, TOKENS, type Encoder, type EnhancerInput, type FeatureEnhancer } from '@dfd/core';
import type { LareRoiConfig } from './config.js';
import { patchTokensOf } from './egre.js';

@injectable()
export class LareRoiEnhancer implements FeatureEnhancer {
  readonly name = 'lare-roi';
  readonly requires: string[] = [];
  readonly needsBoxes = true;
  readonly imageOptions = { patchTokens: true };
  readonly outputDim: number;
  readonly width: number;
  readonly grid: number;

  constructor(
    @inject(configToken('enhancer')) readonly config: LareRoiConfig,
    @inject(TOKENS.Encoder) encoder: Encoder,
  ) {
    this.width = encoder.info.visionWidth;
    this.grid = encoder.info.gridSize;
    this.outputDim = config.aggregate === 'mean' ? this.width : config.regions * this.width;
  }

  trainableVariables(): Record<string, tf.Variable> {
    return {};
  }

  enhance(input: EnhancerInput): tf.Tensor2D {
    return tf.tidy(() => {
      const tokens = patchTokensOf(input, 'lare-roi', this.width, this.grid); // [B, N, C]
      const weights = roiPoolingMatrix(input, this.config, this.grid); // [B, rows, N]
      const pooled = tf.matMul(weights, tokens); // [B, rows, C]
      return pooled.reshape([tokens.shape[0], this.outputDim]) as tf.Tensor2D;
    });
  }

  dispose(): void {}
}

/**
 * The `[B, rows, h·w]` matrix taking patch tokens to region features: one row per region (`concat`) or one
 * row averaging the present regions (`mean`) — RoI Align then the bin mean, folded into one linear map.
 */
export function roiPoolingMatrix(input: Pick<EnhancerInput, 'boxes' | 'imageSize'>, config: LareRoiConfig, grid: number): tf.Tensor3D {
  const boxes = input.boxes;
  if (!boxes) throw new Error('lare-roi: the batch has no face boxes; the dataset must give samples boxes (DF40: landmarks or the template)');
  const [batch, regions] = boxes.shape;
  if (regions !== config.regions) {
    throw new Error(`lare-roi: the batch has ${regions} regions per image but the config says regions: ${config.regions}; set regions to ${regions}`);
  }
  const values = boxes.dataSync();
  const area = grid * grid;
  const rows = config.aggregate === 'mean' ? 1 : regions;
  const out = new Float32Array(batch * rows * area);
  const options = { outputSize: [config.outputSize, config.outputSize] as [number, number], spatialScale: grid / input.imageSize, samplingRatio: config.samplingRatio, aligned: true, pool: 'mean' as const };
  for (let b = 0; b < batch; b++) {
    const present: number[] = [];
    for (let r = 0; r < regions; r++) {
      const k = (b * regions + r) * 4;
      if (values[k + 2]! > values[k]! && values[k + 3]! > values[k + 1]!) present.push(r);
    }
    for (const r of present) {
      const row = roiAlignBoxWeights(values.subarray((b * regions + r) * 4, (b * regions + r) * 4 + 4), grid, grid, options);
      const target = config.aggregate === 'mean' ? b : b * regions + r;
      const scale = config.aggregate === 'mean' ? 1 / present.length : 1;
      for (let i = 0; i < area; i++) out[target * area + i]! += row[i]! * scale;
    }
  }
  return tf.tensor3d(out, [batch, rows, area]);
}
