/**
 * What `dfd df40 verify` computes: for every dataset (JSON top-level key) and label, how many videos the
 * JSONs list, how many listed frames exist and decode, how many are missing, how many videos have no
 * frame on disk, and how many present files do not decode. Every frame is decoded, concurrently.
 */
import { dirname, resolve } from 'node:path';
import type { Label } from '@dfd/core';
import { decodeCheck } from './image/pipeline.js';
import { DatasetJsonError, listJsonFiles, readDatasetJson, type JsonVideoEntry } from './json-index.js';
import { labelName } from './labels.js';
import { existingFrames } from './listing.js';
import { DirCache, PathResolver, type PrefixRule } from './paths.js';
import { mapPool } from './pool.js';

export interface VerifyCounts {
  videos: number;
  frames: number;
  missing: number;
  empty: number;
  corrupt: number;
}

export interface VerifyReport {
  datasets: Record<string, { real: VerifyCounts; fake: VerifyCounts }>;
  totals: VerifyCounts;
}

export interface VerifyProblem {
  dataset: string;
  label: 'real' | 'fake';
  kind: 'missing' | 'empty' | 'corrupt' | 'json';
  /** First few examples (paths or video keys). */
  examples: string[];
  /** Every bad path (frame files; for `empty`, the video folder), in the order found. */
  paths: string[];
}

export interface VerifyOptions {
  jsonDir?: string;
  prefixes?: PrefixRule[];
  autoPrefix?: boolean;
  compression?: string;
  labelMap?: Record<string, Label>;
  concurrency?: number;
  /** Called as frames are checked (checked, total, of those the ones that failed to decode), at most every `progressEveryMs`. */
  onProgress?: (checked: number, total: number, failed: number) => void;
  progressEveryMs?: number;
}

export interface VerifyResult {
  report: VerifyReport;
  problems: VerifyProblem[];
  /** JSON files that could not be read (reported, not fatal). */
  unreadable: string[];
}

export class VerifyRootError extends Error {
  override name = 'VerifyRootError';
}

const zero = (): VerifyCounts => ({ videos: 0, frames: 0, missing: 0, empty: 0, corrupt: 0 });

export async function verifyDf40(rootArg: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  const root = resolve(rootArg);
  const dirs = new DirCache();
  if (!(await dirs.list(root))) throw new VerifyRootError(`root ${root} does not exist or is not a folder`);
  const jsonDir = resolve(root, options.jsonDir ?? 'dataset_json');
  let files: string[];
  try {
    files = await listJsonFiles(jsonDir);
  } catch (error) {
    throw new VerifyRootError((error as Error).message);
  }
  const resolver = await PathResolver.create(root, options.prefixes ?? [], options.autoPrefix ?? true, dirs);
  const entries: JsonVideoEntry[] = [];
  const unreadable: string[] = [];
  for (const file of files) {
    try {
      entries.push(...(await readDatasetJson(file, { compression: options.compression ?? 'c23', labelMap: options.labelMap ?? {} })).entries);
    } catch (error) {
      if (!(error instanceof DatasetJsonError) && (error as Error).name !== 'LabelError') throw error;
      unreadable.push((error as Error).message);
    }
  }

  const report: VerifyReport = { datasets: {}, totals: zero() };
  const examples = new Map<string, VerifyProblem>();
  const problem = (dataset: string, label: 'real' | 'fake', kind: VerifyProblem['kind'], example: string, path = example) => {
    const key = `${dataset}\u0000${label}\u0000${kind}`;
    let p = examples.get(key);
    if (!p) {
      p = { dataset, label, kind, examples: [], paths: [] };
      examples.set(key, p);
    }
    if (p.examples.length < 3) p.examples.push(example);
    p.paths.push(path);
  };
  for (const entry of entries) {
    report.datasets[entry.dataset] ??= { real: zero(), fake: zero() };
  }
  // One task per listed frame keeps the decoder pool full across videos.
  const frameTasks: Array<{ entry: JsonVideoEntry; path: string }> = [];
  for (const entry of entries) {
    const counts = report.datasets[entry.dataset]![labelName(entry.label)];
    counts.videos++;
    const { kept, missing } = await existingFrames(entry.frames.map((raw) => resolver.resolve(raw)), dirs);
    for (const path of kept) frameTasks.push({ entry, path });
    for (const path of missing) problem(entry.dataset, labelName(entry.label), 'missing', path);
    counts.missing += missing.length;
    if (kept.length === 0) {
      counts.empty++;
      const folder = entry.frames[0] ? dirname(resolver.resolve(entry.frames[0])) : `${entry.video} (no frames listed)`;
      problem(entry.dataset, labelName(entry.label), 'empty', `${entry.video} (${entry.split}) → ${folder}`, folder);
    }
  }
  let done = 0;
  let failed = 0;
  let last = Date.now();
  const decoded = await mapPool(frameTasks, options.concurrency ?? 4, async ({ path }) => {
    let ok = true;
    try {
      await decodeCheck(path);
    } catch {
      ok = false;
      failed++;
    }
    done++;
    if (options.onProgress && (Date.now() - last >= (options.progressEveryMs ?? 2000) || done === frameTasks.length)) {
      last = Date.now();
      options.onProgress(done, frameTasks.length, failed);
    }
    return ok;
  });
  frameTasks.forEach(({ entry, path }, i) => {
    const counts = report.datasets[entry.dataset]![labelName(entry.label)];
    if (decoded[i]) counts.frames++;
    else {
      counts.corrupt++;
      problem(entry.dataset, labelName(entry.label), 'corrupt', path);
    }
  });
  for (const byLabel of Object.values(report.datasets)) {
    for (const counts of [byLabel.real, byLabel.fake]) {
      for (const key of Object.keys(report.totals) as Array<keyof VerifyCounts>) report.totals[key] += counts[key];
    }
  }
  const sorted: VerifyReport = {
    datasets: Object.fromEntries(Object.keys(report.datasets).sort().map((k) => [k, report.datasets[k]!])),
    totals: report.totals,
  };
  return { report: sorted, problems: [...examples.values()], unreadable };
}

const HINTS: Record<VerifyProblem['kind'], string> = {
  missing:
    'listed frames are not on disk: check that the JSONs belong to this root and that the authors\' prefix was rewritten ' +
    '(pass --prefix FROM=TO if the first example path looks wrong), or re-download the subset; the loader skips them',
  empty:
    'videos listed with no frame on disk (DF40 issues #29/#40: empty RDDM/sd2.1 folders, missing CollabDiff reals, e4e names): ' +
    'the loader counts and skips them; re-download the subset or use the updated JSONs',
  corrupt: 'files present that do not decode: re-extract or delete them; the loader counts, logs and skips them',
  json: 'the JSON could not be read',
};

/** The progress line: how many frames were checked, and of those how many decoded and how many did not. */
export function formatVerifyProgress(checked: number, total: number, failed: number): string {
  return `checked ${checked}/${total} frames: ${checked - failed} decoded, ${failed} failed to decode`;
}

/** What `--json` prints: the counts, and every problem with all its paths. */
export function verifyJson(result: VerifyResult): unknown {
  return {
    datasets: result.report.datasets,
    totals: result.report.totals,
    problems: result.problems.map((p) => ({ dataset: p.dataset, label: p.label, kind: p.kind, count: p.paths.length, paths: p.paths })),
    unreadable: result.unreadable,
  };
}

export function formatVerifyTable(result: VerifyResult, options: { all?: boolean } = {}): string {
  const header = ['dataset', 'label', 'videos', 'frames', 'missing', 'empty', 'corrupt'];
  const rows: string[][] = [];
  for (const [name, byLabel] of Object.entries(result.report.datasets)) {
    for (const label of ['real', 'fake'] as const) {
      const c = byLabel[label];
      if (c.videos === 0) continue;
      rows.push([name, label, ...[c.videos, c.frames, c.missing, c.empty, c.corrupt].map(String)]);
    }
  }
  const t = result.report.totals;
  rows.push(['TOTAL', '', ...[t.videos, t.frames, t.missing, t.empty, t.corrupt].map(String)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  if (result.problems.length > 0 || result.unreadable.length > 0) {
    out.push('', 'Problems:');
    for (const p of result.problems) {
      const c = result.report.datasets[p.dataset]![p.label];
      const count = c[p.kind as keyof VerifyCounts];
      if (options.all) {
        out.push(`- ${p.dataset} ${p.label}: ${count} ${p.kind}:`, ...p.paths.map((path) => `    ${path}`));
      } else {
        const more = p.paths.length - p.examples.length;
        out.push(`- ${p.dataset} ${p.label}: ${count} ${p.kind}, e.g. ${p.examples.join(', ')}${more > 0 ? ` (and ${more} more: --all lists every path)` : ''}`);
      }
      out.push(`  hint: ${HINTS[p.kind]}`);
    }
    for (const message of result.unreadable) out.push(`- ${message}`, `  hint: fix or remove this JSON; the other datasets were verified`);
  } else {
    out.push('', 'No problems found.');
  }
  return out.join('\n') + '\n';
}
