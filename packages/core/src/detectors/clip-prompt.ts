/**
 * The default detector: CLIP image features (optionally enhanced by FeatureEnhancers and fused) scored
 * against the text features of a PromptLearner's class prompts:
 *
 *   logits = logit_scale · cos(image, text_c)   for c in classNames (class index 1 = fake)
 *
 * This is CoOp/CoCoOp/CLIPping's head. When enhancers change the image-feature width (CLaRE: 768 → 3072),
 * a trainable `text_projection` maps text features to that width — and it IS trained (it is listed in
 * trainableVariables), unlike the fusion repository in this field that left its projections at init.
 *
 * The image side comes from the image tower every step (`imageInput: 'pixels'`) or from the loader's
 * cached frozen features (`'features'`: `Batch.features`, plus `Batch.patchTokens` when an enhancer or
 * the fuser asked for patch tokens). Composition errors (a fuser without enhancers, widths a fuser cannot
 * take) fail here, at assembly, with the parts and their widths named.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Batch, Detector, EncodeImageOptions, Encoder, FeatureEnhancer, Fuser, FusionDims, ImageFeatures, PromptLearner } from '../contracts.js';
import type { Rng } from '../rng.js';
import { uniqueVariableName } from '../variables.js';
import { CompositionError, probeFuser } from './fusion-checks.js';

export { CompositionError };

export const ClipPromptConfigSchema = z
  .object({
    /** `pixels`: run the image tower every step; `features`: use cached frozen embeddings (and patch tokens) from the loader. */
    imageInput: z.enum(['pixels', 'features']).default('pixels'),
  })
  .strict();
export type ClipPromptConfig = z.output<typeof ClipPromptConfigSchema>;

export interface ClipPromptParts {
  encoder: Encoder;
  promptLearner: PromptLearner;
  enhancers: FeatureEnhancer[];
  /** The enhancers' names (assembly gives their component names); default: their own `name`, else `enhancer<i>`. */
  enhancerNames?: string[];
  fuser?: Fuser;
  /** The fuser's component name, for messages (default: its class name). */
  fuserName?: string;
  rng: Rng;
}

function l2normalize(x: tf.Tensor, axis = -1): tf.Tensor {
  return tf.div(x, tf.add(tf.norm(x, 'euclidean', axis, true), 1e-12));
}

function prefixed<T>(prefix: string, entries: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(entries).map(([name, v]) => [`${prefix}.${name}`, v]));
}

export class ClipPromptDetector implements Detector {
  readonly needs: Detector['needs'];
  /** Each enhancer's name in fusion inputs and messages, in order. */
  readonly enhancerNames: string[];
  /** Width of the image feature the text features are compared with (the fused width with a fuser). */
  readonly imageWidth: number;
  private readonly textProjection?: tf.Variable;
  private readonly imageOptions: EncodeImageOptions;
  private readonly fuserName: string;

  constructor(
    private readonly config: ClipPromptConfig,
    private readonly parts: ClipPromptParts,
  ) {
    const { enhancers, fuser, encoder, promptLearner } = parts;
    if (promptLearner.classNames.length !== 2) {
      throw new CompositionError(
        `clip-prompt detector expects two classes (real, fake), got ${promptLearner.classNames.length}: ${promptLearner.classNames.join(', ')}`,
      );
    }
    this.enhancerNames = parts.enhancerNames ?? enhancers.map((e, i) => e.name || `enhancer${i}`);
    // Assembly passes the component name; a detector built in code falls back to the fuser's class name.
    this.fuserName = parts.fuserName ?? (parts.fuser?.constructor?.name || 'fuser');
    const embedDim = encoder.info.embedDim;
    this.checkComposition(embedDim);
    const askers = [...enhancers, ...(fuser ? [fuser] : [])];
    const layers = [...new Set(askers.flatMap((part) => part.imageOptions?.hiddenLayers ?? []))];
    const wantsPatches = askers.some((part) => part.imageOptions?.patchTokens);
    this.imageOptions = { patchTokens: wantsPatches, hiddenLayers: layers };
    const features = config.imageInput === 'features';
    if (features && layers.length) {
      throw new CompositionError(
        `imageInput 'features' caches the embedding and the last layer's patch tokens only, but ${this.askersOf((p) => Boolean(p.imageOptions?.hiddenLayers?.length))} ` +
          `asks for hidden layers ${layers.join(', ')}: use imageInput 'pixels'`,
      );
    }
    this.needs = {
      pixels: !features,
      features,
      extras: [...new Set(enhancers.flatMap((e) => e.requires))],
      boxes: askers.some((part) => part.needsBoxes),
      patchTokens: features && wantsPatches,
    };
    this.imageWidth = fuser ? this.buildFuser(fuser, embedDim) : embedDim;
    if (promptLearner.conditional) {
      // The conditional learner is told the width it will be conditioned on (the fused one), then probed.
      promptLearner.bindImageWidth?.(this.imageWidth);
      if (this.imageWidth !== embedDim) this.probeConditioning(embedDim);
    }
    if (this.imageWidth !== embedDim) {
      // nn.Linear default init: U(-1/sqrt(in), 1/sqrt(in)), no bias (a projection, as CLIP's own).
      const bound = 1 / Math.sqrt(embedDim);
      this.textProjection = tf.variable(
        tf.tensor2d(parts.rng.fork('text_projection').uniformArray(embedDim * this.imageWidth, -bound, bound), [embedDim, this.imageWidth]),
        true,
        uniqueVariableName('clip_prompt.text_projection'),
      );
    }
  }

  private describeInputs(embedDim: number): string {
    return [`image embedding: ${embedDim} wide`, ...this.parts.enhancers.map((e, i) => `${this.enhancerNames[i]}: ${e.outputDim} wide`)].join(', ');
  }

  private askersOf(test: (part: FeatureEnhancer | Fuser) => boolean): string {
    const names = this.parts.enhancers.flatMap((e, i) => (test(e) ? [this.enhancerNames[i]!] : []));
    if (this.parts.fuser && test(this.parts.fuser)) names.push(this.fuserName);
    return names.join(', ');
  }

  private checkComposition(embedDim: number): void {
    const { enhancers, fuser } = this.parts;
    if (this.enhancerNames.length !== enhancers.length) {
      throw new CompositionError(`${enhancers.length} enhancers but ${this.enhancerNames.length} enhancer names`);
    }
    const duplicate = this.enhancerNames.find((name, i) => this.enhancerNames.indexOf(name) !== i);
    if (duplicate) throw new CompositionError(`two enhancers are named '${duplicate}': fusion inputs are told apart by name`);
    enhancers.forEach((e, i) => {
      if (!Number.isInteger(e.outputDim) || e.outputDim <= 0) {
        throw new CompositionError(`enhancer ${this.enhancerNames[i]} declares outputDim ${e.outputDim}: it must be a positive integer`);
      }
    });
    if (enhancers.length && !fuser) {
      throw new CompositionError(
        `enhancers are configured (${this.describeInputs(embedDim).replace(/^image embedding: \d+ wide, /, '')}) but no fuser combines them with the image embedding ` +
          `(${embedDim} wide): add e.g. \`fuser: { use: "concat" }\``,
      );
    }
    if (fuser && !enhancers.length) {
      throw new CompositionError(
        `fuser ${this.fuserName} is configured but no enhancer: there is nothing to fuse with the image embedding (${embedDim} wide). ` +
          'Add an enhancer (e.g. `enhancers: [{ use: "lare-mlp" }]`) or remove the fuser',
      );
    }
  }

  /** Builds the fuser for the input widths and checks, with one probe call, that it takes them. */
  private buildFuser(fuser: Fuser, embedDim: number): number {
    const { info } = this.parts.encoder;
    const dims: FusionDims = {
      image: embedDim,
      enhanced: this.parts.enhancers.map((e, i) => ({ name: this.enhancerNames[i]!, dim: e.outputDim })),
      visionWidth: info.visionWidth,
      gridSize: info.gridSize,
      imageSize: info.imageSize,
    };
    const inputs = this.describeInputs(embedDim);
    let fused: number;
    try {
      fused = fuser.build(dims);
    } catch (error) {
      throw new CompositionError(`fuser ${this.fuserName} cannot fuse ${inputs}: ${(error as Error).message}`);
    }
    if (!Number.isInteger(fused) || fused <= 0) {
      throw new CompositionError(`fuser ${this.fuserName} built for ${inputs} returned fused width ${fused}: build() must return a positive integer`);
    }
    probeFuser(fuser, dims, fused, {
      name: this.fuserName,
      inputs,
      patchTokens: Boolean(this.imageOptions.patchTokens),
      hiddenLayers: this.imageOptions.hiddenLayers ?? [],
    });
    return fused;
  }

  /**
   * A conditional prompt learner (CoCoOp) is conditioned on the fused image feature; one probe call at
   * assembly tells whether it takes that width, so a mismatch is named now and not a tfjs error later.
   */
  private probeConditioning(embedDim: number): void {
    const { promptLearner, encoder } = this.parts;
    try {
      tf.tidy(() => {
        promptLearner.textFeatures({ encoder, imageFeatures: tf.zeros([1, this.imageWidth]) as tf.Tensor2D, training: false });
      });
    } catch (error) {
      throw new CompositionError(
        `the prompt learner is conditional (CoCoOp-like): it is conditioned on the fused image feature, which the fuser ${this.fuserName} makes ` +
          `${this.imageWidth} wide (the image embedding is ${embedDim}), and it cannot take that width: ${(error as Error).message}. ` +
          'Implement PromptLearner.bindImageWidth to size its conditioning for the fused width, use a fuser that returns the embedding width, or an unconditional prompt learner (CoOp)',
      );
    }
  }

  trainableVariables(): Record<string, tf.Variable> {
    const { encoder, promptLearner, enhancers, fuser } = this.parts;
    return {
      ...prefixed('encoder', encoder.trainableVariables()),
      ...prefixed('prompt_learner', promptLearner.trainableVariables()),
      ...Object.assign({}, ...enhancers.map((e, i) => prefixed(`enhancer${i}`, e.trainableVariables()))),
      ...(fuser ? prefixed('fuser', fuser.trainableVariables()) : {}),
      ...(this.textProjection ? { text_projection: this.textProjection } : {}),
    };
  }

  /** Every part's non-trainable state (running statistics ...), under the same prefixes as the weights. */
  stateTensors(): Record<string, tf.Variable> {
    const { encoder, promptLearner, enhancers, fuser } = this.parts;
    return {
      ...prefixed('encoder', encoder.stateTensors?.() ?? {}),
      ...prefixed('prompt_learner', promptLearner.stateTensors?.() ?? {}),
      ...Object.assign({}, ...enhancers.map((e, i) => prefixed(`enhancer${i}`, e.stateTensors?.() ?? {}))),
      ...(fuser ? prefixed('fuser', fuser.stateTensors?.() ?? {}) : {}),
    };
  }

  /** The image side of a batch: the tower's output on its pixels, or the loader's cached features. */
  private imageFeatures(batch: Batch): ImageFeatures {
    const { encoder } = this.parts;
    if (this.config.imageInput === 'pixels') {
      if (!batch.pixels) throw new Error('clip-prompt: the batch has no pixels');
      return encoder.encodeImage(batch.pixels, this.imageOptions);
    }
    if (!batch.features) throw new Error("clip-prompt: imageInput is 'features' but the loader gave no cached features (use the feature-cache loader)");
    const width = batch.features.shape[1];
    if (width !== encoder.info.embedDim) {
      throw new Error(`clip-prompt: cached features are ${width} wide but ${encoder.info.name} embeds ${encoder.info.embedDim}: the cache was made by another encoder`);
    }
    if (this.needs.patchTokens && !batch.patchTokens) {
      throw new Error(`clip-prompt: ${this.askersOf((p) => Boolean(p.imageOptions?.patchTokens))} needs patch tokens but the loader gave none (the feature-cache loader supplies them when the detector asks)`);
    }
    return { embeds: batch.features, ...(batch.patchTokens ? { patchTokens: batch.patchTokens } : {}) };
  }

  private fused(features: ImageFeatures, batch: Batch, training: boolean): tf.Tensor2D {
    const { encoder, enhancers, fuser } = this.parts;
    if (!fuser) return features.embeds;
    if (this.needs.boxes && !batch.boxes) {
      throw new Error(`clip-prompt: ${this.askersOf((p) => Boolean(p.needsBoxes))} needs face boxes but the batch has none`);
    }
    const context = { extras: batch.extras ?? {}, boxes: batch.boxes, imageSize: encoder.info.imageSize, training };
    for (const key of this.needs.extras) {
      if (!context.extras[key]) throw new Error(`clip-prompt: enhancers need extra '${key}' but the batch has none (does the dataset configure extras.${key}?)`);
    }
    const enhanced = enhancers.map((enhancer, i) => {
      const name = this.enhancerNames[i]!;
      const out = enhancer.enhance({ image: features, ...context });
      if (out.rank !== 2 || out.shape[1] !== enhancer.outputDim || out.shape[0] !== features.embeds.shape[0]) {
        throw new Error(`enhancer ${name} returned [${out.shape.join(', ')}] but declares outputDim ${enhancer.outputDim} (expected [${features.embeds.shape[0]}, ${enhancer.outputDim}])`);
      }
      return { name, features: out };
    });
    return fuser.fuse({ image: features.embeds, enhanced, imageFeatures: features, ...context });
  }

  forward(batch: Batch, training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      const { encoder, promptLearner } = this.parts;
      const image = this.fused(this.imageFeatures(batch), batch, training);
      const imageNormed = l2normalize(image) as tf.Tensor2D;
      let text = promptLearner.textFeatures({ encoder, imageFeatures: imageNormed, training });
      if (this.textProjection) text = tf.matMul(text.reshape([-1, text.shape.at(-1)!]), this.textProjection).reshape([...text.shape.slice(0, -1), this.textProjection.shape[1]!]) as typeof text;
      const textNormed = l2normalize(text);
      const scale = encoder.info.logitScale;
      if (textNormed.rank === 3) {
        // Conditional prompts: one set of class features per image, [B, C, D] · [B, D, 1] → [B, C].
        return tf.mul(tf.squeeze(tf.matMul(textNormed as tf.Tensor3D, tf.expandDims(imageNormed, 2)), [2]), scale) as tf.Tensor2D;
      }
      return tf.mul(tf.matMul(imageNormed, textNormed as tf.Tensor2D, false, true), scale) as tf.Tensor2D;
    });
  }

  loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
    return tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.cast(labels, 'int32'), 2), logits) as tf.Scalar);
  }

  probabilities(logits: tf.Tensor2D): tf.Tensor1D {
    return tf.tidy(() => tf.squeeze(tf.slice(tf.softmax(logits), [0, 1], [-1, 1]), [1]) as tf.Tensor1D);
  }

  dispose(): void {
    this.textProjection?.dispose();
  }
}
