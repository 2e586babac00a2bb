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
 *
 * `npm run quickstart -- --method clare` runs the two-stage CLaRE pipeline instead (clare.ts): the LaRE maps
 * of every image from the committed tiny SD (computed once), CoOp, then lare-egre + concat fusion.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runExperiment, runPipeline, type RunResult } from '@dfd/core';
import { clarePipeline } from './clare.js';
import { coopExperiment } from './coop.js';
import { ensureLareMaps } from './lare-maps.js';
import { DEFAULT_DATA_DIR, ensureMiniDf40, formatTable } from './setup.js';

const started = performance.now();
const { values: args } = parseArgs({ options: { method: { type: 'string', default: 'coop' } } });
if (args.method !== 'coop' && args.method !== 'clare') {
  console.error(`--method must be coop (default) or clare, got '${args.method}'`);
  process.exit(2);
}
const fast = process.env.DFD_QUICKSTART_FAST === '1';
const { root } = await ensureMiniDf40(process.env.DFD_DATA ?? DEFAULT_DATA_DIR, console.log);
if (process.env.MLFLOW_TRACKING_URI) console.log(`streaming to MLflow at ${process.env.MLFLOW_TRACKING_URI}`);
let result: RunResult;
if (args.method === 'clare') {
  // The seed's pipeline: CoOp, then LaRE (egre over the tiny SD's maps) + concat fusion over the frozen prompt.
  const maps = await ensureLareMaps(root, { log: console.log });
  if (maps.computed) console.log(`  ${maps.computed} LaRE maps in ${maps.seconds.toFixed(1)} s`);
  console.log(`two stages on ${root}: CoOp, then lare-egre + concat fusion from the frozen context (tiny CLIP, tiny SD)`);
  // Shorter than examples/clare.ts (30 + 10 epochs) so the quickstart stays in minutes.
  const pipeline = await runPipeline(clarePipeline({ root, fast, stage1Epochs: 10, stage2Epochs: 4 }), {
    progress: true,
    onStage: (stage, index) => console.log(`\n== stage ${index + 1}/2: ${stage}`),
  });
  result = pipeline.stages.at(-1)!;
  if (pipeline.stages.length === 2) console.log(`stage 1 run directory: ${pipeline.stages[0]!.runDir}`);
} else {
  console.log(`training CoOp on ${root} with the tiny CLIP (examples/models/tiny-clip-df40)`);
  result = await runExperiment(coopExperiment({ root, fast }), { progress: true });
}
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
