/**
 * Small but real parts for the clip-prompt detector with enhancers and a fuser, for core's and the data
 * packages' tests: a frozen toy image/text encoder (patch tokens included), a CoOp-like prompt learner, an
 * enhancer that reads an extra map (and, on request, patch tokens and boxes) and keeps a running mean as a
 * state tensor, and fusers (a projected concat; a naive sum that does not check widths; a sum that checks
 * them in `build`). All in tfjs, all trainable where a real module would be, nothing mocked: they exist
 * so the plumbing (names, boxes, patch tokens, state, checkpoints, cache) is tested with modules that use
 * every input they are given. The real LaRE/fusion modules are tested in their own packages.
 */
import { z } from 'zod';
import {
  definePlugin,
  rngFor,
  tf,
  TOKENS,
  uniqueVariableName,
  type Batch,
  type BatchLoader,
  type BatchSource,
  type BatchSourceOptions,
  type EncodeImageOptions,
  type Encoder,
  type EncoderInfo,
  type EnhancerInput,
  type FeatureEnhancer,
  type Fuser,
  type FusionDims,
  type FusionInput,
  type ImageFeatures,
  type PromptContext,
  type PromptLearner,
  type Rng,
  type Sample,
  type TextInput,
  type TokenizedText,
} from '@dfd/core';
import { readFileSync } from 'node:fs';

const ToyEncoderConfig = z.object({ imageSize: z.number().int().default(16), patch: z.number().int().default(4), visionWidth: z.number().int().default(8), embedDim: z.number().int().default(6) });

/** Frozen: patch tokens = tanh(avg-pooled patch RGB · W_patch); embedding = mean token · W_proj. Counts its image calls. */
export class ToyEncoder implements Encoder {
  readonly info: EncoderInfo;
  imageCalls = 0;
  /** Image-tower calls of every toy encoder in this process (runs build their own instances). */
  static imageCalls = 0;
  // Frozen weights are non-trainable variables, as a real frozen tower's are, so tests can check that a
  // training step leaves every one of them untouched.
  private readonly patchWeight: tf.Variable;
  private readonly projection: tf.Variable;
  private readonly tokenTable: tf.Variable;
  private readonly textProjection: tf.Variable;

  constructor(config: z.output<typeof ToyEncoderConfig>, rng: Rng) {
    const grid = config.imageSize / config.patch;
    this.info = {
      name: 'toy-encoder',
      imageSize: config.imageSize,
      embedDim: config.embedDim,
      visionWidth: config.visionWidth,
      textWidth: 5,
      contextLength: 8,
      gridSize: grid,
      logitScale: 10,
      mean: [0.5, 0.5, 0.5],
      std: [0.5, 0.5, 0.5],
    };
    const r = rng.fork('toy-encoder');
    const frozen = (values: Float32Array, shape: [number, number], name: string) => tf.variable(tf.tensor2d(values, shape), false, uniqueVariableName(`toy_encoder.${name}`));
    this.patchWeight = frozen(r.normalArray(3 * config.visionWidth), [3, config.visionWidth], 'patch');
    this.projection = frozen(r.normalArray(config.visionWidth * config.embedDim, 0, 0.5), [config.visionWidth, config.embedDim], 'proj');
    this.tokenTable = frozen(r.normalArray(64 * 5, 0, 0.5), [64, 5], 'tokens');
    this.textProjection = frozen(r.normalArray(5 * config.embedDim, 0, 0.5), [5, config.embedDim], 'text_proj');
  }

  trainableVariables() {
    return {};
  }

  encodeImage(pixels: tf.Tensor4D, options: EncodeImageOptions = {}): ImageFeatures {
    this.imageCalls += 1;
    ToyEncoder.imageCalls += 1;
    return tf.tidy(() => {
      const [b] = pixels.shape;
      const { gridSize: g, visionWidth: w, imageSize } = this.info;
      const pooled = tf.avgPool(tf.transpose(pixels, [0, 2, 3, 1]) as tf.Tensor4D, imageSize / g, imageSize / g, 'valid');
      const tokens = tf.tanh(tf.matMul(tf.reshape(pooled, [b * g * g, 3]), this.patchWeight)).reshape([b, g, g, w]) as tf.Tensor4D;
      const embeds = tf.matMul(tf.mean(tf.reshape(tokens, [b, g * g, w]), 1) as tf.Tensor2D, this.projection);
      return options.patchTokens ? { embeds, patchTokens: tokens } : { embeds };
    }) as ImageFeatures;
  }

  tokenize(texts: string[]): TokenizedText {
    const L = this.info.contextLength;
    const rows = texts.map((t) => [...t].slice(0, L - 1).map((c) => c.charCodeAt(0) % 64));
    const ids = tf.tensor2d(rows.map((r) => [...r, 1, ...new Array(L - r.length - 1).fill(0)]), [texts.length, L], 'int32');
    return { ids, eotIndices: rows.map((r) => r.length), lengths: rows.map((r) => r.length) };
  }

  embedTokens(ids: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const [n, L] = ids.shape;
      return tf.matMul(tf.oneHot(tf.cast(tf.reshape(ids, [-1]), 'int32') as tf.Tensor1D, 64), this.tokenTable).reshape([n, L, 5]) as tf.Tensor3D;
    });
  }

  encodeText(input: TextInput): tf.Tensor2D {
    return tf.tidy(() => {
      const embeddings = 'embeddings' in input ? input.embeddings : this.embedTokens(input.ids);
      return tf.matMul(tf.mean(embeddings, 1) as tf.Tensor2D, this.textProjection);
    });
  }

  dispose() {
    tf.dispose([this.patchWeight, this.projection, this.tokenTable, this.textProjection]);
  }
}

/**
 * CoOp in miniature: learned context vectors before a frozen class-token embedding. `conditional`: CoCoOp in
 * miniature, a meta-net (embedDim → textWidth) on the image features shifts the context per image.
 */
export class ToyPromptLearner implements PromptLearner {
  readonly classNames = ['real', 'fake'];
  readonly ctx: tf.Variable;
  private readonly classTokens: tf.Tensor3D;
  private readonly metaNet?: tf.Variable;

  constructor(encoder: Encoder, rng: Rng, readonly conditional = false) {
    const width = encoder.info.textWidth;
    if (conditional) this.metaNet = tf.variable(tf.tensor2d(rng.fork('meta').normalArray(encoder.info.embedDim * width, 0, 0.1), [encoder.info.embedDim, width]), true, uniqueVariableName('toy_prompt.meta'));
    this.ctx = tf.variable(tf.tensor2d(rng.fork('toy-prompt').normalArray(3 * width, 0, 0.02), [3, width]), true, uniqueVariableName('toy_prompt.ctx'));
    const tokenized = encoder.tokenize(this.classNames);
    const embedded = encoder.embedTokens(tokenized.ids);
    this.classTokens = tf.slice(embedded, [0, 0, 0], [2, 2, width]);
    tf.dispose([tokenized.ids, embedded]);
  }

  trainableVariables() {
    return { ctx: this.ctx, ...(this.metaNet ? { meta_net: this.metaNet } : {}) };
  }

  textFeatures(context: PromptContext): tf.Tensor2D | tf.Tensor3D {
    return tf.tidy(() => {
      if (this.metaNet) {
        const image = context.imageFeatures!;
        const b = image.shape[0];
        const shift = tf.matMul(image, this.metaNet); // [B, width]: a raw tfjs error if the image width is not embedDim
        const ctx = tf.add(tf.expandDims(tf.expandDims(this.ctx, 0), 0), tf.reshape(shift, [b, 1, 1, -1])); // [B, 1, 3, width]
        const perImage = tf.concat([tf.tile(ctx, [1, 2, 1, 1]), tf.tile(tf.expandDims(this.classTokens, 0), [b, 1, 1, 1])], 2) as tf.Tensor4D;
        const [, , L, w] = perImage.shape;
        const text = context.encoder.encodeText({ embeddings: tf.reshape(perImage, [b * 2, L, w]) as tf.Tensor3D, eotIndices: new Array(b * 2).fill(4) });
        return tf.reshape(text, [b, 2, -1]) as tf.Tensor3D;
      }
      const ctx = tf.tile(tf.expandDims(this.ctx, 0), [2, 1, 1]);
      const embeddings = tf.concat([ctx, this.classTokens], 1) as tf.Tensor3D;
      return context.encoder.encodeText({ embeddings, eotIndices: [4, 4] });
    });
  }

  dispose() {
    tf.dispose([this.ctx, this.classTokens, ...(this.metaNet ? [this.metaNet] : [])]);
  }
}

const ToyEnhancerConfig = z.object({
  extra: z.string().default('lare'),
  outputDim: z.number().int().default(4),
  patchTokens: z.boolean().default(false),
  boxes: z.boolean().default(false),
  name: z.string().optional(),
  /** Declare this outputDim but return another width (to test the runtime check). */
  lieAboutWidth: z.boolean().default(false),
});

/**
 * pooled = mean over the map's spatial cells `[B, C]`, minus a running mean (a state tensor updated in
 * training, momentum 0.1 — what BatchNorm keeps); out = relu(pooled · W + b) [+ mean patch token · Wp]
 * [+ mean normalised box · Wb].
 */
export class ToyMapEnhancer implements FeatureEnhancer {
  readonly name?: string;
  readonly requires: string[];
  readonly outputDim: number;
  readonly imageOptions?: EncodeImageOptions;
  readonly needsBoxes: boolean;
  /** What it was given, for the tests. */
  readonly seen = { calls: 0, patchTokens: 0, boxes: 0, lastBoxes: [] as number[], lastMap: [] as number[] };
  private readonly weight: tf.Variable;
  private readonly bias: tf.Variable;
  private readonly patchWeight?: tf.Variable;
  private readonly boxWeight?: tf.Variable;
  /** Running mean of the pooled 2-channel map: a state tensor (not trained, saved in checkpoints). */
  readonly runningMean: tf.Variable;

  constructor(
    private readonly config: z.output<typeof ToyEnhancerConfig>,
    rng: Rng,
    visionWidth: number,
  ) {
    if (config.name) this.name = config.name;
    this.requires = [config.extra];
    this.outputDim = config.outputDim;
    if (config.patchTokens) this.imageOptions = { patchTokens: true };
    this.needsBoxes = config.boxes;
    const out = config.outputDim;
    this.bias = tf.variable(tf.zeros([out]), true, uniqueVariableName('toy_enh.bias'));
    if (config.patchTokens) this.patchWeight = tf.variable(tf.tensor2d(rng.fork('p').normalArray(visionWidth * out, 0, 0.3), [visionWidth, out]), true, uniqueVariableName('toy_enh.wp'));
    if (config.boxes) this.boxWeight = tf.variable(tf.tensor2d(rng.fork('b').normalArray(4 * out, 0, 0.3), [4, out]), true, uniqueVariableName('toy_enh.wb'));
    this.weight = tf.variable(tf.tensor2d(rng.fork('w').normalArray(2 * out, 0, 0.5), [2, out]), true, uniqueVariableName('toy_enh.w'));
    this.runningMean = tf.variable(tf.zeros([2]), false, uniqueVariableName('toy_enh.running_mean'));
  }

  trainableVariables() {
    return {
      weight: this.weight,
      bias: this.bias,
      ...(this.patchWeight ? { patch_weight: this.patchWeight } : {}),
      ...(this.boxWeight ? { box_weight: this.boxWeight } : {}),
    };
  }

  stateTensors() {
    return { running_mean: this.runningMean };
  }

  enhance(input: EnhancerInput): tf.Tensor2D {
    this.seen.calls++;
    const map = input.extras[this.config.extra];
    if (!map) throw new Error(`toy enhancer: no extra '${this.config.extra}'`);
    if (map.shape[1] !== 2) throw new Error(`toy enhancer: map has ${map.shape[1]} channels, expected 2`);
    return tf.tidy(() => {
      const pooled = tf.mean(map, [2, 3]) as tf.Tensor2D;
      this.seen.lastMap = [...pooled.dataSync()];
      if (input.training) this.runningMean.assign(tf.add(tf.mul(this.runningMean, 0.9), tf.mul(tf.mean(pooled, 0), 0.1)));
      let out = tf.add(tf.matMul(tf.sub(pooled, this.runningMean), this.weight), this.bias);
      if (this.patchWeight) {
        const tokens = input.image.patchTokens;
        if (!tokens) throw new Error('toy enhancer: asked for patch tokens, got none');
        this.seen.patchTokens += tokens.shape[0];
        out = tf.add(out, tf.matMul(tf.mean(tokens, [1, 2]) as tf.Tensor2D, this.patchWeight));
      }
      if (this.boxWeight) {
        if (!input.boxes) throw new Error('toy enhancer: asked for boxes, got none');
        this.seen.boxes += input.boxes.shape[0];
        this.seen.lastBoxes = [...input.boxes.dataSync()];
        out = tf.add(out, tf.matMul(tf.div(tf.mean(input.boxes, 1), input.imageSize) as tf.Tensor2D, this.boxWeight));
      }
      out = tf.relu(out);
      return (this.config.lieAboutWidth ? tf.concat([out, out], 1) : out) as tf.Tensor2D;
    });
  }

  dispose() {
    tf.dispose([this.weight, this.bias, ...(this.patchWeight ? [this.patchWeight] : []), ...(this.boxWeight ? [this.boxWeight] : []), this.runningMean]);
  }
}

const ToyConcatConfig = z.object({ out: z.number().int().optional(), patchTokens: z.boolean().default(false), boxes: z.boolean().default(false) });

/** concat[image, enhanced...] (+ mean patch token) · W: a fused width `out` (default: the image width). */
export class ToyConcatFuser implements Fuser {
  readonly imageOptions?: EncodeImageOptions;
  readonly needsBoxes: boolean;
  weight?: tf.Variable;
  dims?: FusionDims;
  readonly seen = { names: [] as string[], boxes: 0, patchTokens: 0 };
  constructor(
    private readonly config: z.output<typeof ToyConcatConfig>,
    private readonly rng: Rng,
  ) {
    if (config.patchTokens) this.imageOptions = { patchTokens: true };
    this.needsBoxes = config.boxes;
  }
  build(dims: FusionDims): number {
    this.dims = dims;
    const inWidth = dims.image + dims.enhanced.reduce((a, e) => a + e.dim, 0) + (this.config.patchTokens ? dims.visionWidth : 0);
    const out = this.config.out ?? dims.image;
    this.weight = tf.variable(tf.tensor2d(this.rng.fork('concat').normalArray(inWidth * out, 0, 1 / Math.sqrt(inWidth)), [inWidth, out]), true, uniqueVariableName('toy_concat.w'));
    return out;
  }
  trainableVariables(): Record<string, tf.Variable> {
    if (!this.weight) throw new Error('toy concat: build() was not called');
    return { weight: this.weight };
  }
  fuse(input: FusionInput): tf.Tensor2D {
    this.seen.names = input.enhanced.map((e) => e.name);
    return tf.tidy(() => {
      const parts: tf.Tensor2D[] = [input.image, ...input.enhanced.map((e) => e.features)];
      if (this.config.patchTokens) {
        if (!input.imageFeatures.patchTokens) throw new Error('toy concat: no patch tokens');
        this.seen.patchTokens += input.imageFeatures.patchTokens.shape[0];
        parts.push(tf.mean(input.imageFeatures.patchTokens, [1, 2]) as tf.Tensor2D);
      }
      if (this.needsBoxes) {
        if (!input.boxes) throw new Error('toy concat: no boxes');
        this.seen.boxes += input.boxes.shape[0];
      }
      return tf.matMul(tf.concat(parts, 1), this.trainableVariables().weight!);
    });
  }
  dispose() {
    this.weight?.dispose();
  }
}

/** image + Σ enhanced, with no projection and no width check in `build`: a user's first naive fuser. */
export class ToyNaiveSumFuser implements Fuser {
  private readonly scale = tf.variable(tf.scalar(1), true, uniqueVariableName('toy_naive.scale'));
  build(dims: FusionDims): number {
    return dims.image;
  }
  trainableVariables() {
    return { scale: this.scale };
  }
  fuse(input: FusionInput): tf.Tensor2D {
    return tf.tidy(() => tf.mul(input.enhanced.reduce<tf.Tensor2D>((sum, e) => tf.add(sum, e.features), input.image), this.scale));
  }
  dispose() {
    this.scale.dispose();
  }
}

/** A sum that checks widths in `build`, as a careful fuser should. */
export class ToyCheckedSumFuser extends ToyNaiveSumFuser {
  override build(dims: FusionDims): number {
    const odd = dims.enhanced.filter((e) => e.dim !== dims.image);
    if (odd.length) throw new Error(`sum needs every input ${dims.image} wide (the image embedding's width); ${odd.map((e) => `${e.name} is ${e.dim}`).join(', ')}`);
    return dims.image;
  }
}

const ToyFusionLoaderConfig = z.object({ dim: z.number().int().default(6), grid: z.number().int().default(4), visionWidth: z.number().int().default(8), regions: z.number().int().default(2), imageSize: z.number().int().default(16) });

/**
 * The toy dataset's `.f32` vectors as cached features (or, when the detector needs pixels, flat images
 * coloured by them), plus what a cache would carry, derived from each vector so they carry the label
 * signal: patch tokens `[g, g, vw]` (when `needs.patchTokens`), a `[2, 4, 4]`
 * map for every extra key the detector needs, and `[R, 4]` boxes (when `needs.boxes`).
 */
class ToyFusionLoader implements BatchLoader {
  constructor(private readonly config: z.output<typeof ToyFusionLoaderConfig>) {}
  create(samples: Sample[], options: BatchSourceOptions): BatchSource {
    const { dim, grid, visionWidth, regions, imageSize } = this.config;
    const batchesPerEpoch = Math.ceil(samples.length / options.batchSize);
    return {
      size: samples.length,
      batchSize: options.batchSize,
      batchesPerEpoch,
      async *batches(epoch: number, { startBatch = 0 } = {}) {
        const order = options.shuffle ? rngFor(options.seed, `shuffle/${epoch}`).shuffle([...samples]) : samples;
        for (let b = startBatch; b < batchesPerEpoch; b++) {
          const chunk = order.slice(b * options.batchSize, (b + 1) * options.batchSize);
          const n = chunk.length;
          const vectors = chunk.map((s) => {
            const bytes = readFileSync(s.path);
            return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)).subarray(0, dim);
          });
          const rows = new Float32Array(n * dim);
          vectors.forEach((v, i) => rows.set(v, i * dim));
          const tensors: tf.Tensor[] = [];
          const keep = <T extends tf.Tensor>(t: T) => (tensors.push(t), t);
          const batch: Batch = {
            samples: chunk,
            labels: keep(tf.tensor1d(chunk.map((s) => s.label), 'int32')),
            features: keep(tf.tensor2d(rows, [n, dim])),
            dispose: () => tf.dispose(tensors),
          };
          if (options.needs.pixels) {
            // A flat image per sample whose colour is its vector (so the toy tower sees the label signal).
            const plane = imageSize * imageSize;
            const data = new Float32Array(n * 3 * plane);
            vectors.forEach((v, i) => { for (let c = 0; c < 3; c++) data.fill(v[c % dim]!, (i * 3 + c) * plane, (i * 3 + c + 1) * plane); });
            batch.pixels = keep(tf.tensor4d(data, [n, 3, imageSize, imageSize]));
          }
          if (options.needs.patchTokens) {
            const data = new Float32Array(n * grid * grid * visionWidth);
            vectors.forEach((v, i) => { for (let k = 0; k < grid * grid * visionWidth; k++) data[i * grid * grid * visionWidth + k] = Math.tanh(v[k % dim]! * ((k % 3) - 1)); });
            batch.patchTokens = keep(tf.tensor4d(data, [n, grid, grid, visionWidth]));
          }
          if (options.needs.extras.length) {
            batch.extras = {};
            for (const key of options.needs.extras) {
              const data = new Float32Array(n * 2 * 16);
              vectors.forEach((v, i) => { for (let k = 0; k < 32; k++) data[i * 32 + k] = v[k < 16 ? 0 : 1]! + 0.1 * Math.sin(k); });
              batch.extras[key] = keep(tf.tensor4d(data, [n, 2, 4, 4]));
            }
          }
          if (options.needs.boxes) {
            const data = new Float32Array(n * regions * 4);
            vectors.forEach((v, i) => { for (let r = 0; r < regions; r++) data.set([2 + r, 3, imageSize / 2 + Math.abs(v[0]!), imageSize - 2], (i * regions + r) * 4); });
            batch.boxes = keep(tf.tensor3d(data, [n, regions, 4]));
          }
          yield batch;
        }
      },
    };
  }
}

/** Registers the toy parts. Enhancers resolve the encoder for its vision width. */
export const toyFusionPlugin = definePlugin({
  name: 'toy-fusion-plugin',
  version: '1.0.0',
  register(r) {
    r.add({ kind: 'encoder', name: 'toy-encoder', config: ToyEncoderConfig, useFactory: (config, res) => new ToyEncoder(config, res.resolve<Rng>(TOKENS.Rng)) });
    r.add({
      kind: 'promptLearner',
      name: 'toy-prompt',
      config: z.object({ conditional: z.boolean().default(false) }),
      useFactory: (config, res) => new ToyPromptLearner(res.resolve<Encoder>(TOKENS.Encoder), res.resolve<Rng>(TOKENS.Rng), config.conditional),
    });
    r.add({
      kind: 'enhancer',
      name: 'toy-map',
      config: ToyEnhancerConfig,
      useFactory: (config, res) => new ToyMapEnhancer(config, res.resolve<Rng>(TOKENS.Rng).fork(`toy-map/${config.name ?? ''}/${config.outputDim}`), res.resolve<Encoder>(TOKENS.Encoder).info.visionWidth),
    });
    r.add({ kind: 'fuser', name: 'toy-concat', config: ToyConcatConfig, useFactory: (config, res) => new ToyConcatFuser(config, res.resolve<Rng>(TOKENS.Rng)) });
    r.add({ kind: 'fuser', name: 'toy-naive-sum', config: z.object({}), useFactory: () => new ToyNaiveSumFuser() });
    r.add({ kind: 'fuser', name: 'toy-checked-sum', config: z.object({}), useFactory: () => new ToyCheckedSumFuser() });
    r.add({ kind: 'loader', name: 'toy-fusion-features', config: ToyFusionLoaderConfig, useFactory: (config) => new ToyFusionLoader(config) });
  },
});
