/**
 * Does int8 change what a detector learns? CoOp and UFD on the synthetic mini-DF40, trained and tested on
 * frozen features of the same CLIP at fp32, at dynamic int8 (`encoder.config.precision`) and at static int8
 * (`encoder.config.calibrate`: 64 images of the training fakes, DF40_train), same seeds; prints the
 * mean test AUC over DF40's 8 test subsets and its change (target |ΔAUC| <= 0.002), the largest per-subset
 * change, and first the embedding cosine of each int8 variant to fp32 on 400 test images. Synthetic data
 * and a tiny CLIP: the figures say whether quantisation moves a trained detector here, not what it does on
 * real DF40 with ViT-L/14.
 *
 * Run: npm run build && node examples/dist/precision-auc.js   (PRECISION_SEEDS=1,2,3 for more seeds)
 */
import { runExperiment, type EvaluationReport, type ExperimentInCode } from '@dfd/core';
import { calibrationSet, clipPreprocessBatch, drawCalibrationImages, imagesFromGlob, OnnxClipImageEncoder, type OnnxClipOptions } from '@dfd/encoder-clip';
import { coopExperiment } from './coop.js';
import { ufdExperiment } from './ufd.js';
import { DEFAULT_DATA_DIR, ensureMiniDf40, isMain, TINY_CLIP, type ExampleOptions } from './setup.js';

type Make = (options: ExampleOptions) => ExperimentInCode;

/** Frame-level test AUC per subset and the evaluator's unweighted mean over the subsets. */
function meanAuc(report: EvaluationReport): { mean: number; subsets: Record<string, number> } {
  const subsets = Object.fromEntries(Object.entries(report.subsets).filter(([name]) => name !== 'mean').map(([name, m]) => [name, m.auc!]));
  return { mean: report.subsets.mean!.auc!, subsets };
}

// Training images only (the fakes of DF40_train): the test set must not shape the model.
const calibrationGlob = (root: string) => `${root}/DF40_train/**/frames/**/*.png`;
const CALIBRATION_COUNT = 64;

/** The encoder settings of each compared precision. */
function variants(root: string): Record<string, Record<string, unknown>> {
  return {
    fp32: { precision: 'fp32' },
    'int8 dynamic': { precision: 'int8' },
    'int8 static': { precision: 'int8', calibrate: { images: calibrationGlob(root), count: CALIBRATION_COUNT } },
    'int8 static, SmoothQuant α 0.5': { precision: 'int8', calibrate: { images: calibrationGlob(root), count: CALIBRATION_COUNT, smoothAlpha: 0.5 } },
  };
}

/** Min and mean row cosine of `a` to `b` (`[n, dim]`). */
function rowCosines(a: Float32Array, b: Float32Array, dim: number): { min: number; mean: number } {
  let min = 1;
  let sum = 0;
  const rows = a.length / dim;
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let i = r * dim; i < (r + 1) * dim; i++) {
      dot += a[i]! * b[i]!;
      na += a[i]! ** 2;
      nb += b[i]! ** 2;
    }
    const c = dot / Math.sqrt(na * nb);
    min = Math.min(min, c);
    sum += c;
  }
  return { min, mean: sum / rows };
}

/** The embedding cosine of each int8 variant to fp32 on 400 test images (CLIP's eval transform). */
export async function embeddingCosines(root: string, log: (line: string) => void = console.log): Promise<void> {
  const test = drawCalibrationImages(await imagesFromGlob(`${root}/DF40/**/*.png`, root), 400);
  const calibrationPaths = drawCalibrationImages(await imagesFromGlob(calibrationGlob(root), root), CALIBRATION_COUNT);
  const fp32 = await OnnxClipImageEncoder.create(TINY_CLIP, { threads: 2 });
  const size = fp32.info.imageSize;
  const pixels = await clipPreprocessBatch(test, { size });
  const calibration = calibrationSet(await clipPreprocessBatch(calibrationPaths, { size }), calibrationPaths.length);
  const reference = (await fp32.embed(pixels, test.length)).embeds;
  await fp32.dispose();
  const settings: Record<string, OnnxClipOptions> = {
    'int8 dynamic': {},
    'int8 static': { calibration },
    'int8 static, SmoothQuant α 0.5': { calibration, smoothAlpha: 0.5 },
  };
  log(`| precision | min cosine to fp32 | mean cosine (${test.length} test images) |`);
  log('|---|---|---|');
  for (const [label, options] of Object.entries(settings)) {
    const encoder = await OnnxClipImageEncoder.create(TINY_CLIP, { threads: 2, precision: 'int8', ...options });
    const { min, mean } = rowCosines((await encoder.embed(pixels, test.length)).embeds, reference, encoder.info.embedDim);
    await encoder.dispose();
    log(`| ${label} | ${min.toFixed(5)} | ${mean.toFixed(5)} |`);
  }
}

export async function precisionAuc(root: string, seeds: number[], log: (line: string) => void = console.log): Promise<void> {
  const methods: Array<[string, Make]> = [['CoOp', coopExperiment], ['UFD', ufdExperiment]];
  log('| method | seed | precision | mean test AUC | ΔAUC (− fp32) | largest subset |Δ| |');
  log('|---|---|---|---|---|---|');
  for (const [name, make] of methods) {
    for (const seed of seeds) {
      const results: Record<string, { mean: number; subsets: Record<string, number> }> = {};
      for (const [label, settings] of Object.entries(variants(root))) {
        const experiment = make({ root, seed, runsDir: 'runs/precision-auc' });
        const encoder = experiment.encoder as { use: string; config: Record<string, unknown> };
        encoder.config = { ...encoder.config, ...settings };
        const result = await runExperiment(experiment);
        if (!result.test) throw new Error(`${name} ${label}: no test report (${result.runDir})`);
        const b = (results[label] = meanAuc(result.test));
        const a = results.fp32!;
        const worst = Math.max(...Object.keys(a.subsets).map((s) => Math.abs((b.subsets[s] ?? NaN) - a.subsets[s]!)));
        const delta = b.mean - a.mean;
        log(`| ${name} | ${seed} | ${label} | ${b.mean.toFixed(4)} | ${label === 'fp32' ? '—' : (delta >= 0 ? '+' : '') + delta.toFixed(4)} | ${label === 'fp32' ? '—' : worst.toFixed(4)} |`);
      }
    }
  }
}

if (isMain(import.meta.url)) {
  const { root } = await ensureMiniDf40(DEFAULT_DATA_DIR, console.log);
  const seeds = (process.env.PRECISION_SEEDS ?? '1').split(',').map(Number);
  await embeddingCosines(root);
  await precisionAuc(root, seeds);
}
