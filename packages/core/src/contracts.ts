/**
 * The contracts every @dfd plugin implements. They are deliberately small: a plugin implements one of
 * them, registers it under a name, and the experiment runner wires the parts together.
 *
 * Conventions shared by every contract (see shared/reference/methods.md):
 * - labels: 0 = real, 1 = fake; a "score" or "probability" is always P(fake);
 * - pixel batches are NCHW `[B, 3, H, W]` float32, already normalised (the layout of PyTorch, Hugging Face
 *   and the ONNX exports, so fixtures compare directly); tfjs encoders transpose internally;
 * - spatial feature maps are NHWC `[B, h, w, C]` (tfjs' native conv layout);
 * - every method that returns tensors hands ownership to the caller (the caller disposes, or runs it
 *   inside `tf.tidy`).
 */
import type * as tf from '@tensorflow/tfjs';
import type { Observable } from 'rxjs';
import type { RunEvent } from './events.js';

export type Label = 0 | 1;
export type Split = 'train' | 'val' | 'test';

/** Anything with trainable weights. Names are stable: they key optimizer state and checkpoints. */
export interface Module {
  /** Trainable variables by stable name (e.g. `ctx`, `meta_net.linear1.weight`). Frozen weights are not listed. */
  trainableVariables(): Record<string, tf.Variable>;
  /**
   * Non-trainable state that must survive a checkpoint (e.g. running statistics), by stable name. Optional.
   * They are variables created with `trainable = false` (`tf.variable(x, false, name)`), so a checkpoint
   * restores them in place by `assign`; checkpoints store them beside the weights and resume/predict load them.
   */
  stateTensors?(): Record<string, tf.Variable>;
  dispose(): void;
}

// ---------------------------------------------------------------------------------------------------------
// Data

/** An axis-aligned face region in the pixel coordinates of the image it belongs to. */
export interface FaceBox {
  /** e.g. `left_eye`, `right_eye`, `nose`, `mouth`, `jaw`. */
  region: string;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** One image (a frame of a video, or a still) with everything a method may need about it. */
export interface Sample {
  /** Stable unique id; the resolved file path unless the dataset says otherwise. */
  id: string;
  /** Absolute path of the image file. */
  path: string;
  label: Label;
  /** The dataset/method this sample belongs to, e.g. `heygen`, `FF-real`. Used for per-subset metrics. */
  subset: string;
  split: Split;
  /** Unique per (subset, label, video): never the bare parent-folder name, which collides across methods. */
  videoId: string;
  frameIndex?: number;
  /** Face regions in source-image pixels (scaled by the image pipeline with every crop and resize). */
  boxes?: FaceBox[];
  /** Paths of extra per-image inputs by key, e.g. `{ lare: '/maps/x.safetensors' }`. */
  extras?: Record<string, string>;
}

export interface SampleQuery {
  split: Split;
  /** Restrict to these subsets (dataset/method names or aliases). Default: every subset of the split. */
  subsets?: string[];
}

/** Counts a dataset reports about what it could not load; nothing is silently dropped. */
export interface DataIssues {
  missing: number;
  empty: number;
  corrupt: number;
  /** Human-readable descriptions (file path + what to do), capped by the dataset. */
  messages: string[];
}

/** Why a listed frame was not scored. */
export type DropReason = 'missing' | 'empty' | 'corrupt' | 'no-extras';

/**
 * A file (or a video folder) an evaluation could not use. `frames` is how many protocol frames it cost: a
 * missing video costs the frames it would have given; a missing frame another one replaced costs 0.
 */
export interface DroppedInput {
  subset: string;
  videoId: string;
  path: string;
  reason: DropReason;
  frames: number;
  message?: string;
}

export interface Dataset {
  readonly name: string;
  /** Subsets present for a split. */
  subsets(split: Split): Promise<string[]>;
  /** Lists samples; never decodes images. */
  samples(query: SampleQuery): Promise<Sample[]>;
  /**
   * The per-image extras (`Sample.extras`) this dataset's configuration holds for an image, also one outside
   * its listing (inference on a new image): only those that exist (a map file, a store indexing the image).
   * Optional; `dfd predict` uses it, then the plugins' extra providers for what is still missing.
   */
  extrasFor?(imagePath: string): Promise<Record<string, string>>;
  /** Problems found while listing (missing folders, empty videos ...). */
  issues?(): DataIssues;
  /** What listing left out of these samples (missing frames, missing or empty videos), for coverage. */
  dropped?(query: SampleQuery): Promise<DroppedInput[]>;
  /** A content digest of the listing, logged as the dataset input of a run. */
  digest?(query: SampleQuery): Promise<string>;
  /** Protocol facts recorded with every evaluation (frames per video, frame sampling, real sources ...). */
  protocolFacts?(): Record<string, string | number | boolean>;
}

/** What the model sees for one step. Tensors are owned by the batch; the consumer calls `dispose()`. */
export interface Batch {
  samples: Sample[];
  /** `[B]` int32 labels. */
  labels: tf.Tensor1D;
  /** `[B, 3, H, W]` normalised pixels, when the detector needs pixels. */
  pixels?: tf.Tensor4D;
  /** `[B, D]` precomputed frozen image embeddings (feature cache), when the detector works on features. */
  features?: tf.Tensor2D;
  /** `[B, h, w, C]` precomputed frozen patch tokens (feature cache), when `needs.patchTokens` in features mode. */
  patchTokens?: tf.Tensor4D;
  /** Extra per-image inputs by key, e.g. `lare` → `[B, 4, 32, 32]`. */
  extras?: Record<string, tf.Tensor>;
  /** `[B, R, 4]` boxes (x1, y1, x2, y2) in the pixel coordinates of `pixels`, regions in a fixed order. */
  boxes?: tf.Tensor3D;
  dispose(): void;
}

/** A source of batches for one split. Iterating twice with the same epoch index yields the same batches. */
export interface BatchSource {
  readonly size: number;
  readonly batchSize: number;
  /** Number of batches per epoch. */
  readonly batchesPerEpoch: number;
  batches(epoch: number, options?: { startBatch?: number }): AsyncIterable<Batch>;
}

export interface BatchSourceOptions {
  split: Split;
  batchSize: number;
  /** Shuffle (train) or keep listing order (val/test). */
  shuffle: boolean;
  /** Apply training augmentation (train) or the deterministic eval transform. */
  augment: boolean;
  /** Seed for shuffling and augmentation; the same seed and epoch give the same batches. */
  seed: number;
  /** What the detector consumes. */
  needs: Detector['needs'];
  /** Drop a last partial batch (train). */
  dropLast?: boolean;
}

/** Turns listed samples into batches: decoding, transforms, extras, feature caches. */
export interface BatchLoader {
  create(samples: Sample[], options: BatchSourceOptions): BatchSource;
  /** Counted skips (corrupt images ...) so far. */
  skipped?(): { count: number; messages: string[] };
  /** Why this sample was left out of its batches, when it was (for evaluation coverage). */
  dropReason?(sample: Sample): { reason: DropReason; message: string } | undefined;
  /**
   * Skips so far by split, subset and reason (e.g. `no-extras`), for the run's protocol facts and
   * coverage report. Optional; a loader that never leaves samples out by policy may omit it.
   */
  skipCounts?(): SkipCount[];
  /** Facts about how features are made (frozen engine precision, cached view), recorded in the run's protocol. */
  protocolFacts?(): Record<string, string | number>;
}

/** How many samples of one (split, subset) a loader left out, and why. */
export interface SkipCount {
  split: Split;
  subset: string;
  /** `no-extras` (opt-in skip of samples without their extra map), `corrupt`, ... */
  reason: string;
  count: number;
}

// ---------------------------------------------------------------------------------------------------------
// Models

export interface EncoderInfo {
  name: string;
  imageSize: number;
  /** Size of the projected (joint) embedding. */
  embedDim: number;
  /** Width of the vision transformer (patch-token channels). */
  visionWidth: number;
  /** Width of the text transformer = token-embedding size (`ctx_dim` in CoOp). */
  textWidth: number;
  contextLength: number;
  /** Patch grid side (224/16 = 14 for ViT-B/16). */
  gridSize: number;
  /** `exp(logit_scale)`, frozen (100 for the released CLIP checkpoints). */
  logitScale: number;
  mean: [number, number, number];
  std: [number, number, number];
}

export interface ImageFeatures {
  /** `[B, embedDim]` projected CLS embedding, not L2-normalised. */
  embeds: tf.Tensor2D;
  /** `[B, h, w, visionWidth]` last-layer patch tokens, without `ln_post` (as in CLIP). On request. */
  patchTokens?: tf.Tensor4D;
  /** Hidden states of requested layers, `[B, 1 + h*w, visionWidth]`, keyed by layer index (0 = embeddings). */
  hiddenStates?: Record<number, tf.Tensor3D>;
}

export interface EncodeImageOptions {
  patchTokens?: boolean;
  hiddenLayers?: number[];
}

/** Token ids for the text tower: `[N, contextLength]` int32 plus the EOT position of each row. */
export interface TokenizedText {
  ids: tf.Tensor2D;
  eotIndices: number[];
  /** Number of BPE tokens in each text (without SOS/EOT). */
  lengths: number[];
}

export type TextInput =
  | { ids: tf.Tensor2D; eotIndices: number[] }
  /** `[N, L, textWidth]` token embeddings (e.g. with learned context spliced in); gradients flow into them. */
  | { embeddings: tf.Tensor3D; eotIndices: number[] };

export interface Encoder extends Module {
  readonly info: EncoderInfo;
  encodeImage(pixels: tf.Tensor4D, options?: EncodeImageOptions): ImageFeatures;
  tokenize(texts: string[]): TokenizedText;
  /** `[N, L]` ids → `[N, L, textWidth]` token embeddings (frozen lookup). */
  embedTokens(ids: tf.Tensor2D): tf.Tensor3D;
  /** `[N, embedDim]` projected text features, not L2-normalised. */
  encodeText(input: TextInput): tf.Tensor2D;
  /** Make the image tower (or parts of it) trainable; frozen by default. */
  setTrainable?(part: 'none' | 'vision' | 'text' | 'all'): void;
  /**
   * The fast frozen image path for the same weights (e.g. onnxruntime), if the encoder offers one. The
   * feature cache uses it to encode once; without it, the cache runs this encoder's own image tower.
   */
  frozenImageEncoder?(context?: FrozenEncoderContext): Promise<FrozenImageEncoder>;
  /** The numeric precision `frozenImageEncoder()` runs in (`fp32` when absent), known before it is opened. */
  readonly frozenPrecision?: string;
}

/** What the feature cache tells the frozen path it opens: how the pixels it will encode are made. */
export interface FrozenEncoderContext {
  /**
   * The cache's eval-view pixels (NCHW float32) of any images, in order, `batchSize` at a time; unreadable
   * images are left out and named in `skipped`. An int8 path calibrates on these, so its activation ranges
   * are those of the pixels it will encode.
   */
  evalPixels(paths: string[], batchSize: number): AsyncIterable<EvalPixels>;
}

/** One batch of `FrozenEncoderContext.evalPixels`: the readable `paths` and their pixels; `skipped`: the rest, with reasons. */
export interface EvalPixels {
  paths: string[];
  pixels: Float32Array;
  skipped: { path: string; reason: string }[];
}

/** A fast frozen image path (e.g. onnxruntime) for feature extraction at scale. */
export interface FrozenImageEncoder {
  readonly info: EncoderInfo;
  readonly engine: string;
  /** Numeric precision of the frozen weights (`fp32` when absent); part of feature-cache keys and run facts. */
  readonly precision?: string;
  /** `pixels` NCHW float32 of `count` images → `[count, embedDim]` embeddings (+ patch tokens NHWC when asked). */
  embed(pixels: Float32Array, count: number, options?: { patchTokens?: boolean }): Promise<{
    embeds: Float32Array;
    patchTokens?: Float32Array;
  }>;
  /** A digest of the weights, used to key feature caches. */
  readonly weightsDigest: string;
  dispose(): Promise<void>;
}

export interface PromptContext {
  encoder: Encoder;
  /** `[B, embedDim]` L2-normalised image features, for conditional learners (CoCoOp). */
  imageFeatures?: tf.Tensor2D;
  training: boolean;
}

export interface PromptLearner extends Module {
  readonly classNames: string[];
  /** True when text features depend on the image (CoCoOp): then `textFeatures` returns `[B, nCls, D]`. */
  readonly conditional: boolean;
  /** `[nCls, D]` (or `[B, nCls, D]` when conditional) text features, not normalised. */
  textFeatures(context: PromptContext): tf.Tensor2D | tf.Tensor3D;
  /**
   * Conditional learners only: the width of `PromptContext.imageFeatures` they will be given — the fused
   * width when a fuser widens the image feature (CLaRE: 3072), else `embedDim`. The detector calls it once at
   * assembly, before any variable is read or restored, so the learner can size its conditioning (CoCoOp's
   * meta-net input) for it. A learner without it must take `embedDim`.
   */
  bindImageWidth?(width: number): void;
}

/** What an enhancer sees of one batch. */
export interface EnhancerInput {
  /** Everything the image tower gave (patch tokens / hidden layers when some part asked for them). */
  image: ImageFeatures;
  extras: Record<string, tf.Tensor>;
  /** `[B, R, 4]` face boxes (x1, y1, x2, y2) in pixels of the `imageSize`-square input, when `needsBoxes`. */
  boxes?: tf.Tensor3D;
  /** Side of the square input image in pixels: scale boxes by `gridSize / imageSize` to reach the patch grid. */
  imageSize: number;
  training: boolean;
}

/** Extra per-image signals in, features out (LaRE stage 2: EGRE, MLP, RoI). */
export interface FeatureEnhancer extends Module {
  /** Its name in fusion inputs and messages, e.g. `lare-egre` (default `enhancer<i>`). */
  readonly name?: string;
  /** Keys of `Batch.extras` this enhancer needs, e.g. `['lare']`. */
  readonly requires: string[];
  readonly outputDim: number;
  /** What it needs from the encoder (e.g. `{ patchTokens: true }`). */
  readonly imageOptions?: EncodeImageOptions;
  /** True when it needs the batch's face boxes (RoI pooling). */
  readonly needsBoxes?: boolean;
  enhance(input: EnhancerInput): tf.Tensor2D;
}

/** The widths a fuser is built for. */
export interface FusionDims {
  /** Width of the projected image embedding (`embedDim`). */
  image: number;
  /** Each enhancer's output width, in the experiment's order, named by its component name. */
  enhanced: Array<{ name: string; dim: number }>;
  /** Patch-token channels and grid side of the image tower (for token-level fusion). */
  visionWidth: number;
  gridSize: number;
  imageSize: number;
}

/** Named inputs of a fuser: the image embedding, each enhancer's features, and the batch context. */
export interface FusionInput {
  /** `[B, embedDim]` projected CLS embedding, not normalised. */
  image: tf.Tensor2D;
  /** Each enhancer's `[B, D_i]` output, in the order of `FusionDims.enhanced`. */
  enhanced: Array<{ name: string; features: tf.Tensor2D }>;
  /** Everything the image tower gave: patch tokens `[B, h, w, C]` when the fuser or an enhancer asked. */
  imageFeatures: ImageFeatures;
  extras: Record<string, tf.Tensor>;
  /** `[B, R, 4]` face boxes in input pixels, when `needsBoxes`. */
  boxes?: tf.Tensor3D;
  imageSize: number;
  training: boolean;
}

/** Several feature sets in, one out (concat, sum, attention, RoI). */
export interface Fuser extends Module {
  /** What it needs from the encoder beyond the embedding (e.g. `{ patchTokens: true }` for token attention). */
  readonly imageOptions?: EncodeImageOptions;
  readonly needsBoxes?: boolean;
  /**
   * Called once at assembly with the input widths: creates the fuser's weights and returns the fused width.
   * Throws a message naming the parts and their widths when they cannot be fused.
   */
  build(dims: FusionDims): number;
  fuse(input: FusionInput): tf.Tensor2D;
}

/** The assembled model: a batch in, logits out. */
export interface Detector extends Module {
  /** What the batches must contain. */
  readonly needs: {
    pixels: boolean;
    features: boolean;
    extras: string[];
    boxes: boolean;
    /** In features mode: the loader must also supply cached patch tokens (`Batch.patchTokens`). */
    patchTokens?: boolean;
  };
  /** Logits: `[B, 2]` (softmax, class 1 = fake) or `[B, 1]` (sigmoid). */
  forward(batch: Batch, training: boolean): tf.Tensor2D;
  /** Scalar loss from logits and `[B]` labels. */
  loss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar;
  /** `[B]` P(fake) from logits. */
  probabilities(logits: tf.Tensor2D): tf.Tensor1D;
}

// ---------------------------------------------------------------------------------------------------------
// Evaluation and tracking

export interface ScoredSet {
  scores: Float64Array | number[];
  labels: ArrayLike<number>;
  subsets?: string[];
  videoIds?: string[];
}

export interface MetricValues {
  [metric: string]: number;
}

export interface EvaluationReport {
  /** Metrics over everything evaluated. */
  overall: MetricValues;
  /** Metrics per subset, plus their mean under `mean` when there are subsets. */
  subsets: Record<string, MetricValues>;
  /**
   * Means over named groups of subsets the dataset declares (protocol fact `subset_groups`, e.g. test sets
   * whose artefact family training saw vs not), when every member was evaluated.
   */
  groups?: Record<string, MetricValues>;
  /** Protocol facts recorded with the numbers (selection split, frames per video, sampling ...). */
  protocol: Record<string, string | number | boolean>;
  /** What the numbers cover: frames and videos listed, scored and dropped, per subset (set by the runner). */
  coverage?: Coverage;
}

/** Frames and videos an evaluation listed, scored and dropped (by reason). */
export interface CoverageCounts {
  /** `replaced`: missing files whose place the frame sampling filled with another frame of the video. */
  frames: { listed: number; scored: number; dropped: Record<DropReason, number>; replaced: number };
  videos: { listed: number; scored: number };
}

export interface Coverage {
  /** True when every listed frame was scored. */
  complete: boolean;
  overall: CoverageCounts;
  subsets: Record<string, CoverageCounts>;
}

export interface Evaluator {
  readonly name: string;
  /** Test subsets to evaluate, in report order. */
  readonly subsets?: string[];
  evaluate(scored: ScoredSet, protocol: Record<string, string | number | boolean>): EvaluationReport;
  /** Writes the report files (report.json, report.html ...) into `dir`; returns the paths written. */
  writeReport?(report: EvaluationReport, scored: ScoredSet, dir: string): Promise<string[]>;
}

export interface RunInfo {
  runId: string;
  experiment: string;
  runDir: string;
  /** Parent run id for sweeps. */
  parentRunId?: string;
}

/** Subscribes to a run's events. A tracker that throws is detached with a warning; training goes on. */
export interface Tracker {
  readonly name: string;
  attach(events: Observable<RunEvent>, run: RunInfo): void | Promise<void>;
  /** Flushes and releases resources; called once after the `end` event. */
  close(): Promise<void>;
}
