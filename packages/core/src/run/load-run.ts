/**
 * Loads a finished (or killed) run for inference: rebuilds its detector and eval transform from the
 * recorded config.json and loads the selected weights (`selected.json`: best on validation, else last).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Sample } from '../contracts.js';
import type { Plugin } from '../plugin.js';
import { TOKENS } from '../di.js';
import { ensureBackend } from '../backend.js';
import { loadCheckpoint, restoreModel } from '../train/checkpoint.js';
import { assemble, buildRegistry, importPlugins, resolveSlots, type AssembledExperiment } from './assemble.js';
import { openRunDirectory, readRecordedConfig } from './run-directory.js';
import { definitionFromRecorded, scoreSource, type RunContext } from './runner.js';

export type Prediction = { path: string; score: number; error?: undefined } | { path: string; score?: undefined; error: string };

export interface LoadedRun {
  runDir: string;
  checkpoint: string;
  assembled: AssembledExperiment;
  /** P(fake) for each image path, in order. Missing files are an error naming them; corrupt ones too. */
  predict(paths: string[], batchSize?: number): Promise<number[]>;
  /** P(fake) for each image that loads, and for each one that does not, why: one bad file never stops the others. */
  predictEach(paths: string[], batchSize?: number): Promise<Prediction[]>;
  dispose(): void;
}

export async function loadRun(runDir: string, options: { plugins?: Plugin[]; checkpoint?: 'best' | 'last'; cwd?: string } = {}): Promise<LoadedRun> {
  const run = openRunDirectory(runDir);
  const experiment = definitionFromRecorded(readRecordedConfig(run));
  const given = options.plugins ?? [];
  const plugins = [...given, ...(await importPlugins(experiment.plugins.filter((n) => !given.some((p) => p.name === n)), options.cwd))];
  const registry = buildRegistry(plugins);
  const slots = resolveSlots(experiment, registry);
  await ensureBackend(experiment.backend);
  const selectedPath = join(run.dir, 'selected.json');
  const selected = existsSync(selectedPath) ? (JSON.parse(readFileSync(selectedPath, 'utf8')) as { checkpoint: string }).checkpoint : undefined;
  const name = options.checkpoint ? `${options.checkpoint}.safetensors` : (selected ?? (existsSync(join(run.checkpointsDir, 'best.safetensors')) ? 'best.safetensors' : 'last.safetensors'));
  const checkpoint = join(run.checkpointsDir, name);
  if (!existsSync(checkpoint)) throw new Error(`${checkpoint} does not exist: the run has no ${name} (did it train at least one epoch?)`);
  const context: RunContext = { runId: run.runId, runDir: run.dir, experiment: experiment.name, seed: experiment.seed, warn: (source, message) => process.emitWarning(`[${source}] ${message}`) };
  const assembled = assemble(experiment, registry, slots, { seed: experiment.seed, values: [[TOKENS.RunContext, context]] });
  try {
    const weights = await loadCheckpoint(checkpoint);
    restoreModel(assembled.detector, weights, checkpoint);
  } catch (error) {
    assembled.dispose();
    throw error;
  }
  const loaded: LoadedRun = {
    runDir: run.dir,
    checkpoint,
    assembled,
    async predictEach(paths, batchSize = experiment.trainer.evalBatchSize) {
      const present = paths.filter((p) => existsSync(p));
      const samples: Sample[] = present.map((path) => ({ id: path, path, label: 0, subset: 'predict', split: 'test', videoId: path }));
      const loader = assembled.loader;
      const source = loader.create(samples, { split: 'test', batchSize, shuffle: false, augment: false, seed: experiment.seed, needs: assembled.detector.needs });
      const scored = samples.length ? await scoreSource(assembled.detector, source) : { paths: [], scores: [] };
      const byPath = new Map(scored.paths.map((p, i) => [p, scored.scores[i]!]));
      const sampleOf = new Map(samples.map((s) => [s.path, s]));
      return paths.map((path): Prediction => {
        const score = byPath.get(path);
        if (score !== undefined) return { path, score };
        if (!sampleOf.has(path)) return { path, error: 'file not found' };
        const why = loader.dropReason?.(sampleOf.get(path)!)?.message ?? 'could not be decoded (corrupt or not an image)';
        return { path, error: why };
      });
    },
    async predict(paths, batchSize) {
      const missing = paths.filter((p) => !existsSync(p));
      if (missing.length) throw new Error(`image${missing.length > 1 ? 's' : ''} not found: ${missing.join(', ')}`);
      const results = await loaded.predictEach(paths, batchSize);
      const failed = results.filter((r) => r.error !== undefined);
      if (failed.length) throw new Error(`could not decode ${failed.map((r) => `${r.path} (${r.error})`).join(', ')}`);
      return results.map((r) => r.score!);
    },
    dispose() {
      assembled.dispose();
    },
  };
  return loaded;
}
