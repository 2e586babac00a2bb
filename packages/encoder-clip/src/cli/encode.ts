/**
 * `dfd encode`: frozen CLIP image features for many images, into one safetensors file.
 *
 * Rows are images; `embeds [N, D]` (and `patch_tokens [N, h, w, width]` with --patch-tokens). The image
 * path of each row is written beside the tensors (`<out>.index.json`, and in the file's metadata). A second
 * run with the same --out skips the images already there (resumable). Every few batches the new rows are
 * saved as a part beside the output, and the run ends by joining the parts into it (encode-output.ts), so
 * an interrupted run loses at most those batches and no run holds all rows in memory. Images that cannot
 * be decoded are counted, logged with the reason and listed in the index, never written as rows.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  canonicalJson,
  ensureBackend,
  STOPPED_EXIT_CODE,
  UsageError,
  watchStopSignals,
  type CliCommand,
  type CliIO,
  type FrozenImageEncoder,
} from '@dfd/core';
import { loadClip } from '../load.js';
import { clipEncoderInfo, findClipOnnx, OnnxClipImageEncoder } from '../onnx-encoder.js';
import { calibrationImages, drawCalibrationImages } from './calibration.js';
import type { CalibrationSet } from '../onnx-build/calibrate.js';
import { TfjsClipImageEncoder } from '../frozen-tfjs.js';
import { FROZEN_PRECISIONS, type FrozenPrecision } from '../onnx-session.js';
import { pilSource, presetSource, type PixelSource, type SkippedImage } from './pixel-sources.js';
import { imagesFromGlob, imagesFromList } from './image-list.js';
import { parseFlags, positiveInt } from './args.js';
import { EncodeOutput, type OutputFacts } from './encode-output.js';
import { MERGE_USAGE, parseShard, runMerge, shardBlock, shardMetadata } from './shard.js';

const USAGE = `dfd encode --model DIR (--images GLOB | --dataset LIST) --out FILE.safetensors [options]

Frozen CLIP image embeddings (and optionally patch tokens) for many images.

  --model DIR          Hugging Face CLIP folder (config.json, model.safetensors, vocab.json, merges.txt[, onnx/])
  --images GLOB        images to encode, e.g. 'data/**/*.jpg' (quote it)
  --dataset LIST       a text file with one image path per line, or a JSON array of paths / {"path": ...}
  --out FILE           output .safetensors; the row index goes to FILE.index.json beside it
  --engine onnx|tfjs   onnx (default when DIR has onnx/vision_model.onnx or model.safetensors) or tfjs
  --precision P        fp32 (default) | int8 | bf16 for the onnx engine. int8: the vision tower is built from
                       model.safetensors with int8 encoder weights, once, and cached beside the model (1.5-2.2x fp32
                       measured on AVX2; more on VNNI/AMX CPUs);
                       bf16 is refused on CPU (onnxruntime has no fast bf16 kernel here)
  --calibrate N        with --precision int8: quantise activations statically (QDQ), with ranges calibrated on
                       N images drawn evenly from the whole list (every --shard draws the same ones), made
                       with this command's preprocessing; the graph is cached per calibration set. Without
                       it int8 quantises activations at run time (dynamic)
  --smooth-alpha A     with --calibrate: fold SmoothQuant's channel scales (migration strength A in [0, 1],
                       0.5 in the paper) into the LayerNorms and v first; default 0 (off, see the README)
  --onnx PATH          ONNX vision tower, when not at DIR/onnx/vision_model.onnx (fp32 only)
  --device cpu|cuda    onnxruntime device (cuda needs onnxruntime-node installed with ONNXRUNTIME_NODE_INSTALL=cuda12)
  --batch N            images per forward pass (default 16)
  --threads N          onnxruntime intra-op threads (default: all cores)
  --patch-tokens       also store patch tokens [N, h, w, width]
  --resample pil|sharp resize filter: pil (default, equals CLIPImageProcessor) or sharp (libvips, faster)
  --preset NAME        make the pixels with the eval view of a loader preset (clip, ufd, df40, clare, lare of
                       @dfd/dataset-df40's 'images' loader): the feature cache's own path, so rows equal the
                       cache's features for the same preset; recorded in the index (preprocessing)
  --loader NAME        the loader whose preset --preset names (default images)
  --checkpoint-every N save the new rows every N batches (default 20): an appended part, not a rewrite
  --shard K/N          encode only the K-th (0-based) of N contiguous blocks of the list, e.g. one Slurm
                       array task each (\`dfd slurm encode\`); join them with \`dfd encode merge\`

Re-running with the same --out skips images already in it.

${MERGE_USAGE}`;

interface IndexFile {
  model: string;
  engine: string;
  precision: string;
  /** What made the pixels: `{ transform: 'clip-eval', resample }`, or a loader preset's eval view (as in the feature-cache key). */
  preprocessing: Record<string, unknown>;
  weightsDigest: string;
  embedDim: number;
  patchTokens: boolean;
  rows: string[];
  skipped: SkippedImage[];
}

class Progress {
  private lastLine = 0;
  constructor(private readonly io: CliIO, private readonly total: number, private readonly start = Date.now()) {}

  update(done: number, force = false): void {
    const seconds = (Date.now() - this.start) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const text = `${done}/${this.total} images, ${rate.toFixed(1)} img/s`;
    if (this.io.isTTY) {
      const width = 30;
      const filled = this.total ? Math.round((done / this.total) * width) : width;
      this.io.stdout.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`);
      if (done >= this.total) this.io.stdout.write('\n');
    } else if (force || done >= this.total || Date.now() - this.lastLine > 10_000) {
      this.lastLine = Date.now();
      this.io.stdout.write(`encode: ${text}\n`);
    }
  }
}

async function openEngine(
  engine: string,
  model: string,
  values: Map<string, string>,
  io: CliIO,
  calibrate?: () => Promise<CalibrationSet>,
): Promise<FrozenImageEncoder> {
  if (engine === 'onnx') {
    const device = values.get('device') ?? 'cpu';
    if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`--device must be cpu or cuda, got '${device}'`);
    const threads = values.has('threads') ? positiveInt(values.get('threads'), 'threads', 1) : undefined;
    const precision = values.get('precision') ?? 'fp32';
    if (!FROZEN_PRECISIONS.includes(precision as FrozenPrecision)) throw new UsageError(`--precision must be one of ${FROZEN_PRECISIONS.join(', ')}, got '${precision}'`);
    if (calibrate && precision !== 'int8') throw new UsageError(`--calibrate goes with --precision int8 (static activation ranges), not ${precision}`);
    if (values.has('smooth-alpha') && !calibrate) throw new UsageError('--smooth-alpha goes with --calibrate N');
    const smoothAlpha = values.has('smooth-alpha') ? Number(values.get('smooth-alpha')) : undefined;
    if (smoothAlpha !== undefined && !(smoothAlpha >= 0 && smoothAlpha <= 1)) throw new UsageError(`--smooth-alpha must be a number in [0, 1], got '${values.get('smooth-alpha')}'`);
    const calibration = calibrate ? await calibrate() : undefined;
    return OnnxClipImageEncoder.create(model, {
      ...(calibration ? { calibration } : {}),
      ...(smoothAlpha !== undefined ? { smoothAlpha } : {}),
      device,
      precision: precision as FrozenPrecision,
      log: (message) => io.stderr.write(`encode: ${message}\n`),
      ...(values.has('onnx') ? { onnx: values.get('onnx')! } : {}),
      ...(threads ? { threads } : {}),
    });
  }
  if ((values.get('precision') ?? 'fp32') !== 'fp32') throw new UsageError(`--precision ${values.get('precision')} needs --engine onnx (the tfjs towers are fp32)`);
  if (calibrate) throw new UsageError('--calibrate needs --engine onnx --precision int8');
  await ensureBackend();
  return TfjsClipImageEncoder.wrap(await loadClip(model), true);
}

/** onnx whenever it can run: an export is there, or model.safetensors to build one from. */
async function defaultEngine(model: string, onnx: string | undefined): Promise<'onnx' | 'tfjs'> {
  try {
    await findClipOnnx(model, onnx);
    return 'onnx';
  } catch {
    return existsSync(join(model, 'model.safetensors')) ? 'onnx' : 'tfjs';
  }
}

function precisionOf(encoder: FrozenImageEncoder): string {
  return encoder.precision ?? 'fp32';
}

/** Refuses to add rows to a file written with another model, precision, flags, shard or preprocessing. */
function resumeCheck(encoder: FrozenImageEncoder, patchTokens: boolean, source: PixelSource, shard: string | undefined) {
  return (metadata: Record<string, string>, file: string): void => {
    if (metadata.weights_digest !== encoder.weightsDigest) {
      throw new UsageError(
        `${file} was written by another model or precision (weights digest ${metadata.weights_digest?.slice(0, 12) ?? 'unknown'}, precision ${metadata.precision ?? 'fp32'}; ` +
          `this one ${encoder.weightsDigest.slice(0, 12)}, precision ${precisionOf(encoder)}); ` +
          'choose another --out or delete the file to start over',
      );
    }
    if ((metadata.patch_tokens === 'true') !== patchTokens) {
      throw new UsageError(`${file} was written ${patchTokens ? 'without' : 'with'} --patch-tokens; use the same flags to resume, or another --out`);
    }
    if (metadata.shard !== shard) {
      throw new UsageError(`${file} was written ${metadata.shard ? `as shard ${metadata.shard}` : 'unsharded'}, not ${shard ? `as shard ${shard}` : 'unsharded'}; use the same --shard to resume, or another --out`);
    }
    // A preset's full description is known only once its loader is built; its name decides the resume check.
    const preset = source.preprocessing.preset as string | undefined;
    const recorded = metadata.preprocessing ?? canonicalJson({ transform: 'clip-eval', resample: 'pil' });
    const same = preset !== undefined ? metadata.preset === preset : !metadata.preset && recorded === canonicalJson(source.preprocessing);
    if (!same) throw new UsageError(`${file} was made with other preprocessing (${recorded}); use the same --preset/--resample to resume, or another --out`);
  };
}

/** The metadata of every file of the output (its rows' `paths` aside). */
function outputFacts(encoder: FrozenImageEncoder, model: string, patchTokens: boolean, preprocessing: Record<string, unknown>, shardFacts: Record<string, string>): OutputFacts {
  return {
    model,
    engine: encoder.engine,
    precision: precisionOf(encoder),
    weights_digest: encoder.weightsDigest,
    patch_tokens: String(patchTokens),
    preprocessing: canonicalJson(preprocessing),
    preset: String(preprocessing.preset ?? ''),
    ...shardFacts,
  };
}

/** `<out>.index.json` without its rows and skips. */
function indexFacts(encoder: FrozenImageEncoder, model: string, patchTokens: boolean, preprocessing: Record<string, unknown>): Omit<IndexFile, 'rows' | 'skipped'> {
  return { model, engine: encoder.engine, precision: precisionOf(encoder), weightsDigest: encoder.weightsDigest, embedDim: encoder.info.embedDim, patchTokens, preprocessing };
}

interface EncodeLoop {
  source: PixelSource;
  encoder: FrozenImageEncoder;
  batch: number;
  /** Save the new rows every this many batches. */
  every: number;
  patchTokens: boolean;
  skipped: SkippedImage[];
  progress: Progress;
  stop: { readonly requested: boolean };
}

/** Encodes `todo` into `output`, stopping after the batch in flight when asked; returns the images consumed. */
async function encodeInto(output: EncodeOutput, todo: string[], loop: EncodeLoop): Promise<number> {
  let processed = 0;
  let batches = 0;
  for await (const { chunk, good, pixels } of loop.source(todo, loop.batch, loop.encoder.info, loop.skipped)) {
    if (good.length) {
      const result = await loop.encoder.embed(pixels, good.length, { patchTokens: loop.patchTokens });
      output.add(good, result.embeds, result.patchTokens);
    }
    processed += chunk;
    loop.progress.update(processed);
    if (++batches % loop.every === 0) await output.checkpoint();
    if (loop.stop.requested && processed < todo.length) break;
  }
  return processed;
}

export const encodeCommand: CliCommand = {
  name: 'encode',
  summary: 'Frozen CLIP image embeddings (and patch tokens) for many images, resumable, into safetensors',
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    if (args[0] === 'merge') return runMerge(args.slice(1), io);
    const { values, booleans } = parseFlags(args, {
      values: ['model', 'images', 'dataset', 'out', 'engine', 'precision', 'calibrate', 'smooth-alpha', 'preset', 'loader', 'onnx', 'device', 'batch', 'threads', 'resample', 'checkpoint-every', 'shard'],
      booleans: ['patch-tokens', 'help'],
    });
    if (booleans.has('help')) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const modelArg = values.get('model');
    const outArg = values.get('out');
    if (!modelArg) throw new UsageError('--model DIR is required');
    if (!outArg) throw new UsageError('--out FILE.safetensors is required');
    if (values.has('images') === values.has('dataset')) throw new UsageError('give exactly one of --images GLOB or --dataset LIST');
    const model = resolve(io.cwd, modelArg);
    const out = resolve(io.cwd, outArg);
    const batch = positiveInt(values.get('batch'), 'batch', 16);
    const every = positiveInt(values.get('checkpoint-every'), 'checkpoint-every', 20);
    const resample = values.get('resample') ?? 'pil';
    if (resample !== 'pil' && resample !== 'sharp') throw new UsageError(`--resample must be pil or sharp, got '${resample}'`);
    const onnxPath = values.has('onnx') ? resolve(io.cwd, values.get('onnx')!) : undefined;
    if (onnxPath) values.set('onnx', onnxPath);
    const engine = values.get('engine') ?? (await defaultEngine(model, onnxPath));
    if (engine !== 'onnx' && engine !== 'tfjs') throw new UsageError(`--engine must be onnx or tfjs, got '${engine}'`);
    const patchTokens = booleans.has('patch-tokens');

    const preset = values.get('preset');
    if (values.has('loader') && !preset) throw new UsageError('--loader goes with --preset NAME');
    const source: PixelSource = preset
      ? presetSource(io, values.get('loader') ?? 'images', preset)
      : pilSource(resample, (path, reason) => io.stderr.write(`encode: skip ${path}: ${reason}\n`));
    const shard = values.has('shard') ? parseShard(values.get('shard')!) : undefined;
    const listed = values.has('images') ? await imagesFromGlob(values.get('images')!, io.cwd) : await imagesFromList(values.get('dataset')!, io.cwd);
    const images = shard ? shardBlock(listed, shard) : listed;
    const shardFacts = shard ? shardMetadata(listed, shard, images.length) : {};
    const calibrate = values.has('calibrate')
      ? async () => {
          const count = positiveInt(values.get('calibrate'), 'calibrate', 1);
          const info = await clipEncoderInfo(model);
          return calibrationImages(drawCalibrationImages(listed, count), source, info, (message) => io.stderr.write(`encode: ${message}\n`));
        }
      : undefined;
    const encoder = await openEngine(engine, model, values, io, calibrate);
    const stop = watchStopSignals(io, 'encode');
    try {
      const info = encoder.info;
      const shapes = { embeds: [info.embedDim], ...(patchTokens ? { patchTokens: [info.gridSize, info.gridSize, info.visionWidth] } : {}) };
      const facts = () => outputFacts(encoder, model, patchTokens, source.preprocessing, shardFacts);
      const output = await EncodeOutput.open(out, facts, shapes, resumeCheck(encoder, patchTokens, source, shardFacts.shard));
      const done = new Set(output.paths);
      const todo = images.filter((p) => !done.has(p));
      io.stdout.write(
        `encode: ${images.length} images, ${images.length - todo.length} already in ${out}, ${todo.length} to do ` +
          `(${encoder.info.name}, ${encoder.engine}, ${precisionOf(encoder)}, batch ${batch}${shard ? `, shard ${shard.index}/${shard.count} of ${listed.length}` : ''})\n`,
      );
      const skipped: IndexFile['skipped'] = [];
      const processed = await encodeInto(output, todo, { source, encoder, batch, every, patchTokens, skipped, progress: new Progress(io, todo.length), stop });
      await output.finish(indexFacts(encoder, model, patchTokens, source.preprocessing), skipped);
      if (stop.requested && processed < todo.length) {
        io.stdout.write(`encode: stopped by ${stop.signal} after ${processed}/${todo.length} images; ${output.paths.length} rows saved to ${out}; rerun the same command to continue\n`);
        return STOPPED_EXIT_CODE;
      }
      io.stdout.write(`encode: wrote ${output.paths.length} rows to ${out} (index ${out}.index.json)${skipped.length ? `; skipped ${skipped.length} unreadable image(s)` : ''}\n`);
      return 0;
    } finally {
      stop.release();
      await encoder.dispose();
    }
  },
};
