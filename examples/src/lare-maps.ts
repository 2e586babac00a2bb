/**
 * LaRE maps for the mini-DF40 from the committed tiny Stable Diffusion (models/tiny-sd-df40, pre-trained on
 * real faces of a separate synthetic set: tools/fixtures/lare-tiny-sd/pretrain_tiny_sd.py). Every image of the
 * dataset gets `<root>/lare-maps/<same relative path>.safetensors` (tensor `lare`, `[4, 8, 8]` for 64 px),
 * computed on first use with @dfd/plugin-lare's stage-1 extractor on onnxruntime and kept: a second call finds
 * them (same recipe) and returns at once. The dataset reads them as the `lare` extra.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors } from '@dfd/core';
import { contentHash, decodeRgbLikePil, DEFAULT_PROMPT, larePixels, LareExtractor, openSdOnnx, type LareImage } from '@dfd/plugin-lare';

/** The tiny SD of the examples, as the ONNX folder `tools/sd-onnx/export_sd_onnx.py` writes. */
export const TINY_SD = fileURLToPath(new URL('../models/tiny-sd-df40', import.meta.url));
export const MAPS_DIR = 'lare-maps';
/** LaRE²'s settings (t = 200, 4 noise copies) at the mini-DF40's 64 px. */
export const MAP_SETTINGS = { timestep: 200, ensemble: 4, size: 64, prompt: DEFAULT_PROMPT, seed: 0 } as const;

const IMAGE_DIRS = ['FaceForensics++', 'DF40_train', 'DF40'];

function imagesUnder(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) imagesUnder(path, out);
    else if (entry.name.endsWith('.png') || entry.name.endsWith('.jpg')) out.push(path);
  }
  return out;
}

/** The dataset extras config that reads these maps. */
export function lareExtras(root: string) {
  return { lare: { root: join(root, MAPS_DIR), ext: '.safetensors' } };
}

export interface LareMapsResult {
  dir: string;
  computed: number;
  kept: number;
  seconds: number;
}

/**
 * Computes the missing maps of `root`'s images (all of them when the recipe changed). Writes go to a temp
 * name first, so a killed run leaves only whole files.
 */
export async function ensureLareMaps(root: string, options: { model?: string; log?: (line: string) => void; batch?: number } = {}): Promise<LareMapsResult> {
  const started = performance.now();
  const dir = join(root, MAPS_DIR);
  const recipePath = join(dir, 'recipe.json');
  const images = IMAGE_DIRS.flatMap((sub) => imagesUnder(join(root, sub))).sort();
  const mapOf = (image: string) => `${join(dir, relative(root, image))}.safetensors`.replace(/\.(png|jpg)\.safetensors$/, '.safetensors');
  const model = await openSdOnnx(options.model ?? TINY_SD, { threads: 2 });
  try {
    const extractor = await LareExtractor.create(model, { ...MAP_SETTINGS });
    const recipe = JSON.stringify(extractor.recipe);
    const previous = existsSync(recipePath) ? readFileSync(recipePath, 'utf8').trim() : undefined;
    const todo = previous === recipe ? images.filter((image) => !existsSync(mapOf(image))) : images;
    if (todo.length === 0) return { dir, computed: 0, kept: images.length, seconds: (performance.now() - started) / 1000 };
    options.log?.(`computing ${todo.length} LaRE maps with ${options.model ?? TINY_SD} into ${dir} ...`);
    mkdirSync(dir, { recursive: true });
    if (previous !== recipe) writeFileSync(recipePath, `${recipe}\n`);
    const batch = options.batch ?? 32;
    for (let start = 0; start < todo.length; start += batch) {
      const chunk = todo.slice(start, start + batch);
      const inputs: LareImage[] = await Promise.all(
        chunk.map(async (path) => {
          const bytes = await readFile(path);
          return { pixels: larePixels(await decodeRgbLikePil(bytes, path), MAP_SETTINGS.size), hash: contentHash(bytes) };
        }),
      );
      const maps = await extractor.maps(inputs);
      await Promise.all(
        chunk.map(async (path, i) => {
          const target = mapOf(path);
          mkdirSync(dirname(target), { recursive: true });
          await writeSafetensors(`${target}.tmp`, { lare: { shape: extractor.mapShape, data: maps[i]! } }, { recipe });
          renameSync(`${target}.tmp`, target);
        }),
      );
    }
    return { dir, computed: todo.length, kept: images.length - todo.length, seconds: (performance.now() - started) / 1000 };
  } finally {
    await model.dispose();
  }
}
