/**
 * Prompt templates shared by CoOp and CoCoOp (shared/reference/methods.md §2.1): tokenise
 * `"<prefix> <classname>."` once, keep the frozen token embeddings of SOS (`tokenPrefix`) and of everything
 * after the context slots (`tokenSuffix`: class tokens, ".", EOT, padding), and splice learned context
 * vectors in at the class-token position (`end`, `middle`, `front`). The EOT index of the original
 * tokenisation stays valid in every position because the total length never changes.
 */
import { tf, type Encoder } from '@dfd/core';
import type { ClassTokenPosition } from './config.js';

export class PromptError extends Error {
  override name = 'PromptError';
}

export interface PromptTemplateOptions {
  classNames: string[];
  /** Context length requested; replaced by the word count of `ctxInit` when that is set. */
  nCtx: number;
  ctxInit: string;
  /** Cut every sequence after the longest EOT (exact under the causal mask). */
  truncateAtEot: boolean;
}

/** CoOp's class-name and init-text normalisation: underscores are spaces. */
export function cleanText(text: string): string {
  return text.replace(/_/g, ' ').trim();
}

export class PromptTemplate {
  /** Class names after cleaning, in label order. */
  readonly classNames: string[];
  readonly nCtx: number;
  /** The placeholder or init text the prompts were tokenised with. */
  readonly prefixText: string;
  /** The full prompt texts, one per class. */
  readonly prompts: string[];
  /** EOT position of each class prompt (in the 77-token layout). */
  readonly eotIndices: number[];
  /** BPE token count of each class name (CoOp's `name_lens`). */
  readonly nameLens: number[];
  /** Sequence length fed to the text tower: the longest EOT + 1 when truncating, else the context length. */
  readonly length: number;
  readonly width: number;
  /** `[nCls, 1, D]` SOS embeddings (frozen). */
  readonly tokenPrefix: tf.Tensor3D;
  /** `[nCls, length − 1 − nCtx, D]` embeddings of class tokens, ".", EOT and padding (frozen). */
  readonly tokenSuffix: tf.Tensor3D;
  /** `[nCtx, D]` word-initialised context (the embeddings of `ctxInit`'s tokens), when `ctxInit` is set. */
  readonly initContext?: tf.Tensor2D;

  constructor(encoder: Encoder, options: PromptTemplateOptions) {
    this.classNames = options.classNames.map(cleanText);
    this.width = encoder.info.textWidth;
    const init = cleanText(options.ctxInit);
    if (init) {
      // CoOp: n_ctx = number of words of the init text; ctx = its token embeddings at positions 1..n_ctx.
      this.nCtx = init.split(/\s+/).length;
      this.prefixText = init;
      const tokens = encoder.tokenize([init]);
      this.initContext = tf.tidy(() => {
        const embedded = encoder.embedTokens(tokens.ids);
        return embedded.slice([0, 1, 0], [1, this.nCtx, this.width]).reshape([this.nCtx, this.width]) as tf.Tensor2D;
      });
      tokens.ids.dispose();
    } else {
      this.nCtx = options.nCtx;
      this.prefixText = Array.from({ length: this.nCtx }, () => 'X').join(' ');
    }
    this.prompts = this.classNames.map((name) => `${this.prefixText} ${name}.`);
    const tokenized = encoder.tokenize(this.prompts);
    const names = encoder.tokenize(this.classNames);
    names.ids.dispose();
    this.nameLens = names.lengths;
    this.eotIndices = tokenized.eotIndices;
    const contextLength = encoder.info.contextLength;
    tokenized.lengths.forEach((tokens, i) => {
      // A prompt that does not fit is cut by the tokenizer (which reports the kept length), so a prompt
      // filling the whole context is treated as cut: its class name or "." may be missing.
      if (tokens + 2 >= contextLength || this.eotIndices[i] !== tokens + 1) {
        throw new PromptError(
          `prompt "${this.prompts[i]}" needs ${tokens + 2} tokens but the text tower has ${contextLength}: use fewer context tokens (nCtx) or a shorter class name`,
        );
      }
    });
    this.length = options.truncateAtEot ? Math.max(...this.eotIndices) + 1 : contextLength;
    const nCls = this.classNames.length;
    const suffixLength = this.length - 1 - this.nCtx;
    [this.tokenPrefix, this.tokenSuffix] = tf.tidy(() => {
      const embedded = encoder.embedTokens(tokenized.ids);
      return [
        embedded.slice([0, 0, 0], [nCls, 1, this.width]) as tf.Tensor3D,
        embedded.slice([0, 1 + this.nCtx, 0], [nCls, suffixLength, this.width]) as tf.Tensor3D,
      ];
    });
    tokenized.ids.dispose();
  }

  get nCls(): number {
    return this.classNames.length;
  }

  /**
   * Splices context into the prompts. `ctx` is `[B, nCls, nCtx, D]` (B copies of the class set: B = 1 for
   * CoOp, the batch for CoCoOp); returns `[B·nCls, length, D]`, row `b·nCls + c`, and the matching EOT
   * indices. Runs inside the caller's tidy/grad.
   */
  assemble(ctx: tf.Tensor4D, position: ClassTokenPosition): { embeddings: tf.Tensor3D; eotIndices: number[] } {
    const [copies, nCls, nCtx, width] = ctx.shape;
    if (nCls !== this.nCls || nCtx !== this.nCtx || width !== this.width) {
      throw new PromptError(`context of shape [${ctx.shape.join(', ')}] does not fit the template [B, ${this.nCls}, ${this.nCtx}, ${this.width}]`);
    }
    const perCopy = (t: tf.Tensor3D) => tf.tile(tf.expandDims(t, 0), [copies, 1, 1, 1]) as tf.Tensor4D;
    let prompts: tf.Tensor4D;
    if (position === 'end') {
      prompts = tf.concat([perCopy(this.tokenPrefix), ctx, perCopy(this.tokenSuffix)], 2);
    } else {
      const half = Math.floor(this.nCtx / 2);
      const suffixLength = this.tokenSuffix.shape[1];
      const rows = this.classNames.map((_, c) => {
        const nameLen = this.nameLens[c]!;
        const at = (t: tf.Tensor3D, start: number, size: number) =>
          tf.tile(t.slice([c, start, 0], [1, size, width]), [copies, 1, 1]) as tf.Tensor3D;
        const prefix = at(this.tokenPrefix, 0, 1);
        const className = at(this.tokenSuffix, 0, nameLen);
        const rest = at(this.tokenSuffix, nameLen, suffixLength - nameLen);
        const ctxC = ctx.slice([0, c, 0, 0], [copies, 1, nCtx, width]).reshape([copies, nCtx, width]) as tf.Tensor3D;
        const pieces =
          position === 'middle'
            ? [prefix, ctxC.slice([0, 0, 0], [copies, half, width]), className, ctxC.slice([0, half, 0], [copies, nCtx - half, width]), rest]
            : [prefix, className, ctxC, rest];
        // A middle split of a single context token leaves an empty half: concat only non-empty pieces.
        return tf.concat(pieces.filter((piece) => piece.shape[1] > 0), 1);
      });
      prompts = tf.stack(rows, 1) as tf.Tensor4D;
    }
    const eotIndices = Array.from({ length: copies }, () => this.eotIndices).flat();
    return { embeddings: prompts.reshape([copies * nCls, this.length, width]) as tf.Tensor3D, eotIndices };
  }

  dispose(): void {
    this.tokenPrefix.dispose();
    this.tokenSuffix.dispose();
    this.initContext?.dispose();
  }
}
