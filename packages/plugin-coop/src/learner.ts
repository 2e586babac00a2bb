/**
 * CoOp's prompt learner (shared/reference/methods.md §2.1): `n_ctx` learned context vectors — generic
 * `[n_ctx, D]` or class-specific `[n_cls, n_ctx, D]`, random N(0, 0.02) or word-initialised — spliced into
 * `"X … X <class>."` at the class-token position. One text pass of n_cls sequences per batch, shared by
 * every image. Only `ctx` is trainable; the encoder stays frozen.
 */
import { configToken, inject, injectable, tf, TOKENS, uniqueVariableName, type Encoder, type PromptContext, type PromptLearner, type Rng } from '@dfd/core';
import type { CoOpConfig } from './config.js';
import { PromptTemplate } from './prompts.js';

@injectable()
export class CoOpPromptLearner implements PromptLearner {
  readonly conditional = false;
  readonly template: PromptTemplate;
  readonly ctx: tf.Variable;
  /** Whether `ctx` is class-specific (`[n_cls, n_ctx, D]`). */
  readonly classSpecific: boolean;

  constructor(
    @inject(configToken('promptLearner')) readonly config: CoOpConfig,
    @inject(TOKENS.Encoder) encoder: Encoder,
    @inject(TOKENS.Rng) rng: Rng,
  ) {
    this.template = new PromptTemplate(encoder, config);
    const { nCtx, width, nCls } = { nCtx: this.template.nCtx, width: this.template.width, nCls: this.template.nCls };
    if (this.template.initContext) {
      // CoOp ignores CSC when the context is word-initialised: one generic context.
      this.classSpecific = false;
      this.ctx = tf.variable(this.template.initContext.clone(), true, uniqueVariableName('coop.ctx'));
    } else {
      this.classSpecific = config.csc;
      const shape = config.csc ? [nCls, nCtx, width] : [nCtx, width];
      const values = rng.fork('coop.ctx').normalArray(shape.reduce((a, b) => a * b, 1), 0, config.initStd);
      this.ctx = tf.variable(tf.tensor(values, shape, 'float32'), true, uniqueVariableName('coop.ctx'));
    }
  }

  get classNames(): string[] {
    return this.template.classNames;
  }

  trainableVariables(): Record<string, tf.Variable> {
    return { ctx: this.ctx };
  }

  /** `[1, nCls, nCtx, D]` context for the template. */
  private contextBlock(): tf.Tensor4D {
    const { nCls, nCtx, width } = this.template;
    if (this.classSpecific) return this.ctx.reshape([1, nCls, nCtx, width]) as tf.Tensor4D;
    return tf.tile(this.ctx.reshape([1, 1, nCtx, width]), [1, nCls, 1, 1]) as tf.Tensor4D;
  }

  /** `[nCls, D]` text features (not normalised). */
  textFeatures(context: PromptContext): tf.Tensor2D {
    return tf.tidy(() => {
      const { embeddings, eotIndices } = this.template.assemble(this.contextBlock(), this.config.classTokenPosition);
      return context.encoder.encodeText({ embeddings, eotIndices });
    });
  }

  /** The assembled prompt embeddings `[nCls, length, D]` (for inspection and tests). */
  promptEmbeddings(): tf.Tensor3D {
    return tf.tidy(() => this.template.assemble(this.contextBlock(), this.config.classTokenPosition).embeddings);
  }

  dispose(): void {
    this.ctx.dispose();
    this.template.dispose();
  }
}
