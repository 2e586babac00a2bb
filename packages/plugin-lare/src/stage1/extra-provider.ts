/**
 * The `lare` extra provider: computes the LaRE map of an image that has none (`dfd predict` on a new image)
 * with the stage-1 extractor, so a fusion/LaRE run can score any image. The settings are those the run's maps
 * were made with: read from `recipe` (an extras store root — its index records them — a folder with the
 * `recipe.json` the examples' map cache writes, or such a JSON file), and the model's digest must match the
 * recorded one. A run configures it in `predict.extras.lare` (e.g. `{ model: 'models/sd15-onnx', recipe:
 * 'data/lare/sd15-t200' }`). Maps are written once per (image content, recipe) and reused. Maps made at int8
 * are computed at the same int8 (dynamic, or the static graphs of the recorded calibration); without a recipe,
 * `precision: 'int8'` chooses dynamic int8.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { writeSafetensors, type ExtraProvider, type ExtraProviderFactory } from '@dfd/core';
import { decodeRgbLikePil, larePixels } from './image.js';
import { DEFAULT_PROMPT, LareExtractor, type LareRecipe, type LareSettings } from './lare.js';
import { contentHash } from './noise.js';
import { openSdOnnx, type SdOnnxModel } from './sd-model.js';
import { DEFAULT_INT8_MIN_ELEMENTS } from './int8-graph.js';
import { openBuiltStaticInt8 } from './static-int8.js';
import { canonicalJson } from './store-writer.js';

export const LareProviderConfigSchema = z
  .object({
    /** The stage-1 Stable Diffusion (ONNX folder, as `dfd lare extract --model`). */
    model: z.string().min(1),
    /** Where the run's maps' settings are recorded: an extras store root, a folder with recipe.json, or a JSON file. */
    recipe: z.string().min(1).optional(),
    /** Settings when no `recipe` is given (LaRE²'s defaults). */
    timestep: z.number().int().positive().default(200),
    ensemble: z.number().int().positive().default(4),
    size: z.number().int().positive().default(256),
    prompt: z.string().default(DEFAULT_PROMPT),
    seed: z.number().int().min(0).default(0),
    /**
     * The UNet's precision when no `recipe` is given (int8: our dynamic MatMul quantisation, built once beside
     * the model). With a `recipe` the recorded precision is used; a different one given here is refused.
     */
    precision: z.enum(['fp32', 'int8']).optional(),
    /** int8 without a `recipe`: weights with fewer elements stay fp32 (as `dfd lare extract --int8-min-elements`). */
    int8MinElements: z.number().int().positive().default(DEFAULT_INT8_MIN_ELEMENTS),
    /** onnxruntime intra-op threads. */
    threads: z.number().int().positive().default(2),
    /** Images per extractor call. */
    batch: z.number().int().positive().default(16),
  })
  .strict();
export type LareProviderConfig = z.output<typeof LareProviderConfigSchema>;

export class LareProviderError extends Error {
  override name = 'LareProviderError';
}

/** The recipe recorded at `path` (store index settings, recipe.json, or a JSON file holding either). */
export function recordedRecipe(path: string): LareRecipe {
  let file = path;
  if (statSync(path).isDirectory()) {
    const names = readdirSync(path);
    const index = names.filter((n) => /^index(\..+)?\.json$/.test(n)).sort()[0];
    if (names.includes('recipe.json')) file = join(path, 'recipe.json');
    else if (index) file = join(path, index);
    else throw new LareProviderError(`${path} records no LaRE settings: it has neither recipe.json nor an extras store index (index.json)`);
  }
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const recipe = (parsed.settings ?? parsed) as LareRecipe;
  if (recipe.method !== 'lare' || typeof recipe.timestep !== 'number') throw new LareProviderError(`${file} holds no LaRE recipe (method, timestep, ensemble, size, prompt, noise, modelDigest)`);
  return recipe;
}

/**
 * The model at the precision the run's maps were made with: fp32, dynamic int8 (its threshold is in the
 * recorded method) or the static int8 graphs of the recorded calibration, found where the extraction left them.
 */
async function openForRecipe(modelDir: string, recorded: LareRecipe | undefined, config: LareProviderConfig, where: string): Promise<SdOnnxModel> {
  const { threads } = config;
  if (!recorded) return openSdOnnx(modelDir, { threads, precision: config.precision ?? 'fp32', int8MinElements: config.int8MinElements });
  const made = recorded.precision ?? 'fp32';
  if (config.precision && config.precision !== made) {
    throw new LareProviderError(`the run's LaRE maps (${where}) were made at ${made}, but predict.extras.lare.precision is ${config.precision}: maps of two precisions must not mix; drop precision (the recorded one is used)`);
  }
  const quantization = made === 'int8' ? recorded.quantization : null;
  if (!quantization) return openSdOnnx(modelDir, { threads });
  const calibration = /; calibration ([0-9a-f]{16}) /.exec(quantization)?.[1];
  if (calibration) return openBuiltStaticInt8(modelDir, calibration, quantization, { threads });
  const minElements = Number(/>= (\d+) elements/.exec(quantization)?.[1] ?? DEFAULT_INT8_MIN_ELEMENTS);
  return openSdOnnx(modelDir, { threads, precision: 'int8', int8MinElements: minElements });
}

function settingsOf(config: LareProviderConfig, recipe: LareRecipe | undefined, where: string): LareSettings {
  if (!recipe) return { timestep: config.timestep, ensemble: config.ensemble, size: config.size, prompt: config.prompt, seed: config.seed };
  if (recipe.noise.kind !== 'seeded') throw new LareProviderError(`the maps of ${where} were made with a fixed noise file; extract new images with dfd lare extract --noise-file instead`);
  return { timestep: recipe.timestep, ensemble: recipe.ensemble, size: recipe.size, prompt: recipe.prompt, seed: recipe.noise.seed };
}

class LareProvider implements ExtraProvider {
  private readonly tag: string;

  constructor(
    private readonly extractor: LareExtractor,
    private readonly close: () => Promise<void>,
    private readonly batch: number,
  ) {
    this.tag = createHash('sha256').update(canonicalJson(extractor.recipe)).digest('hex').slice(0, 16);
  }

  async provide(imagePaths: string[], outDir: string): Promise<string[]> {
    mkdirSync(outDir, { recursive: true });
    const loaded = await Promise.all(imagePaths.map(async (path) => ({ path, bytes: await readFile(path) })));
    const targets = loaded.map(({ bytes }) => join(outDir, `${contentHash(bytes)}-${this.tag}.safetensors`));
    const todo = loaded.flatMap((item, i) => (existsSync(targets[i]!) ? [] : [{ ...item, target: targets[i]! }]));
    const { size } = this.extractor.settings;
    for (let start = 0; start < todo.length; start += this.batch) {
      const chunk = todo.slice(start, start + this.batch);
      const images = await Promise.all(chunk.map(async ({ path, bytes }) => ({ pixels: larePixels(await decodeRgbLikePil(bytes, path), size), hash: contentHash(bytes) })));
      const maps = await this.extractor.maps(images);
      for (const [i, { path, target }] of chunk.entries()) {
        const map = maps[i]!;
        if (!map.every(Number.isFinite)) throw new LareProviderError(`the LaRE map of ${path} has NaN or infinite values (model weights or input out of range)`);
        // A temp name first: a killed predict leaves only whole maps.
        await writeSafetensors(`${target}.tmp`, { lare: { shape: this.extractor.mapShape, data: map } }, { recipe: canonicalJson(this.extractor.recipe), image: resolve(path) });
        renameSync(`${target}.tmp`, target);
      }
    }
    return targets;
  }

  dispose(): Promise<void> {
    return this.close();
  }
}

export const lareExtraProvider: ExtraProviderFactory = {
  key: 'lare',
  async create(raw, { cwd }) {
    const parsed = LareProviderConfigSchema.safeParse(raw);
    if (!parsed.success) throw new LareProviderError(`predict.extras.lare is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    const config = parsed.data;
    const recipePath = config.recipe ? resolve(cwd, config.recipe) : undefined;
    const recorded = recipePath ? recordedRecipe(recipePath) : undefined;
    const model = await openForRecipe(resolve(cwd, config.model), recorded, config, recipePath ?? '');
    try {
      const extractor = await LareExtractor.create(model, settingsOf(config, recorded, recipePath ?? ''));
      if (recorded && canonicalJson(extractor.recipe) !== canonicalJson(recorded)) {
        const differs = Object.keys({ ...recorded, ...extractor.recipe }).filter(
          (k) => canonicalJson((recorded as unknown as Record<string, unknown>)[k]) !== canonicalJson((extractor.recipe as unknown as Record<string, unknown>)[k]),
        );
        throw new LareProviderError(
          `the run's LaRE maps (${recipePath}) were made with other settings than ${config.model} gives: ${differs.join(', ')} differ` +
            `${differs.includes('modelDigest') ? ` (recorded model ${recorded.modelDigest.slice(0, 12)}, this one ${extractor.recipe.modelDigest.slice(0, 12)})` : ''}; ` +
            'point predict.extras.lare.model at the model the maps were made with',
        );
      }
      return new LareProvider(extractor, () => model.dispose(), config.batch);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  },
};
