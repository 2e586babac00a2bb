/**
 * Where `dfd encode` keeps its rows while it runs, so a run over a million frames neither holds them all in
 * memory nor rewrites them all at every checkpoint:
 *
 *   <out>                         the rows of earlier runs (one safetensors file: embeds, patch_tokens, paths)
 *   <out>.parts/00000.safetensors  rows added since, one file per checkpoint (written whole, then renamed)
 *
 * A checkpoint writes only the rows of its batches. At the end of a run (finished or stopped), `finish`
 * joins `<out>` and the parts into a new `<out>`, streamed (core's `concatSafetensors`), and removes the
 * parts. A run killed before that (SIGKILL, a node failure) leaves whole parts, and the next run resumes
 * from them.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { concatSafetensors, SafetensorsFile, UsageError, writeSafetensors } from '@dfd/core';
import { concatFloat32 } from '../float32.js';

/** The metadata of every file of one output (model, precision, flags, shard ...), `paths` aside. */
export type OutputFacts = Record<string, string>;

export interface RowShapes {
  /** Per-row shape of `embeds`, e.g. `[512]`. */
  embeds: number[];
  /** Per-row shape of `patch_tokens` (`[h, w, C]`) when they are written. */
  patchTokens?: number[];
}

/** What a finished output's index (`<out>.index.json`) holds beyond its rows. */
export type IndexFacts = Record<string, unknown>;

export class EncodeOutput {
  private pending: { paths: string[]; embeds: Float32Array[]; patches: Float32Array[] } = { paths: [], embeds: [], patches: [] };

  private constructor(
    readonly out: string,
    /** Read when a file is written: a loader preset describes its pixels only once it has made some. */
    private readonly facts: () => OutputFacts,
    private readonly shapes: RowShapes,
    /** Rows already stored, in order: `<out>`'s, then the parts'. */
    readonly paths: string[],
    private readonly parts: string[],
  ) {}

  /**
   * Opens `out` for adding rows. `check(metadata, file)` refuses a file written with other settings; every
   * stored file (`<out>` and each part) must pass it.
   */
  static async open(out: string, facts: () => OutputFacts, shapes: RowShapes, check: (metadata: Record<string, string>, file: string) => void): Promise<EncodeOutput> {
    const partsDir = `${out}.parts`;
    const parts = existsSync(partsDir) ? (await readdir(partsDir)).filter((n) => /^\d{5,}\.safetensors$/.test(n)).sort().map((n) => join(partsDir, n)) : [];
    const paths: string[] = [];
    for (const file of existsSync(out) ? [out, ...parts] : parts) paths.push(...(await storedPaths(file, check)));
    return new EncodeOutput(out, facts, shapes, paths, parts);
  }

  /** Rows of one batch: `embeds` `[n, ...shapes.embeds]`, `patches` when patch tokens are written. */
  add(paths: string[], embeds: Float32Array, patches?: Float32Array): void {
    this.pending.paths.push(...paths);
    this.pending.embeds.push(embeds);
    if (patches) this.pending.patches.push(patches);
    this.paths.push(...paths);
  }

  /** Writes the rows added since the last checkpoint as a new part (nothing when there are none). */
  async checkpoint(): Promise<void> {
    const { paths, embeds, patches } = this.pending;
    if (!paths.length) return;
    const n = paths.length;
    const tensors: Parameters<typeof writeSafetensors>[1] = { embeds: { shape: [n, ...this.shapes.embeds], data: concatFloat32(embeds) } };
    if (this.shapes.patchTokens) tensors.patch_tokens = { shape: [n, ...this.shapes.patchTokens], data: concatFloat32(patches) };
    const part = join(`${this.out}.parts`, `${String(this.parts.length).padStart(5, '0')}.safetensors`);
    await mkdir(`${this.out}.parts`, { recursive: true });
    await writeSafetensors(part, tensors, { ...this.facts(), paths: JSON.stringify(paths) });
    this.parts.push(part);
    this.pending = { paths: [], embeds: [], patches: [] };
  }

  /** Joins `<out>` and the parts into `<out>` (streamed), removes the parts, and writes the index: `index`, the rows, `skipped`. */
  async finish(index: IndexFacts, skipped: unknown[]): Promise<void> {
    await this.checkpoint();
    const metadata = { ...this.facts(), paths: JSON.stringify(this.paths) };
    if (this.parts.length) {
      try {
        await concatSafetensors(this.out, existsSync(this.out) ? [this.out, ...this.parts] : this.parts, metadata);
      } catch (error) {
        // A full disk, or a header past the readers' 100 MB (about a million paths): nothing is lost.
        throw new UsageError(`joining the rows into ${this.out} failed: ${(error as Error).message}. The rows stay in ${this.out}.parts; a rerun of the same command joins them again (or, for a list this long, encode it as shards with --shard K/N)`);
      }
      await rm(`${this.out}.parts`, { recursive: true, force: true });
      this.parts.length = 0;
    } else if (!existsSync(this.out)) {
      // Nothing readable at all: an empty output still records the settings, like any other.
      const empty: Parameters<typeof writeSafetensors>[1] = { embeds: { shape: [0, ...this.shapes.embeds], data: new Float32Array(0) } };
      if (this.shapes.patchTokens) empty.patch_tokens = { shape: [0, ...this.shapes.patchTokens], data: new Float32Array(0) };
      await writeSafetensors(this.out, empty, metadata);
    }
    const indexPath = `${this.out}.index.json`;
    await writeFile(`${indexPath}.tmp`, `${JSON.stringify({ ...index, rows: this.paths, skipped }, null, 1)}\n`);
    await rename(`${indexPath}.tmp`, indexPath);
  }
}

/** The row paths a stored file holds (its header only is read), after `check` accepted its settings. */
async function storedPaths(file: string, check: (metadata: Record<string, string>, file: string) => void): Promise<string[]> {
  const stored = await SafetensorsFile.open(file);
  try {
    check(stored.metadata, file);
    const paths = JSON.parse(stored.metadata.paths ?? '[]') as string[];
    if (!stored.has('embeds') || stored.info('embeds').shape[0] !== paths.length) throw new UsageError(`${file} is not a dfd encode output (no embeds row per path); use another --out`);
    return paths;
  } finally {
    await stored.close();
  }
}
