/** `dfd lare merge OUT SHARD...`: several stores (shards) with the same settings → one store with one index. */
import { copyFile, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UsageError, type CliIO } from '@dfd/core';
import { EXTRAS_STORE_FORMAT, readStoreIndexes, type ExtrasStoreIndex } from '@dfd/dataset-df40';
import { canonicalJson, describeDifference } from '../stage1/store-writer.js';
import { existsSync } from 'node:fs';
import { writeFile, rename } from 'node:fs/promises';

export const MERGE_USAGE = `dfd lare merge OUT SHARD...

Merges stores written by dfd lare extract (e.g. one per --shard K/N, or one folder holding several shards'
indexes) into OUT with one index. Refuses stores made with other settings (model, precision, t, E, size, prompt, noise)
and images that appear in two inputs.`;

export async function merge(args: string[], io: CliIO): Promise<number> {
  if (args.length < 2) throw new UsageError('give OUT and at least one SHARD store');
  const out = resolve(io.cwd, args[0]!);
  const inputs = args.slice(1).map((a) => resolve(io.cwd, a));
  if (inputs.includes(out)) throw new UsageError(`OUT ${out} is also an input; merge into a new folder`);
  if (existsSync(join(out, 'index.json'))) throw new UsageError(`${out} already holds a store (index.json); merge into a new folder`);
  const indexes: Array<{ file: string; root: string; index: ExtrasStoreIndex }> = [];
  for (const root of inputs) for (const found of await readStoreIndexes(root)) indexes.push({ ...found, root });
  const first = indexes[0]!;
  const owner = new Map<string, string>();
  for (const { file, index } of indexes) {
    if (canonicalJson(index.settings) !== canonicalJson(first.index.settings) || index.shape.join('x') !== first.index.shape.join('x')) {
      throw new UsageError(
        `${file} was made with other settings than ${first.file} (${describeDifference(first.index.settings, index.settings)}); ` +
          'shards of one store share model, precision, t, E, size, prompt and noise',
      );
    }
    for (const [path] of index.entries) {
      const other = owner.get(path);
      if (other) throw new UsageError(`${path} is in both ${other} and ${file}: overlapping shards; merge refused`);
      owner.set(path, file);
    }
  }
  await mkdir(join(out, 'parts'), { recursive: true });
  const merged: ExtrasStoreIndex = { format: EXTRAS_STORE_FORMAT, tensor: first.index.tensor, shape: first.index.shape, settings: first.index.settings, parts: [], entries: [], skipped: [] };
  for (const { root, index } of indexes) {
    const base = merged.parts.length;
    for (const part of index.parts) {
      const name = `parts/merged-${String(merged.parts.length).padStart(5, '0')}.safetensors`;
      await copyFile(join(root, part), join(out, name));
      merged.parts.push(name);
    }
    for (const [path, hash, part, row] of index.entries) merged.entries.push([path, hash, base + part, row]);
    merged.skipped.push(...index.skipped.filter((s) => !owner.has(s.path)));
  }
  await writeFile(join(out, 'index.json.tmp'), JSON.stringify(merged));
  await rename(join(out, 'index.json.tmp'), join(out, 'index.json'));
  io.stdout.write(`lare merge: ${merged.entries.length} maps from ${indexes.length} index(es) into ${out}${merged.skipped.length ? `; ${merged.skipped.length} skipped image(s) carried over` : ''}\n`);
  return 0;
}
