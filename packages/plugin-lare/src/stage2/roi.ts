/**
 * `lare-roi`: CLaRE's RoI branch (the seed's "Enhancement 2", shared/reference/methods.md §8.2) done right:
 * torchvision-exact `roi_align` (aligned, bilinear, adaptive sampling) of the patch-token map over the face
 * boxes **scaled to the feature stride** (`gridSize / imageSize`; CLaRE left `spatial_scale` at 1.0, so its
 * boxes in pixels sampled far outside the 16×16 map), averaged over the output bins (CLaRE's GAP), then the
 * mean over the image's regions (CLaRE) or their concatenation. A region with an empty box (x2 ≤ x1 or y2 ≤ y1:
 * the loader's placeholder for a missing region) is left out of the mean; an image with none gives zeros, as
 * CLaRE. No trainable weights: the fuser learns what to do with the features.
 */
import { configToken, inject, injectable, regionPoolingWeights, tf, TOKENS, type Encoder, type EnhancerInput, type FeatureEnhancer } from '@dfd/core';
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
      if (!input.boxes) throw new Error('lare-roi: the batch has no face boxes; the dataset must give samples boxes (DF40: landmarks or the template)');
      const weights = regionPoolingWeights(input.boxes, this.config.regions, this.grid, this.grid, {
        outputSize: this.config.outputSize,
        samplingRatio: this.config.samplingRatio,
        spatialScale: this.grid / input.imageSize,
        aggregate: this.config.aggregate,
        who: 'lare-roi',
      }); // [B, rows, N]
      const pooled = tf.matMul(weights, tokens); // [B, rows, C]
      return pooled.reshape([tokens.shape[0], this.outputDim]) as tf.Tensor2D;
    });
  }

  dispose(): void {}
}

