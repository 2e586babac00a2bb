/**
 * `dfd encode --shard K/N` and `dfd encode merge`: one image list split over N machines (a Slurm array task
 * each), then joined back into exactly the file one unsharded run writes.
 *
 * Shard K (0-based, as `$SLURM_ARRAY_TASK_ID` with `--array=0-(N-1)`) takes the K-th of N contiguous, nearly
 * equal blocks of the image list. Contiguous blocks make the merge a concatenation in shard order, so the
 * merged rows come in the same order as an unsharded run's, and each shard's file stays resumable on its own.
 * A shard file records which list it cut (`list_digest`, `list_size`) and its block (`shard`, `shard_size`),
 * so the merge refuses shards of different lists, models or flags, missing or duplicate shards, and shards
 * that have not finished.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { concatSafetensors, SafetensorsFile, UsageError, type CliIO } from '@dfd/core';
import { parseFlags } from './args.js';

export interface Shard {
  index: number;
  count: number;
}

/** Parses `K/N` with 0 <= K < N. */
export function parseShard(text: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = match ? Number(match[1]) : NaN;
  const count = match ? Number(match[2]) : NaN;
  if (!match || count < 1 || index >= count) {
    throw new UsageError(`--shard expects K/N with 0 <= K < N (K is 0-based, like $SLURM_ARRAY_TASK_ID), got '${text}'`);
  }
  return { index, count };
}

/** The K-th of N contiguous blocks; block sizes differ by at most one. */
export function shardBlock<T>(items: T[], shard: Shard): T[] {
  const start = Math.floor((shard.index * items.length) / shard.count);
  const end = Math.floor(((shard.index + 1) * items.length) / shard.count);
  return items.slice(start, end);
}

/** Identifies the full image list a shard was cut from (order matters: it fixes the blocks). */
export function listDigest(images: string[]): string {
  return createHash('sha256').update(images.join('\n')).digest('hex');
}

/** The metadata keys a shard file adds to an unsharded one (the merge drops them again). */
export function shardMetadata(images: string[], shard: Shard, blockSize: number): Record<string, string> {
  return { shard: `${shard.index}/${shard.count}`, shard_size: String(blockSize), list_digest: listDigest(images), list_size: String(images.length) };
}

const SHARD_KEYS = ['shard', 'shard_size', 'list_digest', 'list_size'];
/** Keys every shard must agree on (a mix of models, engines or flags is refused). */
const SAME_KEYS = ['model', 'engine', 'weights_digest', 'patch_tokens', 'list_digest', 'list_size'];

interface ShardFile {
  path: string;
  shard: Shard;
  metadata: Record<string, string>;
  index: { rows: string[]; skipped: Array<{ path: string; reason: string }>; [key: string]: unknown };
}

/** A shard's settings and index; its tensors stay on disk (the merge streams them). */
async function readShard(path: string): Promise<ShardFile> {
  if (!existsSync(path)) throw new UsageError(`shard ${path} does not exist (did its task run? \`dfd slurm status\` shows which failed)`);
  const file = await SafetensorsFile.open(path);
  const metadata = file.metadata;
  await file.close();
  if (!metadata.shard) throw new UsageError(`${path} is not a shard (written without --shard K/N)`);
  const indexPath = `${path}.index.json`;
  if (!existsSync(indexPath)) throw new UsageError(`${path} has no ${indexPath} beside it; re-run its shard to rewrite it`);
  const index = JSON.parse(await readFile(indexPath, 'utf8')) as ShardFile['index'];
  return { path, shard: parseShard(metadata.shard), metadata, index };
}

function checkShards(shards: ShardFile[]): void {
  const count = shards[0]!.shard.count;
  const seen = new Map<number, string>();
  for (const file of shards) {
    if (file.shard.count !== count) throw new UsageError(`${file.path} is shard ${file.metadata.shard}, but ${shards[0]!.path} is one of ${count}`);
    const twin = seen.get(file.shard.index);
    if (twin) throw new UsageError(`${file.path} and ${twin} are both shard ${file.shard.index}/${count}`);
    seen.set(file.shard.index, file.path);
    for (const key of SAME_KEYS) {
      if (file.metadata[key] !== shards[0]!.metadata[key]) {
        throw new UsageError(`${file.path} differs from ${shards[0]!.path} in ${key} (${file.metadata[key]} vs ${shards[0]!.metadata[key]}); shards must come from one command`);
      }
    }
    const accounted = file.index.rows.length + file.index.skipped.length;
    if (accounted < Number(file.metadata.shard_size)) {
      throw new UsageError(`${file.path} is unfinished: ${accounted} of ${file.metadata.shard_size} images done; re-run shard ${file.metadata.shard} (it resumes)`);
    }
  }
  const missing = Array.from({ length: count }, (_, k) => k).filter((k) => !seen.has(k));
  if (missing.length) throw new UsageError(`missing shard(s) ${missing.map((k) => `${k}/${count}`).join(', ')}; pass all ${count}`);
}

/** Joins shard files into the file (and index) an unsharded run over the same list writes, streamed. */
export async function mergeShards(out: string, paths: string[]): Promise<{ rows: number; skipped: number }> {
  const shards = (await Promise.all(paths.map(readShard))).sort((a, b) => a.shard.index - b.shard.index);
  checkShards(shards);
  const rows = shards.flatMap((s) => s.index.rows);
  const metadata = Object.fromEntries(Object.entries(shards[0]!.metadata).filter(([key]) => !SHARD_KEYS.includes(key)));
  metadata.paths = JSON.stringify(rows);
  await concatSafetensors(out, shards.map((s) => s.path), metadata);
  const { rows: _rows, skipped: _skipped, ...rest } = shards[0]!.index;
  const skipped = shards.flatMap((s) => s.index.skipped);
  const indexPath = `${out}.index.json`;
  await writeFile(`${indexPath}.tmp`, `${JSON.stringify({ ...rest, rows, skipped }, null, 1)}\n`);
  await rename(`${indexPath}.tmp`, indexPath);
  return { rows: rows.length, skipped: skipped.length };
}

export const MERGE_USAGE = `dfd encode merge --out FILE.safetensors SHARD.safetensors...

Joins the files of \`dfd encode --shard K/N\` (all N of them, any order) into the file and index one
unsharded \`dfd encode\` over the same list writes (rows in list order). Refuses shards of another list,
model or flags, missing or duplicate shards, and unfinished ones.`;

export async function runMerge(args: string[], io: CliIO): Promise<number> {
  const outAt = args.indexOf('--out');
  if (outAt < 0 || outAt + 1 >= args.length) throw new UsageError('--out FILE.safetensors is required');
  const out = resolve(io.cwd, args[outAt + 1]!);
  const rest = [...args.slice(0, outAt), ...args.slice(outAt + 2)];
  const { booleans } = parseFlags(rest.filter((a) => a.startsWith('--')), { values: [], booleans: ['help'] });
  if (booleans.has('help')) {
    io.stdout.write(`${MERGE_USAGE}\n`);
    return 0;
  }
  const shards = rest.filter((a) => !a.startsWith('--')).map((p) => resolve(io.cwd, p));
  if (!shards.length) throw new UsageError('give the shard files to merge');
  const { rows, skipped } = await mergeShards(out, shards);
  io.stdout.write(`encode merge: ${shards.length} shards, ${rows} rows to ${out}${skipped ? `; ${skipped} unreadable image(s) listed in the index` : ''}\n`);
  return 0;
}
