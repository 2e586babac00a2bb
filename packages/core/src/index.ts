/**
 * @dfd/core: contracts, DI facade, plugin registry, experiment definition and runner, trainer, metrics,
 * checkpoints, safetensors I/O, tensor backend selection and the `dfd` CLI.
 */
/**
 * The tfjs namespace every @dfd package uses. Plugins import `tf` from here rather than from
 * @tensorflow/tfjs directly, so one tfjs instance (one engine, one backend, all gradients registered)
 * serves the whole process.
 */
export * as tf from '@tensorflow/tfjs';
export * from './contracts.js';
export * from './events.js';
export * from './di.js';
export * from './plugin.js';
export * from './digest.js';
export * from './cache-dir.js';
export * from './build-lock.js';
export * from './experiment.js';
export * from './rng.js';
export * from './safetensors.js';
export * from './backend.js';
export * from './cli/command.js';
export * from './cli/stop-request.js';
export * from './metrics/index.js';
export * from './variables.js';
export * from './train/optimizers.js';
export * from './train/schedules.js';
export * from './train/checkpoint.js';
export * from './train/trainer.js';
export * from './run/run-directory.js';
export * from './run/assemble.js';
export * from './run/instantiate.js';
export * from './run/runner.js';
export * from './run/load-run.js';
export * from './run/predict-extras.js';
export * from './run/sweep.js';
export * from './run/sweep-summary.js';
export * from './run/init-weights.js';
export * from './run/pipeline.js';
export * from './run/progress.js';
export * from './detectors/clip-prompt.js';
export { corePlugin } from './builtin-plugin.js';
export { main as cliMain } from './cli/main.js';
export { discoverPlugins } from './cli/discover.js';
export { loadExperimentFile, loadRunnableFile, applyOverrides, applyPipelineOverrides, formatTestTable } from './cli/commands/run.js';
export * from './evaluation/index.js';
export * from './features/index.js';
export * from './ops/roi-align.js';
export * from './ops/layers.js';
