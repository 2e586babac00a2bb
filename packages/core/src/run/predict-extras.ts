/**
 * The per-image extras (LaRE maps ...) for scoring images with a trained run (`dfd predict`), in order of
 * preference: given by the caller (`--extra key=PATH`), held by the run's dataset configuration (its map
 * folder or store), or computed by the plugin's extra provider the run's `predict.extras.<key>` configures
 * (e.g. plugin-lare's stage-1 extractor with the settings the maps were made with). Core knows only keys.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { dfdCacheDir } from '../cache-dir.js';
import type { Dataset } from '../contracts.js';
import type { ExtraProviderFactory } from '../plugin.js';

export interface PredictExtrasInputs {
  paths: string[];
  /** Extra keys the detector needs. */
  keys: string[];
  /** Per image (same order as `paths`), extras the caller gives. */
  given?: Array<Record<string, string> | undefined>;
  /** The run's dataset (absent when it cannot be built here, e.g. its root is on another machine). */
  dataset?: Dataset;
  factories: readonly ExtraProviderFactory[];
  /** The run's `predict.extras`. */
  config: Record<string, Record<string, unknown>>;
  cwd: string;
  /** Where providers write what they compute (default `$DFD_CACHE_DIR/predict-extras`, `~/.cache/dfd/predict-extras`). */
  cacheDir?: string;
}

export function predictExtrasCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(dfdCacheDir(env), 'predict-extras');
}

export async function extrasForPrediction(inputs: PredictExtrasInputs): Promise<Array<Record<string, string>>> {
  const { paths, keys, given = [] } = inputs;
  if (given.length && given.length !== paths.length) throw new Error(`extras are given for ${given.length} images but ${paths.length} images are scored: give one per image`);
  const extras = await Promise.all(
    paths.map(async (path, i) => {
      const mine = given[i] ?? {};
      for (const [key, file] of Object.entries(mine)) {
        if (!existsSync(file)) throw new Error(`extra '${key}' of ${path}: ${file} not found`);
      }
      const unknown = Object.keys(mine).filter((key) => !keys.includes(key));
      if (unknown.length) throw new Error(`extra ${unknown.map((k) => `'${k}'`).join(', ')} given for ${path}, but the run's model needs ${keys.length ? keys.map((k) => `'${k}'`).join(', ') : 'no extras'}`);
      const held = keys.length && inputs.dataset?.extrasFor ? await inputs.dataset.extrasFor(path) : {};
      const found: Record<string, string> = {};
      for (const key of keys) {
        const file = mine[key] ?? held[key];
        if (file) found[key] = file;
      }
      return found;
    }),
  );
  for (const key of keys) {
    const lacking = paths.flatMap((path, i) => (extras[i]![key] ? [] : [i]));
    if (!lacking.length) continue;
    const factory = inputs.factories.find((f) => f.key === key);
    const config = inputs.config[key];
    if (!factory || !config) {
      const names = lacking.slice(0, 3).map((i) => paths[i]).join(', ') + (lacking.length > 3 ? ` and ${lacking.length - 3} more` : '');
      throw new Error(
        `no '${key}' extra for ${names} (the run's model needs it, and the run's dataset holds none for ${lacking.length > 1 ? 'them' : 'it'}): ` +
          `give it per image with --extra ${key}=PATH, or ` +
          (factory ? `configure predict.extras.${key} in the experiment (the settings of the '${key}' provider)` : `load a plugin that provides '${key}' extras and configure predict.extras.${key}`),
      );
    }
    const provider = await factory.create(config, { cwd: inputs.cwd });
    try {
      const files = await provider.provide(lacking.map((i) => paths[i]!), join(inputs.cacheDir ?? predictExtrasCacheDir(), key));
      lacking.forEach((i, n) => {
        extras[i]![key] = files[n]!;
      });
    } finally {
      await provider.dispose();
    }
  }
  return extras;
}
