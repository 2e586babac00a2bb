/**
 * CLIP's vision and text towers in tfjs, implementing @dfd/core's `Encoder`.
 *
 * Every weight is a `tf.Variable` keyed by its transformers name; all are frozen (`trainable = false`) until
 * `setTrainable` is called, so `trainableVariables()` is `{}` by default. `logit_scale` is never trainable.
 * Pixels come in NCHW `[B, 3, H, W]`, already normalised; patch tokens go out NHWC `[B, h, w, width]`, taken
 * from the last layer without `post_layernorm` (as in CLIP). Hidden state `0` is the transformer's input
 * (after `pre_layrnorm`), state `i` the output of layer `i`, each `[B, 1 + h·w, width]` as transformers'
 * `hidden_states`.
 */
import {
  tf,
  type EncodeImageOptions,
  type Encoder,
  type EncoderInfo,
  type ImageFeatures,
  type TextInput,
  type TokenizedText,
} from '@dfd/core';
import type { ClipConfig } from './config.js';
import { causalMask, encoderLayer, layerNorm, linear, type BlockConfig } from './layers.js';
import type { ClipTokenizer } from './tokenizer.js';

export const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export type TrainablePart = 'none' | 'vision' | 'text' | 'all';

export class ClipInputError extends Error {
  override name = 'ClipInputError';
}

export class ClipEncoder implements Encoder {
  readonly info: EncoderInfo;
  private readonly variables: Map<string, tf.Variable>;
  private readonly visionBlock: BlockConfig;
  private readonly textBlock: BlockConfig;
  private trainablePart: TrainablePart = 'none';
  private mask: tf.Tensor2D | undefined;
  private disposed = false;

  /** `tensors` (transformers names → float32 data) is consumed: entries are removed as they are uploaded. */
  constructor(
    readonly config: ClipConfig,
    tensors: Map<string, { shape: number[]; data: Float32Array }>,
    readonly tokenizer: ClipTokenizer,
    /** Where the weights came from (a folder), for messages and digests. */
    readonly source = 'memory',
  ) {
    const logitScale = tensors.get('logit_scale')?.data[0] ?? config.logitScaleInit;
    this.variables = new Map();
    for (const [name, { shape, data }] of tensors) {
      // No tfjs variable name: tfjs names are process-global, and two encoders may live in one process.
      // Inside tidy, so the temporary tensor is released and the variable alone owns the data.
      this.variables.set(name, tf.tidy(() => tf.variable(tf.tensor(data, shape, 'float32'), false)));
      // Take ownership: drop the host copy as soon as the backend has its own, so a large checkpoint is
      // not held twice (host arrays + wasm heap) for the whole load.
      tensors.delete(name);
    }
    const v = config.vision;
    const t = config.text;
    this.visionBlock = { width: v.hiddenSize, heads: v.numHeads, act: v.hiddenAct, eps: v.layerNormEps };
    this.textBlock = { width: t.hiddenSize, heads: t.numHeads, act: t.hiddenAct, eps: t.layerNormEps };
    this.info = {
      name: config.name,
      imageSize: v.imageSize,
      embedDim: config.projectionDim,
      visionWidth: v.hiddenSize,
      textWidth: t.hiddenSize,
      contextLength: tokenizer.contextLength,
      gridSize: v.imageSize / v.patchSize,
      logitScale: Math.exp(logitScale),
      mean: CLIP_MEAN,
      std: CLIP_STD,
    };
  }

  /** A weight by its transformers name. */
  weight(name: string): tf.Variable {
    const variable = this.variables.get(name);
    if (!variable) throw new ClipInputError(`CLIP weight '${name}' does not exist (source: ${this.source})`);
    if (this.disposed) throw new ClipInputError('this CLIP encoder has been disposed');
    return variable;
  }

  /** All weights by name (frozen or not), e.g. to save a fine-tuned checkpoint. */
  weights(): Record<string, tf.Variable> {
    return Object.fromEntries(this.variables);
  }

  setTrainable(part: TrainablePart): void {
    this.trainablePart = part;
    for (const [name, variable] of this.variables) variable.trainable = this.isTrainable(name);
  }

  trainableVariables(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = {};
    for (const [name, variable] of this.variables) if (this.isTrainable(name)) out[name] = variable;
    return out;
  }

  private isTrainable(name: string): boolean {
    if (name === 'logit_scale') return false;
    const vision = name.startsWith('vision_model.') || name.startsWith('visual_projection.');
    switch (this.trainablePart) {
      case 'none':
        return false;
      case 'all':
        return true;
      case 'vision':
        return vision;
      case 'text':
        return !vision;
    }
  }

  encodeImage(pixels: tf.Tensor4D, options: EncodeImageOptions = {}): ImageFeatures {
    const v = this.config.vision;
    const [batch, channels, height, width] = pixels.shape;
    if (channels !== 3 || height !== v.imageSize || width !== v.imageSize) {
      throw new ClipInputError(
        `encodeImage expects NCHW pixels [B, 3, ${v.imageSize}, ${v.imageSize}] for ${this.info.name}, got [${pixels.shape.join(', ')}]` +
          (channels !== 3 && width === 3 ? ' (this looks like NHWC: transpose to NCHW)' : ''),
      );
    }
    const wanted = new Set(options.hiddenLayers ?? []);
    for (const layer of wanted) {
      if (!Number.isInteger(layer) || layer < 0 || layer > v.numLayers) {
        throw new ClipInputError(`hidden layer ${layer} does not exist: ${this.info.name} has layers 0..${v.numLayers} (0 = embeddings)`);
      }
    }
    const w = (name: string): tf.Tensor => this.weight(name);
    const kept = tf.tidy(() => {
      const keep: tf.Tensor[] = [];
      const grid = v.imageSize / v.patchSize;
      const p = v.patchSize;
      // Patchify with reshapes and 4-D transposes, then one matmul: the same as CLIP's stride-p convolution,
      // with gradients on every backend (wasm lacks a conv filter-gradient kernel).
      const patches = pixels
        .reshape([batch * 3 * grid, p, grid, p])
        .transpose([0, 2, 1, 3])
        .reshape([batch, 3, grid * grid, p * p])
        .transpose([0, 2, 1, 3])
        .reshape([batch * grid * grid, 3 * p * p]);
      const kernel = w('vision_model.embeddings.patch_embedding.weight').reshape([v.hiddenSize, 3 * p * p]);
      const patchEmbeds = tf.matMul(patches as tf.Tensor2D, tf.transpose(kernel as tf.Tensor2D)).reshape([batch, grid * grid, v.hiddenSize]);
      const cls = w('vision_model.embeddings.class_embedding').reshape([1, 1, v.hiddenSize]).tile([batch, 1, 1]);
      let x = tf.add(tf.concat([cls, patchEmbeds], 1), w('vision_model.embeddings.position_embedding.weight')) as tf.Tensor3D;
      x = layerNorm(x, w('vision_model.pre_layrnorm.weight'), w('vision_model.pre_layrnorm.bias'), v.layerNormEps) as tf.Tensor3D;
      const hidden: Record<number, tf.Tensor3D> = {};
      if (wanted.has(0)) hidden[0] = x;
      for (let i = 0; i < v.numLayers; i++) {
        // One tidy per layer frees its intermediates (and transposed weights) before the next layer; an
        // outer tidy alone would hold every layer's activations until the end (out of wasm memory at batch
        // 8 on ViT-B/16). Tensors the gradient tape needs are kept by tfjs itself.
        const input = x;
        x = tf.tidy(() => encoderLayer(input, w, `vision_model.encoder.layers.${i}`, this.visionBlock));
        if (wanted.has(i + 1)) hidden[i + 1] = x;
      }
      const clsToken = x.slice([0, 0, 0], [batch, 1, v.hiddenSize]).reshape([batch, v.hiddenSize]);
      const pooled = layerNorm(clsToken, w('vision_model.post_layernorm.weight'), w('vision_model.post_layernorm.bias'), v.layerNormEps);
      const embeds = linear(pooled, w('visual_projection.weight')) as tf.Tensor2D;
      keep.push(embeds);
      if (options.patchTokens) keep.push(x.slice([0, 1, 0], [batch, grid * grid, v.hiddenSize]).reshape([batch, grid, grid, v.hiddenSize]));
      // Integer keys enumerate in ascending order, the order collect() reads them back in.
      keep.push(...Object.values(hidden));
      return keep;
    });
    return this.collect(kept, options);
  }

  // tf.tidy keeps the tensors returned in an array; rebuild the ImageFeatures object from them.
  private collect(kept: tf.Tensor[], options: EncodeImageOptions): ImageFeatures {
    let i = 0;
    const out: ImageFeatures = { embeds: kept[i++] as tf.Tensor2D };
    if (options.patchTokens) out.patchTokens = kept[i++] as tf.Tensor4D;
    if (options.hiddenLayers?.length) {
      const hidden: Record<number, tf.Tensor3D> = {};
      for (const layer of [...new Set(options.hiddenLayers)].sort((a, b) => a - b)) hidden[layer] = kept[i++] as tf.Tensor3D;
      out.hiddenStates = hidden;
    }
    return out;
  }

  tokenize(texts: string[]): TokenizedText {
    const { ids, eotIndices, lengths } = this.tokenizer.tokenize(texts);
    return { ids: tf.tensor2d(ids, [texts.length, this.tokenizer.contextLength], 'int32'), eotIndices, lengths };
  }

  embedTokens(ids: tf.Tensor2D): tf.Tensor3D {
    const [n, length] = ids.shape;
    const table = this.weight('text_model.embeddings.token_embedding.weight');
    return tf.tidy(() => {
      const flat = ids.flatten().toInt();
      // A frozen table is a plain lookup. A trainable one goes through a one-hot matmul, because gather's
      // gradient (UnsortedSegmentSum) is missing on the wasm backend.
      const rows = table.trainable
        ? tf.matMul(tf.oneHot(flat, this.config.text.vocabSize, 1, 0, 'float32'), table as tf.Tensor2D)
        : tf.gather(table, flat);
      return rows.reshape([n, length, this.config.text.hiddenSize]);
    }) as tf.Tensor3D;
  }

  encodeText(input: TextInput): tf.Tensor2D {
    const t = this.config.text;
    return tf.tidy(() => {
      const embeddings = 'embeddings' in input ? input.embeddings : this.embedTokens(input.ids);
      const [n, length, width] = embeddings.shape;
      if (width !== t.hiddenSize) {
        // The model's short name (ViT-B/16 ...) describes its image tower; the text tower has its own width.
        throw new ClipInputError(
          `token embeddings have width ${width}, but this CLIP's text tower is ${t.hiddenSize} wide (text_config.hidden_size; ` +
            `its image tower ${this.info.name} is ${this.info.visionWidth} wide): build text-side vectors such as prompt contexts ` +
            `with encoder.info.textWidth (${t.hiddenSize})`,
        );
      }
      if (length > t.maxPositions) throw new ClipInputError(`text length ${length} exceeds the ${t.maxPositions} positions of ${this.info.name}`);
      if (input.eotIndices.length !== n) throw new ClipInputError(`eotIndices has ${input.eotIndices.length} entries for ${n} texts`);
      for (const index of input.eotIndices) {
        if (!Number.isInteger(index) || index < 0 || index >= length) throw new ClipInputError(`EOT index ${index} is outside [0, ${length})`);
      }
      const w = (name: string): tf.Tensor => this.weight(name);
      const positions = w('text_model.embeddings.position_embedding.weight').slice([0, 0], [length, width]);
      let x = tf.add(embeddings, positions) as tf.Tensor3D;
      const mask = this.causalMask(length);
      for (let i = 0; i < t.numLayers; i++) {
        const input = x;
        x = tf.tidy(() => encoderLayer(input, w, `text_model.encoder.layers.${i}`, this.textBlock, mask)); // see encodeImage
      }
      x = layerNorm(x, w('text_model.final_layer_norm.weight'), w('text_model.final_layer_norm.bias'), t.layerNormEps) as tf.Tensor3D;
      // Pool at EOT with a one-hot selection matmul rather than gather: gather's gradient needs
      // UnsortedSegmentSum, which the wasm backend lacks, and CoOp needs gradients here. Exact: 1·x + 0·y.
      const select = new Float32Array(n * n * length);
      input.eotIndices.forEach((index, row) => (select[row * n * length + row * length + index] = 1));
      const pooled = tf.matMul(tf.tensor2d(select, [n, n * length]), x.reshape([n * length, width]) as tf.Tensor2D);
      return linear(pooled, w('text_projection.weight')) as tf.Tensor2D;
    });
  }

  private causalMask(length: number): tf.Tensor2D {
    if (length === this.config.text.maxPositions) {
      // Kept across calls (outside any tidy) for the common full-context case.
      if (!this.mask) this.mask = tf.keep(tf.tidy(() => causalMask(length)));
      return this.mask;
    }
    return causalMask(length);
  }

  dispose(): void {
    if (this.disposed) return;
    for (const variable of this.variables.values()) variable.dispose();
    this.variables.clear();
    this.mask?.dispose();
    this.mask = undefined;
    this.disposed = true;
  }
}
