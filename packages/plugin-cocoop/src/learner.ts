/**
 * CoCoOp's conditional prompt learner (shared/reference/methods.md §3.1): the CoOp context plus a
 * Meta-Net bias π(f) computed from each image's L2-normalised embedding and added to every context token,
 * so each image gets its own n_cls prompts: `[SOS][ctx + π_i][class…][.][EOS]`. The text tower runs on all
 * B × n_cls sequences of a batch in one call (or image by image with `textPass: 'loop'`).
 */
import { configToken, inject, injectable, tf, TOKENS, uniqueVariableName, type Encoder, type PromptContext, type PromptLearner, type Rng } from '@dfd/core';
import { PromptTemplate } from '@dfd/plugin-coop';
import type { CoCoOpConfig } from './config.js';
import { MetaNet } from './meta-net.js';

export class CoCoOpInputError extends Error {
  override name = 'CoCoOpInputError';
}

@injectable()
export class CoCoOpPromptLearner implements PromptLearner {
  readonly conditional = true;
  readonly template: PromptTemplate;
  readonly ctx: tf.Variable;
  /** Rebuilt by `bindImageWidth` when the detector conditions on a fused feature wider than the embedding. */
  metaNet: MetaNet;
  private readonly metaNetRng: Rng;

  constructor(
    @inject(configToken('promptLearner')) readonly config: CoCoOpConfig,
    @inject(TOKENS.Encoder) encoder: Encoder,
    @inject(TOKENS.Rng) rng: Rng,
  ) {
    this.template = new PromptTemplate(encoder, config);
    const { nCtx, width } = this.template;
    const init = this.template.initContext
      ? this.template.initContext.clone()
      : tf.tensor2d(rng.fork('cocoop.ctx').normalArray(nCtx * width, 0, config.initStd), [nCtx, width]);
    this.ctx = tf.variable(init, true, uniqueVariableName('cocoop.ctx'));
    // Forks are pure functions of (parent state, label): a rebuilt meta-net draws from the same stream.
    this.metaNetRng = rng.fork('cocoop.meta_net');
    this.metaNet = this.buildMetaNet(encoder.info.embedDim, 'embedDim');
  }

  /** Meta-net vis → vis // reduction → ctx_dim for image features `vis` wide. */
  private buildMetaNet(visDim: number, what: string): MetaNet {
    const hidden = Math.floor(visDim / this.config.metaNetReduction);
    if (hidden < 1) {
      throw new CoCoOpInputError(`meta-net hidden width is ${what} ${visDim} // ${this.config.metaNetReduction} = 0: lower metaNetReduction`);
    }
    return new MetaNet(visDim, hidden, this.template.width, this.metaNetRng);
  }

  /**
   * Conditions on image features `width` wide: CLaRE's CoCoOp takes the L2-normalised fused feature (3072 with
   * lare-egre + concat), so its meta-net is 3072 → 192 → ctx_dim (shared/reference/methods.md §8.2).
   */
  bindImageWidth(width: number): void {
    if (width === this.metaNet.inputDim) return;
    const rebuilt = this.buildMetaNet(width, 'the image feature width');
    this.metaNet.dispose();
    this.metaNet = rebuilt;
  }

  get classNames(): string[] {
    return this.template.classNames;
  }

  trainableVariables(): Record<string, tf.Variable> {
    return { ctx: this.ctx, ...this.metaNet.variables() };
  }

  /** `[B, nCls, nCtx, D]`: ctx + π_i on every context token, repeated for each class. */
  private conditionedContext(imageFeatures: tf.Tensor2D): tf.Tensor4D {
    const { nCls, nCtx, width } = this.template;
    const batch = imageFeatures.shape[0];
    const bias = this.metaNet.apply(imageFeatures); // [B, D]
    const shifted = tf.add(this.ctx.reshape([1, nCtx, width]), bias.reshape([batch, 1, width])); // [B, nCtx, D]
    return tf.tile(shifted.reshape([batch, 1, nCtx, width]), [1, nCls, 1, 1]) as tf.Tensor4D;
  }

  /** `[B, nCls, E]` text features, one class set per image (not normalised). */
  textFeatures(context: PromptContext): tf.Tensor3D {
    const image = context.imageFeatures;
    if (!image) {
      throw new CoCoOpInputError('CoCoOp needs the L2-normalised image features (PromptContext.imageFeatures): use it with the clip-prompt detector');
    }
    if (image.shape[1] !== this.metaNet.inputDim) {
      throw new CoCoOpInputError(
        `CoCoOp's meta-net takes image features ${this.metaNet.inputDim} wide but got ${image.shape[1]}: call bindImageWidth(${image.shape[1]}) at assembly (the clip-prompt detector does)`,
      );
    }
    return this.config.textPass === 'batched' ? this.batchedPass(context.encoder, image) : this.loopPass(context.encoder, image);
  }

  /** All B × n_cls sequences in one text-tower call. */
  batchedPass(encoder: Encoder, imageFeatures: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const batch = imageFeatures.shape[0];
      const { embeddings, eotIndices } = this.template.assemble(this.conditionedContext(imageFeatures), 'end');
      const text = encoder.encodeText({ embeddings, eotIndices });
      return text.reshape([batch, this.template.nCls, text.shape[1]]) as tf.Tensor3D;
    });
  }

  /** The reference loop: one text-tower call of n_cls sequences per image. */
  loopPass(encoder: Encoder, imageFeatures: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const batch = imageFeatures.shape[0];
      const perImage = Array.from({ length: batch }, (_, i) => {
        const one = imageFeatures.slice([i, 0], [1, imageFeatures.shape[1]]) as tf.Tensor2D;
        const { embeddings, eotIndices } = this.template.assemble(this.conditionedContext(one), 'end');
        return encoder.encodeText({ embeddings, eotIndices });
      });
      return tf.stack(perImage, 0) as tf.Tensor3D;
    });
  }

  dispose(): void {
    this.ctx.dispose();
    this.metaNet.dispose();
    this.template.dispose();
  }
}
