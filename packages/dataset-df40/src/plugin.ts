/**
 * The @dfd/dataset-df40 plugin: datasets `df40` (DeepfakeBench JSON) and `folder`, the `images` loader,
 * and the `dfd df40` / `dfd synth` commands.
 */
import { definePlugin, resolveOptional, TOKENS, type RunContext } from '@dfd/core';
import { df40Command } from './commands/df40-command.js';
import { synthCommand } from './commands/synth-command.js';
import { Df40JsonConfigSchema, FolderConfigSchema } from './config.js';
import { Df40JsonDataset } from './df40-dataset.js';
import { FolderDataset } from './folder-dataset.js';
import { ImageBatchLoader } from './loader.js';
import { LOADER_PRESETS, LoaderConfigSchema, type LoaderConfigInput } from './loader-config.js';

export const df40Plugin = definePlugin({
  name: '@dfd/dataset-df40',
  version: '0.1.0',
  register(r) {
    r.add({
      kind: 'dataset',
      name: 'df40',
      description: 'DF40 / DeepfakeBench JSON trees: prefix rewriting, name aliases, missing/empty frames counted',
      config: Df40JsonConfigSchema,
      useFactory: (config) => new Df40JsonDataset(config),
    });
    r.add({
      kind: 'dataset',
      name: 'folder',
      description: "Plain folders: DF40's layout or UFD's 0_real/1_fake",
      config: FolderConfigSchema,
      useFactory: (config) => new FolderDataset(config),
    });
    r.add({
      kind: 'loader',
      name: 'images',
      description: 'sharp image pipeline → NCHW batches, with train augmentation, boxes and extras',
      config: LoaderConfigSchema,
      presets: LOADER_PRESETS,
      useFactory: (config, resolver) => {
        // Inside a run, each skipped image is also a warning event at the moment it happens (events.jsonl,
        // the progress display, trackers) instead of a console line.
        const run = resolveOptional<RunContext>(resolver, TOKENS.RunContext);
        const loader = new ImageBatchLoader({ ...(config as LoaderConfigInput), ...(run ? { logSkips: false } : {}) });
        if (run) loader.onSkip((message) => run.warn('loader', `skipped ${message}`));
        return loader;
      },
    });
    r.command(df40Command);
    r.command(synthCommand);
  },
});

export default df40Plugin;
