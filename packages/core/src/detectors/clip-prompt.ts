/**
 * The default detector: CLIP image features (optionally enhanced by FeatureEnhancers and fused) scored
 * against the text features of a PromptLearner's class prompts:
 *
 *   logits = logit_scale · cos(image, text_c)   for c in classNames (class index 1 = fake)
 *
 * This is CoOp/CoCoOp/CLIPping's head. When enhancers change the image-feature width (CLaRE: 768 → 3072),
 * a trainable `text_projection` maps text features to that width — and it IS trained (it is listed in
 * trainableVariables), unlike the fusion repository in this field that left its projections at init.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Batch, Detector, Encoder, FeatureEnhancer, Fuser, PromptLearner } from '../contracts.js';
import type { Rng } from '../rng.js';
import { uniqueVariableName } from '../variables.js';

export const ClipPromptConfigSchema = z
  .object({
    /** `pixels`: run the image tower every step; `features`: use cached frozen embeddings from the loader. */
    imageInput: z.enum(['pixels', 'features']).default('pixels'),
  })
  .strict();
export type ClipPromptConfig = z.output<typeof ClipPromptConfigSchema>;

export interface ClipPromptParts {
  encoder: Encoder;
  promptLearner: PromptLearner;
  enhancers: FeatureEnhancer[];
  fuser?: Fuser;
  rng: Rng;
}

/** A stable name for the i-th enhancer in fusion inputs and messages. */
function enhancerName(enhancer: FeatureEnhancer, index: number): string {
  return enhancer.name || `enhancer${index}`;
}

function describeEnhancers(enhancers: FeatureEnhancer[]): string {
  return enhancers.map((e, i) => `${enhancerName(e, i)}: ${e.outputDim} wide`).join(', ');
}

function l2normalize(x: tf.Tensor, axis = -1): tf.Tensor {
  return tf.div(x, tf.add(tf.norm(x, 'euclidean', axis, true), 1e-12));
}

export class ClipPromptDetector implements Detector {
  readonly needs: Detector['needs'];
  private readonly textProjection?: tf.Variable;

  constructor(
    private readonly config: ClipPromptConfig,
    private readonly parts: ClipPromptParts,
  ) {
    const { enhancers, fuser, encoder, promptLearner } = parts;
    if (promptLearner.classNames.length !== 2) {
      throw new Error(
        `clip-prompt detector expects two classes (real, fake), got ${promptLearner.classNames.length}: ${promptLearner.classNames.join(', ')}`,
      );
    }
    const embedDim = encoder.info.embedDim;
    if (enhancers.length && !fuser) {
      throw new Error(
        `enhancers are configured (${describeEnhancers(enhancers)}) but no fuser combines them with the image embedding ` +
          `(${embedDim} wide): add e.g. \`fuser: { use: "concat" }\``,
      );
    }
    if (fuser && !enhancers.length) {
      throw new Error(
        'a fuser is configured but no enhancer: there is nothing to fuse with the image embedding. ' +
          'Add an enhancer (e.g. `enhancers: [{ use: "lare-mlp" }]`) or remove the fuser',
      );
    }
    if (config.imageInput === 'features' && enhancers.length) {
      throw new Error("imageInput 'features' (cached embeddings) cannot feed enhancers, which need the image tower's maps: use 'pixels'");
    }
    this.needs = {
      pixels: config.imageInput === 'pixels',
      features: config.imageInput === 'features',
      extras: [...new Set(enhancers.flatMap((e) => e.requires))],
      boxes: enhancers.some((e) => e.needsBoxes) || Boolean(fuser?.needsBoxes),
    };
    if (fuser) {
      const { info } = encoder;
      const fusedDim = fuser.build({
        image: embedDim,
        enhanced: enhancers.map((e, i) => ({ name: enhancerName(e, i), dim: e.outputDim })),
        visionWidth: info.visionWidth,
        gridSize: info.gridSize,
        imageSize: info.imageSize,
      });
      if (fusedDim !== embedDim) {
        // nn.Linear default init: U(-1/sqrt(in), 1/sqrt(in)), no bias (a projection, as CLIP's own).
        const bound = 1 / Math.sqrt(embedDim);
        this.textProjection = tf.variable(
          tf.tensor2d(parts.rng.fork('text_projection').uniformArray(embedDim * fusedDim, -bound, bound), [embedDim, fusedDim]),
          true,
          uniqueVariableName('clip_prompt.text_projection'),
        );
      }
    }
  }

  trainableVariables(): Record<string, tf.Variable> {
    const { encoder, promptLearner, enhancers, fuser } = this.parts;
    const prefixed = (prefix: string, vars: Record<string, tf.Variable>) =>
      Object.fromEntries(Object.entries(vars).map(([name, v]) => [`${prefix}.${name}`, v]));
    return {
      ...prefixed('encoder', encoder.trainableVariables()),
      ...prefixed('prompt_learner', promptLearner.trainableVariables()),
      ...Object.assign({}, ...enhancers.map((e, i) => prefixed(`enhancer${i}`, e.trainableVariables()))),
      ...(fuser ? prefixed('fuser', fuser.trainableVariables()) : {}),
      ...(this.textProjection ? { text_projection: this.textProjection } : {}),
    };
  }

  forward(batch: Batch, training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      const { encoder, promptLearner, enhancers, fuser } = this.parts;
      let image: tf.Tensor2D;
      if (this.config.imageInput === 'features') {
        if (!batch.features) throw new Error("clip-prompt: imageInput is 'features' but the loader gave no cached features");
        image = batch.features;
      } else {
        if (!batch.pixels) throw new Error('clip-prompt: the batch has no pixels');
        const askers = [...enhancers, ...(fuser ? [fuser] : [])];
        const wantsPatches = askers.some((part) => part.imageOptions?.patchTokens);
        const layers = [...new Set(askers.flatMap((part) => part.imageOptions?.hiddenLayers ?? []))];
        const features = encoder.encodeImage(batch.pixels, { patchTokens: wantsPatches, hiddenLayers: layers });
        image = features.embeds;
        if (enhancers.length && fuser) {
          const context = { extras: batch.extras ?? {}, boxes: batch.boxes, imageSize: encoder.info.imageSize, training };
          const enhanced = enhancers.map((e, i) => ({
            name: enhancerName(e, i),
            features: e.enhance({ image: features, ...context }),
          }));
          image = fuser.fuse({ image, enhanced, imageFeatures: features, ...context });
        }
      }
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
