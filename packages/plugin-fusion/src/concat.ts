/**
 * `concat`: `[proj(image), e_1, …, e_n]`. With `imageProjection: 'visionWidth'` and `lare-egre` (`[s, c]`) this
 * is CLaRE's FusionCLIP image side (the `fusion-clip` preset): `concat[image_proj(CLS), EGSR, EGCR]`, 3072 wide
 * for ViT-L/14; the `clip-prompt` detector then projects the text features to that width.
 */
import { configToken, inject, injectable, Linear, ParameterSet, tf, TOKENS, type Fuser, type FusionDims, type FusionInput, type Rng } from '@dfd/core';
import { checkInputs } from './common.js';
import type { ConcatConfig } from './config.js';

@injectable()
export class ConcatFuser implements Fuser {
  private readonly params = new ParameterSet('fusion_concat');
  private projection?: Linear;
  private dims?: FusionDims;

  constructor(
    @inject(configToken('fuser')) readonly config: ConcatConfig,
    @inject(TOKENS.Rng) private readonly rng: Rng,
  ) {}

  build(dims: FusionDims): number {
    this.dims = dims;
    const p = this.config.imageProjection;
    const imageWidth = p === 'none' ? dims.image : p === 'visionWidth' ? dims.visionWidth : p;
    if (p !== 'none') this.projection = new Linear(this.params, 'image_proj', dims.image, imageWidth, this.rng.fork('fusion.concat'));
    return imageWidth + dims.enhanced.reduce((sum, e) => sum + e.dim, 0);
  }

  trainableVariables(): Record<string, tf.Variable> {
    return this.params.all();
  }

  fuse(input: FusionInput): tf.Tensor2D {
    checkInputs('concat fuser', this.dims, input);
    return tf.tidy(() => {
      const image = this.projection ? this.projection.apply(input.image) : input.image;
      return tf.concat([image, ...input.enhanced.map((e) => e.features)], 1) as tf.Tensor2D;
    });
  }

  dispose(): void {
    this.params.dispose();
  }
}
