/**
 * `roi`: face-region features fused with the global feature. Each region's feature is RoI Align (torchvision-
 * exact, aligned, boxes scaled to the patch grid by `gridSize / imageSize`) of the patch tokens, averaged over
 * the bins, then a learned Linear to the embedding width; the image embedding attends over the present
 * regions (`softmax(r · image / √D)`, absent = zero boxes left out) and the attended region feature is appended:
 * `[image, e_1, …, e_n, region]`. Unlike `lare-roi` (a fixed mean), which regions count is learned.
 */
import { configToken, inject, injectable, Linear, ParameterSet, regionPoolingWeights, boxPresent, tf, TOKENS, type Fuser, type FusionDims, type FusionInput, type Rng } from '@dfd/core';
import { checkInputs, patchTokens } from './common.js';
import type { RoiFuserConfig } from './config.js';

@injectable()
export class RoiFuser implements Fuser {
  readonly imageOptions = { patchTokens: true };
  readonly needsBoxes = true;
  private readonly params = new ParameterSet('fusion_roi');
  private projection?: Linear;
  private dims?: FusionDims;

  constructor(
    @inject(configToken('fuser')) readonly config: RoiFuserConfig,
    @inject(TOKENS.Rng) private readonly rng: Rng,
  ) {}

  build(dims: FusionDims): number {
    this.dims = dims;
    this.projection = new Linear(this.params, 'region_proj', dims.visionWidth, dims.image, this.rng.fork('fusion.roi'));
    return 2 * dims.image + dims.enhanced.reduce((sum, e) => sum + e.dim, 0);
  }

  trainableVariables(): Record<string, tf.Variable> {
    return this.params.all();
  }

  fuse(input: FusionInput): tf.Tensor2D {
    const dims = checkInputs('roi fuser', this.dims, input);
    if (!input.boxes) throw new Error('roi fuser: the batch has no face boxes; the dataset must give samples boxes (DF40: landmarks or the template)');
    const boxes = input.boxes;
    const { regions } = this.config;
    return tf.tidy(() => {
      const patches = patchTokens('roi fuser', input, dims);
      const grid = Math.round(Math.sqrt(patches.shape[1]));
      const pooling = regionPoolingWeights(boxes, regions, grid, grid, {
        outputSize: this.config.outputSize,
        samplingRatio: this.config.samplingRatio,
        spatialScale: grid / input.imageSize,
        aggregate: 'concat',
        who: 'roi fuser',
      });
      const regionFeatures = this.projection!.apply(tf.matMul(pooling, patches)); // [B, R, D]
      const values = boxes.dataSync();
      const mask = Float32Array.from({ length: values.length / 4 }, (_, k) => (boxPresent(values, k) ? 0 : -1e9));
      const b = patches.shape[0];
      const logits = tf.add(tf.div(tf.sum(tf.mul(regionFeatures, tf.expandDims(input.image, 1)), 2), Math.sqrt(dims.image)), tf.tensor2d(mask, [b, regions]));
      // An image without any region: zero region feature (all weights masked), as CLaRE's zero RoI feature.
      const anyPresent = tf.tensor2d(Float32Array.from({ length: b }, (_, i) => (mask.subarray(i * regions, (i + 1) * regions).some((m) => m === 0) ? 1 : 0)), [b, 1]);
      const attended = tf.mul(tf.sum(tf.mul(tf.expandDims(tf.softmax(logits), 2), regionFeatures), 1), anyPresent);
      return tf.concat([input.image, ...input.enhanced.map((e) => e.features), attended], 1) as tf.Tensor2D;
    });
  }

  dispose(): void {
    this.params.dispose();
  }
}
