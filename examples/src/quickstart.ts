/**
 * `npm run quickstart`: the first thing to run after `npm ci`.
 *
 * 1. makes the synthetic mini-DF40 in data/mini-df40 if it is not there (procedural faces; each fake
 *    "method" leaves its own generator fingerprint; DF40's layout and JSONs);
 * 2. trains CoOp (CLIPping's prompt) on its training methods with the committed tiny CLIP, encoding each
 *    image once into the on-disk feature cache;
 * 3. selects the checkpoint on validation, evaluates it once on DF40's 8 unknown test sets;
 * 4. prints the per-subset table and writes the run directory (config, events, metrics, checkpoints,
 *    test scores, report.html). With MLFLOW_TRACKING_URI set, the run also streams to MLflow.
 */
import { join } from 'node:path';
import { runExperiment } from '@dfd/core';
import { coopExperiment } from './coop.js';
import { DEFAULT_DATA_DIR, ensureMiniDf40, formatTable } from './setup.js';

const started = performance.now();
const { root } = await ensureMiniDf40(process.env.DFD_DATA ?? DEFAULT_DATA_DIR, console.log);
console.log(`training CoOp on ${root} with the tiny CLIP (examples/models/tiny-clip-df40)`);
if (process.env.MLFLOW_TRACKING_URI) console.log(`streaming to MLflow at ${process.env.MLFLOW_TRACKING_URI}`);
const result = await runExperiment(coopExperiment({ root, fast: process.env.DFD_QUICKSTART_FAST === '1' }), { progress: true });
if (result.status !== 'finished' || !result.test) {
  console.error(`the run ended ${result.status}${result.error ? `: ${result.error.message}` : ''}; see ${result.runDir}/events.jsonl`);
  process.exit(1);
}
console.log(`\nselected on validation: step ${result.selected?.step} (${result.selected?.metric} ${result.selected?.value?.toFixed(3)})`);
console.log(`test: DF40's 8 unknown sets (frame level; video AUC over each video's mean score)\n`);
console.log(formatTable(result.test));
console.log(`\nrun directory: ${result.runDir}`);
console.log(`report:        ${join(result.runDir, 'report.html')}`);
console.log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
