/** `dfd lare verify DIR --dataset LIST`: coverage of a listing by a store, per split and subset; exit 2 when maps are missing. */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError, type CliIO } from '@dfd/core';
import { ExtrasStore } from '@dfd/dataset-df40';
import { readImageList } from '@dfd/encoder-clip';

export const VERIFY_USAGE = `dfd lare verify DIR --dataset LIST [--no-hash]

Checks that every listed image has a map in the store DIR (by path, else by content hash unless --no-hash),
reads every part file, and prints coverage per split and subset (from {"path", "split", "subset"} entries of a
JSON list). Exit code 2 when any map is missing or unreadable.`;

export async function verify(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { dataset: { type: 'string' }, 'no-hash': { type: 'boolean' } }, allowPositionals: true, strict: true });
  if (positionals.length !== 1) throw new UsageError('give the store folder DIR');
  if (!values.dataset) throw new UsageError('--dataset LIST is required');
  const store = await ExtrasStore.open(resolve(io.cwd, positionals[0]!));
  try {
    const images = await readImageList(values.dataset, io.cwd);
    const groups = new Map<string, { total: number; found: number }>();
    const missing: string[] = [];
    for (const image of images) {
      const key = `${image.split ?? '-'}\t${image.subset ?? '-'}`;
      const group = groups.get(key) ?? { total: 0, found: 0 };
      groups.set(key, group);
      group.total++;
      if (await store.find(image.path, !values['no-hash'])) group.found++;
      else missing.push(image.path);
    }
    // Every part must be readable: read each entry's row (cheap: one small read per map).
    const unreadable: string[] = [];
    for (const entry of store.entries()) {
      try {
        const { data } = await store.read(entry);
        if (!data.every(Number.isFinite)) unreadable.push(`${entry.path}: NaN/infinite values`);
      } catch (error) {
        unreadable.push(`${entry.path}: ${(error as Error).message}`);
      }
    }
    io.stdout.write(`store ${store.root}: ${store.size} maps of shape [${store.shape.join(', ')}], ${store.skipped.length} skipped at extraction\n`);
    io.stdout.write('split\tsubset\tlisted\twith map\tmissing\n');
    for (const [key, g] of [...groups].sort()) io.stdout.write(`${key}\t${g.total}\t${g.found}\t${g.total - g.found}\n`);
    for (const path of missing.slice(0, 10)) io.stdout.write(`missing: ${path}\n`);
    if (missing.length > 10) io.stdout.write(`missing: ... and ${missing.length - 10} more\n`);
    for (const line of unreadable.slice(0, 10)) io.stdout.write(`unreadable: ${line}\n`);
    const bad = missing.length + unreadable.length;
    io.stdout.write(bad ? `lare verify: ${missing.length} missing, ${unreadable.length} unreadable\n` : `lare verify: all ${images.length} listed images have a map\n`);
    return bad ? 2 : 0;
  } finally {
    await store.close();
  }
}
