/**
 * `dfd lare import`: existing LaRE maps (LaRE's `<stem>.pt`, CLaRE's `<cls>_<stem>.pt`, `.npy`, `.safetensors`)
 * → an extras store, joined to the listed images by file stem as LaRE's own training code does.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError, type CliIO } from '@dfd/core';
import { sha256OfFile } from '@dfd/dataset-df40';
import { MAP_EXTENSIONS, readMapFile } from '../stage1/map-files.js';
import { StoreWriter } from '../stage1/store-writer.js';
import { readImageList } from '@dfd/encoder-clip';

export const IMPORT_USAGE = `dfd lare import --dataset LIST (--maps DIR | --map-list FILE) --out DIR [--names lare|clare]

Existing LaRE maps into an extras store. Each map is joined to the listed image with the same stem
(LaRE: <stem>.pt with stem = the file name up to its first dot; CLaRE: <real|fake>_<stem>.pt, --names clare).

  --dataset LIST     the images (as for dfd lare extract)
  --maps DIR         map files (.pt from torch.save of one tensor, .npy, .safetensors), searched recursively
  --map-list FILE    LaRE's list: one "<map path>\\t<label>" per line (the label is ignored)
  --out DIR          the store to write
  --names lare|clare how map names carry the stem (default lare)

Maps whose stem matches no image or several images, and files that cannot be read, are counted and listed.`;

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else if (MAP_EXTENSIONS.includes(extname(entry.name).toLowerCase())) out.push(path);
  }
  return out.sort();
}

/** LaRE names maps `filename.split('.')[0] + '.pt'`. */
export function imageStem(path: string): string {
  return basename(path).split('.')[0]!;
}

export function mapStem(path: string, names: 'lare' | 'clare'): string {
  const stem = basename(path).slice(0, basename(path).length - extname(path).length);
  if (names === 'clare') {
    const match = /^(real|fake|[01])_(.+)$/.exec(stem);
    return match ? match[2]! : stem;
  }
  return stem;
}

export async function importMaps(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { dataset: { type: 'string' }, maps: { type: 'string' }, 'map-list': { type: 'string' }, out: { type: 'string' }, names: { type: 'string' } },
    strict: true,
  });
  if (!values.dataset) throw new UsageError('--dataset LIST is required');
  if (!values.out) throw new UsageError('--out DIR is required');
  if (!values.maps === !values['map-list']) throw new UsageError('give exactly one of --maps DIR or --map-list FILE');
  const names = (values.names ?? 'lare') as 'lare' | 'clare';
  if (names !== 'lare' && names !== 'clare') throw new UsageError(`--names must be lare or clare, got '${values.names}'`);
  const images = (await readImageList(values.dataset, io.cwd)).map((i) => i.path);
  let mapFiles: string[];
  if (values.maps) {
    mapFiles = await walk(resolve(io.cwd, values.maps));
  } else {
    const list = resolve(io.cwd, values['map-list']!);
    const text = await readFile(list, 'utf8').catch((e: Error) => {
      throw new UsageError(`cannot read --map-list ${list}: ${e.message}`);
    });
    mapFiles = text.split(/\r?\n/).map((l) => l.split('\t')[0]!.trim()).filter(Boolean).map((p) => (isAbsolute(p) ? p : resolve(dirname(list), p)));
  }
  if (!mapFiles.length) throw new UsageError('no map files found');
  const byStem = new Map<string, string[]>();
  for (const image of images) byStem.set(imageStem(image), [...(byStem.get(imageStem(image)) ?? []), image]);

  const problems: Array<{ path: string; reason: string }> = [];
  let writer: StoreWriter | undefined;
  let shape: number[] | undefined;
  const out = resolve(io.cwd, values.out);
  for (const file of mapFiles) {
    const stem = mapStem(file, names);
    const matches = byStem.get(stem) ?? [];
    if (matches.length !== 1) {
      problems.push({ path: file, reason: matches.length ? `stem '${stem}' matches ${matches.length} images (e.g. ${matches[0]}): ambiguous, not imported` : `no listed image has the stem '${stem}'` });
      continue;
    }
    let map;
    try {
      map = await readMapFile(file);
    } catch (error) {
      problems.push({ path: file, reason: (error as Error).message });
      continue;
    }
    if (!shape) {
      shape = map.shape;
      writer = await StoreWriter.open(out, { tag: 'import', settings: { method: 'lare-import', names }, shape });
    } else if (map.shape.join('x') !== shape.join('x')) {
      problems.push({ path: file, reason: `shape [${map.shape.join(', ')}] differs from the first map's [${shape.join(', ')}]` });
      continue;
    }
    if (writer!.has(matches[0]!)) continue;
    writer!.add(matches[0]!, await sha256OfFile(matches[0]!), map.data);
  }
  for (const p of problems) {
    io.stderr.write(`lare import: skip ${p.path}: ${p.reason}\n`);
    writer?.skip(p.path, p.reason);
  }
  await writer?.flush();
  const imported = writer?.count ?? 0;
  io.stdout.write(`lare import: ${imported} maps in ${out}${problems.length ? `, ${problems.length} map file(s) not imported (listed above and in the index's "skipped")` : ''}\n`);
  return imported ? 0 : 1;
}
