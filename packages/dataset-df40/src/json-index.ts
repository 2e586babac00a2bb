/**
 * Reads DeepfakeBench/DF40 dataset JSONs (shared/reference/methods.md §7.3):
 *
 *   { "<dataset>": { "<label key>": { "train"|"val"|"test": { ["c23"|"c40":] { "<video>": {label, frames} } } } } }
 *
 * into flat video entries. The FaceForensics++ family has the extra compression level; DF40's per-method
 * files do not. Nothing here touches the frames on disk.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Label, Split } from '@dfd/core';
import { labelOf } from './labels.js';

export interface JsonVideoEntry {
  /** The JSON file the entry came from. */
  file: string;
  /** The JSON's top-level key (the dataset name as the authors spelled it). */
  dataset: string;
  labelKey: string;
  label: Label;
  split: Split;
  /** The compression level the videos sat under (`c23`), when the file has that level. */
  compression?: string;
  video: string;
  /** Frame paths as written in the JSON (authors' prefix not yet rewritten). */
  frames: string[];
}

export interface JsonReadOptions {
  labelMap?: Record<string, Label>;
  /** Which compression level to take from FF++-family entries. */
  compression?: string;
}

export interface JsonReadResult {
  entries: JsonVideoEntry[];
  /** Notes about odd structure (unknown split keys, a missing compression level ...). */
  notes: string[];
}

export class DatasetJsonError extends Error {
  override name = 'DatasetJsonError';
}

const SPLIT_KEYS: Record<string, Split> = {
  train: 'train',
  val: 'val',
  valid: 'val',
  validation: 'val',
  test: 'test',
};
const COMPRESSION_KEYS = new Set(['c23', 'c40', 'c0', 'raw']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True when an object is a compression level (`{c23: {...videos}}`) rather than a map of videos. */
function isCompressionLevel(value: Record<string, unknown>): boolean {
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((k) => COMPRESSION_KEYS.has(k) && isObject(value[k]) && !('frames' in (value[k] as object)));
}

export function parseDatasetJson(json: unknown, file: string, options: JsonReadOptions = {}): JsonReadResult {
  const compression = options.compression ?? 'c23';
  const entries: JsonVideoEntry[] = [];
  const notes: string[] = [];
  if (!isObject(json)) throw new DatasetJsonError(`${file}: expected an object { "<dataset>": {...} } at the top level`);
  for (const [dataset, labels] of Object.entries(json)) {
    if (!isObject(labels)) throw new DatasetJsonError(`${file}: "${dataset}" must map label keys to splits`);
    for (const [labelKey, splits] of Object.entries(labels)) {
      const label = labelOf(labelKey, options.labelMap, file);
      if (!isObject(splits)) throw new DatasetJsonError(`${file}: "${dataset}.${labelKey}" must map splits to videos`);
      for (const [splitKey, rawVideos] of Object.entries(splits)) {
        const split = SPLIT_KEYS[splitKey.toLowerCase()];
        if (!split) {
          notes.push(`${file}: ignored split key "${dataset}.${labelKey}.${splitKey}" (expected train, val or test)`);
          continue;
        }
        if (!isObject(rawVideos)) continue;
        let videos = rawVideos;
        let level: string | undefined;
        if (isCompressionLevel(rawVideos)) {
          const levels = Object.keys(rawVideos);
          if (compression in rawVideos) {
            level = compression;
          } else if (levels.length === 1) {
            level = levels[0]!;
            notes.push(`${file}: "${dataset}.${labelKey}.${splitKey}" has no ${compression} level; using ${level}`);
          } else {
            notes.push(
              `${file}: "${dataset}.${labelKey}.${splitKey}" has levels ${levels.join(', ')} but not ${compression}; ` +
                `set the dataset config's compression to one of them`,
            );
            continue;
          }
          videos = rawVideos[level] as Record<string, unknown>;
        }
        for (const [video, value] of Object.entries(videos)) {
          const frames = Array.isArray(value) ? value : isObject(value) && Array.isArray(value.frames) ? value.frames : [];
          entries.push({
            file,
            dataset,
            labelKey,
            label,
            split,
            ...(level ? { compression: level } : {}),
            video,
            frames: frames.filter((f): f is string => typeof f === 'string'),
          });
        }
      }
    }
  }
  return { entries, notes };
}

export async function readDatasetJson(file: string, options: JsonReadOptions = {}): Promise<JsonReadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new DatasetJsonError(`cannot read dataset JSON ${file}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new DatasetJsonError(`${file} is not valid JSON (${(error as Error).message}); re-download or regenerate it`);
  }
  return parseDatasetJson(json, file, options);
}

/** The `.json` files of a folder, sorted; a clear error when the folder does not exist. */
export async function listJsonFiles(dir: string): Promise<string[]> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new DatasetJsonError(
      `JSON folder ${dir} does not exist. DF40's JSONs go in <root>/dataset_json/ (or set jsonDir / --json-dir)`,
    );
  }
  return (await readdir(dir)).filter((f) => f.toLowerCase().endsWith('.json')).sort().map((f) => join(dir, f));
}

export async function readDatasetJsons(dir: string, options: JsonReadOptions = {}): Promise<JsonReadResult> {
  const files = await listJsonFiles(dir);
  const entries: JsonVideoEntry[] = [];
  const notes: string[] = [];
  for (const file of files) {
    const result = await readDatasetJson(file, options);
    entries.push(...result.entries);
    notes.push(...result.notes);
  }
  return { entries, notes };
}
