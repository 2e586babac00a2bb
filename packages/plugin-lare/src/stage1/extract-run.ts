/**
 * A whole extraction: image paths → an extras store of LaRE maps, resumable and shardable.
 *
 * Takes paths, never labelled samples. Each image is read once (bytes → content hash → decode); one that
 * cannot be read or decoded is counted and listed in the index's `skipped`, never written as a zero map.
 */
import { readFile } from 'node:fs/promises';
import { mapPool } from './pool.js';
import { contentHash } from './noise.js';
import { decodeRgbLikePil, larePixels } from './image.js';
import { LareExtractor, type LareImage, type StageTimes } from './lare.js';
import { shardOf, shardTag, type Shard } from './shard.js';
import { StoreWriter } from './store-writer.js';

export interface ExtractRunOptions {
  extractor: LareExtractor;
  images: string[];
  out: string;
  shard?: Shard;
  /** Images per VAE/UNet call (the UNet sees batch·E latents). */
  batch?: number;
  /** Rewrite the index every this many batches (default 8). */
  checkpointEvery?: number;
  onProgress?: (done: number, total: number, skipped: number) => void;
  onSkip?: (path: string, reason: string) => void;
  onStart?: (info: { total: number; alreadyDone: number; otherShards: number }) => void;
  /** Asked after each batch: true stops the run there, with everything so far written (resumable). */
  shouldStop?: () => boolean;
}

export interface ExtractRunResult {
  written: number;
  alreadyDone: number;
  otherShards: number;
  skipped: Array<{ path: string; reason: string }>;
  times: StageTimes;
  seconds: number;
  /** True when `shouldStop` ended the run before its last image. */
  stopped: boolean;
}

interface Loaded {
  path: string;
  bytes?: Buffer;
  hash?: string;
  error?: string;
}

async function load(path: string): Promise<Loaded> {
  try {
    const bytes = await readFile(path);
    return { path, bytes, hash: contentHash(bytes) };
  } catch (error) {
    return { path, error: `cannot read ${path}: ${(error as Error).message}` };
  }
}

type PreparedImage = LareImage & { path: string };

/** Decodes a loaded file into LaRE's input (`larePixels`), or says why it cannot be used. */
async function prepare(item: Loaded, size: number): Promise<PreparedImage | { path: string; error: string }> {
  if (item.error || !item.bytes) return { path: item.path, error: item.error ?? 'unreadable' };
  try {
    const image = await decodeRgbLikePil(item.bytes, item.path);
    return { path: item.path, hash: item.hash!, pixels: larePixels(image, size) };
  } catch (error) {
    return { path: item.path, error: (error as Error).message };
  }
}

/** Reads, hashes and prepares images exactly as an extraction does (calibration sets); unreadable ones are returned apart. */
export async function readLareImages(paths: string[], size: number): Promise<{ images: PreparedImage[]; skipped: Array<{ path: string; reason: string }> }> {
  const prepared = await mapPool(paths, 4, async (path) => prepare(await load(path), size));
  return {
    images: prepared.filter((p): p is PreparedImage => !('error' in p)),
    skipped: prepared.flatMap((p) => ('error' in p ? [{ path: p.path, reason: p.error }] : [])),
  };
}

export async function runExtraction(options: ExtractRunOptions): Promise<ExtractRunResult> {
  const started = performance.now();
  const { extractor, shard } = options;
  const batch = options.batch ?? 1;
  const writer = await StoreWriter.open(options.out, {
    ...(shard ? { tag: shardTag(shard) } : {}),
    settings: extractor.recipe as unknown as Record<string, unknown>,
    shape: extractor.mapShape,
  });
  const pending = options.images.filter((p) => !writer.has(p));
  const alreadyDone = options.images.length - pending.length;
  let todo = pending;
  let otherShards = 0;
  if (shard && shard.count > 1) {
    // The shard of an image depends on its content: hash every pending file first (I/O only) so the
    // progress total and ETA are this shard's. Unreadable files fall to shard 0, which reports them.
    const loaded = await mapPool(pending, 16, async (p) => {
      const l = await load(p);
      return { path: p, hash: l.hash };
    });
    todo = [];
    for (const { path, hash } of loaded) {
      const mine = hash ? shardOf(hash, shard.count) === shard.index : shard.index === 0;
      if (mine) todo.push(path);
      else otherShards++;
    }
  }
  options.onStart?.({ total: todo.length, alreadyDone, otherShards });
  const size = extractor.settings.size;
  let done = 0;
  let written = 0;
  let batches = 0;
  let stopped = false;
  const skip = (path: string, reason: string) => {
    writer.skip(path, reason);
    options.onSkip?.(path, reason);
  };
  for (let start = 0; start < todo.length; start += batch) {
    const chunk = await Promise.all(todo.slice(start, start + batch).map(load));
    const prepared = await Promise.all(chunk.map((item) => prepare(item, size)));
    const good: PreparedImage[] = [];
    for (const p of prepared) {
      if ('error' in p) skip(p.path, p.error);
      else good.push(p);
    }
    const maps = await extractor.maps(good);
    good.forEach((img, i) => {
      const map = maps[i]!;
      if (!map.every(Number.isFinite)) {
        skip(img.path, 'the map has NaN or infinite values (model weights or input out of range); not written');
        return;
      }
      writer.add(img.path, img.hash, map);
      written++;
    });
    done += chunk.length;
    options.onProgress?.(done, todo.length, writer.skipped.length);
    if (++batches % (options.checkpointEvery ?? 8) === 0) await writer.flush();
    if (options.shouldStop?.() && start + batch < todo.length) {
      stopped = true;
      break;
    }
  }
  await writer.flush();
  return { written, alreadyDone, otherShards, skipped: writer.skipped, times: { ...extractor.times }, seconds: (performance.now() - started) / 1000, stopped };
}
