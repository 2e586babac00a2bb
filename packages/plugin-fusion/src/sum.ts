/** `sum`: every input (image and each enhancer) through its own learned Linear to one width, summed. */
import { configToken, inject, injectable, Linear, ParameterSet, tf, TOKENS, type Fuser, type FusionDims, type FusionInput, type Rng } from '@dfd/core';
import { checkInputs } from './common.js';
import type { SumConfig } from './config.js';

@injectable()
export class SumFuser implements Fuser {
  private readonly params = new ParameterSet('fusion_sum');
  private projections: Linear[] = [];
  private dims?: FusionDims;

  constructor(
    @inject(configToken('fuser')) readonly config: SumConfig,
    @inject(TOKENS.Rng) private readonly rng: Rng,
  ) {}

  build(dims: FusionDims): number {
    this.dims = dims;
    const width = this.config.width === 'image' ? dims.image : this.config.width;
    const r = this.rng.fork('fusion.sum');
    this.projections = [
      new Linear(this.params, 'proj.image', dims.image, width, r),
      ...dims.enhanced.map((e, i) => new Linear(this.params, `proj.${i}_${e.name}`, e.dim, width, r)),
    ];
    return width;
  }

  trainableVariables(): Record<string, tf.Variable> {
    return this.params.all();
  }

  fuse(input: FusionInput): tf.Tensor2D {
    checkInputs('sum fuser', this.dims, input);
    return tf.tidy(() => {
      const parts = [input.image, ...input.enhanced.map((e) => e.features)].map((x, i) => this.projections[i]!.apply(x));
      return tf.addN(parts) as tf.Tensor2D;
    });
  }

  dispose(): void {
    this.params.dispose();
  }
}
