/** `dfd lare extract`: LaRE maps for a list of images into an extras store (resumable, shardable). */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { STOPPED_EXIT_CODE, UsageError, watchStopSignals, type CliIO } from '@dfd/core';
import { DEFAULT_PROMPT, LareExtractor, type LareImage, type LareSettings } from '../stage1/lare.js';
import { openSdOnnx, type SdOnnxModel } from '../stage1/sd-model.js';
import type { LareDevice } from '../stage1/session.js';
import type { LarePrecision } from '../stage1/int8-graph.js';
import { openSdOnnxStaticInt8 } from '../stage1/static-int8.js';
import { parseShard, type Shard } from '../stage1/shard.js';
import { readLareImages, runExtraction } from '../stage1/extract-run.js';
import { drawCalibrationImages, readImageList } from '@dfd/encoder-clip';
import { Progress, formatDuration } from './progress.js';
import { intOption } from './options.js';

export const EXTRACT_USAGE = `dfd lare extract --model DIR --dataset LIST --out DIR [options]

LaRE maps (latent reconstruction error of Stable Diffusion, LaRE² stage 1) for every listed image, into an
extras store that datasets read with extras: { lare: { root: DIR } }.

  --model DIR        SD ONNX folder (tools/sd-onnx/export_sd_onnx.py output: text_encoder/, vae_encoder/, unet/, ...)
  --dataset LIST     images: a text file, one path per line (a tab and what follows, e.g. a label, is ignored),
                     or a JSON array of paths / {"path": ...}; labels are never read
  --out DIR          the store (created; re-running the same command skips the images already in it)
  --timestep T       diffusion timestep (default 200)
  --ensemble E       noise copies averaged per image (default 4)
  --size S           images are resized to S×S, PIL bicubic (default 256; maps are [4, S/8, S/8])
  --prompt TEXT      fixed text condition (default "${DEFAULT_PROMPT}"); never derived from labels
  --seed N           seed of the per-image noise, keyed by (seed, image content hash) (default 0)
  --noise FILE       safetensors with image_noise [4,h,w] and eps [E,4,h,w], used for every image (exact comparisons)
  --batch B          images per VAE/UNet call (default 1; the UNet sees B·E latents). Dynamic int8 runs one
                     image per call whatever B is (its ranges are per call, so a batch would change the maps)
  --shard K/N        only the images whose content hash falls in shard K of N (K from 0); N runs cover all
  --precision fp32|int8  (default fp32) int8 alone: the UNet's MatMul weights int8, activations quantised at
                     run time (DynamicQuantizeMatMul), made once by our own tooling and cached beside the model
                     (unet/dfd-int8.onnx + manifest; ~/.cache/dfd/sd-int8/ when the folder is read-only).
                     Recorded in the store's settings: fp32 and int8 maps never mix in one store
  --calibrate N      with --precision int8: static int8 (QDQ) for the VAE encoder and the UNet, convolutions
                     included, with activation ranges calibrated on N images drawn evenly from the whole list
                     (not the shard: every shard gets the same graphs) through this run's settings; cached per
                     calibration (dfd-int8-static-<key>.onnx in each graph folder). 1.4× dynamic int8 on SD 1.5 here
  --int8-min-elements N  int8: weights with fewer elements stay fp32 (default 4096; part of the settings)
  --threads N        onnxruntime intra-op threads (default: all cores)
  --device cpu|cuda  cuda needs onnxruntime-node installed with ONNXRUNTIME_NODE_INSTALL=cuda12 (untested here)
  --checkpoint-every N  write the index every N batches (default 8)`;

/** `--calibrate N`: N images drawn evenly from the whole list, read as the extraction reads them. */
async function calibrationImages(paths: string[], count: number, size: number, io: CliIO): Promise<LareImage[]> {
  const drawn = drawCalibrationImages(paths, count);
  const { images, skipped } = await readLareImages(drawn, size);
  if (skipped.length) io.stderr.write(`lare: calibration: ${skipped.length} of ${drawn.length} drawn images could not be read and are left out (first: ${skipped[0]!.path}: ${skipped[0]!.reason})\n`);
  return images;
}

/** Everything `dfd lare extract` was asked to do, checked. */
interface ExtractCommand {
  modelDir: string;
  images: string[];
  out: string;
  shard: Shard | undefined;
  settings: LareSettings;
  noiseDigest: string | undefined;
  device: LareDevice;
  threads: number | undefined;
  precision: LarePrecision;
  /** Static int8: the calibration set's size. */
  calibrate: number | undefined;
  minElements: number | undefined;
  batch: number;
  checkpointEvery: number;
}

async function parseExtract(args: string[], io: CliIO): Promise<ExtractCommand> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      dataset: { type: 'string' },
      out: { type: 'string' },
      timestep: { type: 'string' },
      ensemble: { type: 'string' },
      size: { type: 'string' },
      prompt: { type: 'string' },
      seed: { type: 'string' },
      noise: { type: 'string' },
      batch: { type: 'string' },
      shard: { type: 'string' },
      threads: { type: 'string' },
      device: { type: 'string' },
      precision: { type: 'string' },
      'int8-min-elements': { type: 'string' },
      calibrate: { type: 'string' },
      'checkpoint-every': { type: 'string' },
    },
    strict: true,
  });
  if (!values.model) throw new UsageError('--model DIR is required');
  if (!values.dataset) throw new UsageError('--dataset LIST is required');
  if (!values.out) throw new UsageError('--out DIR is required');
  const device = values.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`--device must be cpu or cuda, got '${device}'`);
  const precision = values.precision ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'int8') throw new UsageError(`--precision must be fp32 or int8, got '${precision}'`);
  if (values.calibrate !== undefined && precision !== 'int8') throw new UsageError(`--calibrate goes with --precision int8 (static activation ranges), not ${precision}`);
  let shard;
  try {
    shard = values.shard ? parseShard(values.shard) : undefined;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const noiseFile = values.noise ? resolve(io.cwd, values.noise) : undefined;
  return {
    modelDir: resolve(io.cwd, values.model),
    images: (await readImageList(values.dataset, io.cwd)).map((i) => i.path),
    out: resolve(io.cwd, values.out),
    shard,
    settings: {
      timestep: intOption(values.timestep, 'timestep', 0, 200),
      ensemble: intOption(values.ensemble, 'ensemble', 1, 4),
      size: intOption(values.size, 'size', 8, 256),
      prompt: values.prompt ?? DEFAULT_PROMPT,
      seed: intOption(values.seed, 'seed', 0, 0),
      ...(noiseFile ? { noiseFile } : {}),
    },
    noiseDigest: noiseFile ? createHash('sha256').update(await readFile(noiseFile)).digest('hex') : undefined,
    device,
    threads: values.threads ? intOption(values.threads, 'threads', 1) : undefined,
    precision,
    calibrate: values.calibrate !== undefined ? intOption(values.calibrate, 'calibrate', 1) : undefined,
    minElements: values['int8-min-elements'] ? intOption(values['int8-min-elements'], 'int8-min-elements', 1) : undefined,
    batch: intOption(values.batch, 'batch', 1, 1),
    checkpointEvery: intOption(values['checkpoint-every'], 'checkpoint-every', 1, 8),
  };
}

/** The SD export at the command's precision: fp32, dynamic int8 (the UNet's MatMuls) or static int8 (calibrated first when not cached). */
async function openModel(cmd: ExtractCommand, io: CliIO): Promise<SdOnnxModel> {
  const common = { device: cmd.device, ...(cmd.threads ? { threads: cmd.threads } : {}), log: (message: string) => io.stdout.write(`lare: ${message}\n`) };
  if (cmd.calibrate === undefined) {
    return openSdOnnx(cmd.modelDir, { ...common, precision: cmd.precision, ...(cmd.minElements ? { int8MinElements: cmd.minElements } : {}) });
  }
  const calibration = await calibrationImages(cmd.images, cmd.calibrate, cmd.settings.size, io);
  return openSdOnnxStaticInt8(cmd.modelDir, cmd.settings, calibration, {
    ...common,
    ...(cmd.minElements ? { minElements: cmd.minElements } : {}),
    ...(cmd.noiseDigest ? { noiseDigest: cmd.noiseDigest } : {}),
  });
}

export async function extract(args: string[], io: CliIO): Promise<number> {
  const cmd = await parseExtract(args, io);
  const { images, out, settings } = cmd;
  const model = await openModel(cmd, io);
  const stop = watchStopSignals(io, 'lare');
  try {
    const extractor = await LareExtractor.create(model, settings, cmd.noiseDigest);
    const precision = cmd.calibrate !== undefined ? `int8 static, ${cmd.calibrate} calibration images` : cmd.precision;
    let progress: Progress | undefined;
    const result = await runExtraction({
      extractor,
      images,
      out,
      ...(cmd.shard ? { shard: cmd.shard } : {}),
      batch: cmd.batch,
      checkpointEvery: cmd.checkpointEvery,
      onStart: ({ total, alreadyDone, otherShards }) => {
        io.stdout.write(
          `lare: ${images.length} images listed, ${alreadyDone} already in ${out}, ${otherShards ? `${otherShards} in other shards, ` : ''}${total} to do ` +
            `(t=${settings.timestep}, E=${settings.ensemble}, size ${settings.size}, ${cmd.device}, ${precision})\n`,
        );
        progress = new Progress(io, 'lare', total);
      },
      onProgress: (done, _total, skipped) => progress?.update(done, skipped),
      onSkip: (path, reason) => io.stderr.write(`lare: skip ${path}: ${reason}\n`),
      shouldStop: () => stop.requested,
    });
    const t = result.times;
    io.stdout.write(
      `lare: wrote ${result.written} maps to ${out} in ${formatDuration(result.seconds)} (VAE ${(t.vaeMs / 1000).toFixed(1)} s, UNet ${(t.unetMs / 1000).toFixed(1)} s)` +
        `${result.skipped.length ? `; ${result.skipped.length} image(s) skipped, listed in the index's "skipped"` : ''}\n`,
    );
    if (result.stopped) {
      io.stdout.write(`lare: stopped by ${stop.signal} with every finished map saved; rerun the same command to continue\n`);
      return STOPPED_EXIT_CODE;
    }
    return 0;
  } finally {
    stop.release();
    await model.dispose();
  }
}
