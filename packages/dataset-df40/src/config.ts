/** Zod configs of the `df40` (JSON) and `folder` datasets. Unknown keys are rejected by the registry. */
import { z } from 'zod';

const splitNames = z
  .object({ train: z.array(z.string()).optional(), val: z.array(z.string()).optional(), test: z.array(z.string()).optional() })
  .strict();

const framesPerVideo = z.union(
  [
    z.number().int().min(0),
    z.object({ train: z.number().int().min(0), val: z.number().int().min(0), test: z.number().int().min(0) }).strict(),
  ],
  { error: 'expected a whole number of frames per video (0 = all), or one per split: {"train": 8, "val": 8, "test": 8}' },
);

const common = {
  /** Dataset root: the folder that holds `DF40/`, `DF40_train/`, `FaceForensics++/` ... */
  root: z.string().min(1),
  /** Subsets per split (any alias spelling); default: every subset the split has. */
  subsets: splitNames.default({}),
  /** Frames per video; 0 = all. A number applies to every split. DF40's CLIP recipe: 8 (train) / 8 (test). */
  framesPerVideo: framesPerVideo.default({ train: 8, val: 8, test: 8 }),
  /** `even` (evenly spaced, default) or `first-n` (what DF40's loader actually does). */
  sampling: z.enum(['even', 'first-n']).default('even'),
  /** Face boxes: landmark `.npy` where present else template (`auto`), only landmarks, only template, none. */
  faceBoxes: z.enum(['auto', 'landmarks', 'template', 'none']).default('auto'),
  /** Side of the aligned crops the template boxes are for (DF40: 256). */
  alignedSize: z.number().int().positive().default(256),
  /**
   * Extra per-image inputs by key. `{ lare: { root: '/maps', ext: '.safetensors' } }`: one file per image in a
   * folder mirroring the dataset root. `{ lare: { root: '/data/lare/sd15-t200' } }` (no `ext`): an extras store
   * written by `dfd lare extract|merge|import`, each image found by path or content hash.
   */
  extras: z.record(z.string(), z.object({ root: z.string(), ext: z.string().optional() }).strict()).default({}),
  /** Use each frame path once in `train` when several subsets list it (DF40's JSONs repeat FF++ reals). */
  dedupeTrain: z.boolean().default(true),
  /** Cap on the problem messages kept (counts are always complete). */
  maxMessages: z.number().int().min(0).default(50),
  /**
   * Named groups of test subsets whose means are reported too (e.g. seen/unseen artefact families). Default:
   * the `subsetGroups` a synthetic mini-DF40 records in `<root>/synth.json`; none for real DF40.
   */
  subsetGroups: z.record(z.string(), z.array(z.string()).min(1)).optional(),
};

export const Df40JsonConfigSchema = z
  .object({
    ...common,
    /** Folder of the dataset JSONs; default `<root>/dataset_json`. */
    jsonDir: z.string().optional(),
    /** Only these datasets (JSON top-level keys, any alias); default all. */
    datasets: z.array(z.string()).optional(),
    /** Rewrite frame paths: the first rule whose `from` prefixes a path wins; relative `to` is under root. */
    prefixes: z.array(z.object({ from: z.string(), to: z.string() }).strict()).default([]),
    /** Also re-anchor paths at the first segment that names a folder of the root. */
    autoPrefix: z.boolean().default(true),
    /** FF++-family compression level to read. */
    compression: z.string().default('c23'),
    /** `own`: each dataset's `_Real` entries; `none`: fakes only (pair with `realDatasets`). */
    reals: z.enum(['own', 'none']).default('own'),
    /** Datasets whose real entries are added to every query (e.g. `FaceForensics++`, `Celeb-DF-v2`). */
    realDatasets: z.array(z.string()).default([]),
    /** Label strings beyond `_Real`/`_Fake` and DeepfakeBench's table. */
    labelMap: z.record(z.string(), z.union([z.literal(0), z.literal(1)])).default({}),
  })
  .strict();
export type Df40JsonConfig = z.output<typeof Df40JsonConfigSchema>;

export const FolderConfigSchema = z
  .object({
    ...common,
    /** `df40` (DF40/<method>/{ff,cdf|fake,real}), `ufd` (<split>/…/{0_real,1_fake}), or detect. */
    layout: z.enum(['auto', 'df40', 'ufd']).default('auto'),
    /** DF40 layout: folders (under root) holding each split's methods. */
    splitDirs: splitNames.default({ train: ['DF40_train'], test: ['DF40'] }),
    /** DF40 layout: domains of the known methods to include. */
    domains: z.array(z.enum(['ff', 'cdf'])).default(['ff']),
    /** DF40 layout: real frames per domain (folders of video folders), relative to root. */
    realSources: z
      .record(z.string(), z.string())
      .default({ ff: 'FaceForensics++/original_sequences/youtube/c23/frames', cdf: 'Celeb-DF-v2/Celeb-real/frames' }),
    /** DF40 layout: how domain reals are split, by a hash of the video name (FF++: 720/140/140). */
    realSplit: z
      .object({ train: z.number().min(0), val: z.number().min(0), test: z.number().min(0) })
      .strict()
      .default({ train: 0.72, val: 0.14, test: 0.14 }),
    /** Fraction of train videos moved to `val` (by name hash) when no val folder is configured. */
    valFraction: z.number().min(0).max(1).default(0.1),
    /** UFD layout: folder name of each split under root. */
    ufdSplits: z.object({ train: z.string(), val: z.string(), test: z.string() }).strict().default({ train: 'train', val: 'val', test: 'test' }),
  })
  .strict();
export type FolderConfig = z.output<typeof FolderConfigSchema>;

export function framesFor(config: { framesPerVideo: Df40JsonConfig['framesPerVideo'] }, split: 'train' | 'val' | 'test'): number {
  return typeof config.framesPerVideo === 'number' ? config.framesPerVideo : config.framesPerVideo[split];
}
