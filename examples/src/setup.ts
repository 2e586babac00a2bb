/**
 * What every example shares: the plugins, the committed tiny CLIP, the synthetic mini-DF40 (generated on
 * first use), and a console table of the per-subset results.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DF40_TEST_SUBSETS, type EvaluationReport, type Plugin } from '@dfd/core';
import { clipPlugin } from '@dfd/encoder-clip';
import { df40Plugin, generateMiniDf40, SYNTH_VERSION } from '@dfd/dataset-df40';
import { coopPlugin } from '@dfd/plugin-coop';
import { cocoopPlugin } from '@dfd/plugin-cocoop';
import { ufdPlugin } from '@dfd/plugin-ufd';
import { mlflowPlugin } from '@dfd/tracking-mlflow';

/**
 * A tiny CLIP (32 px, 32-d embeddings) whose towers were pre-trained on a separate synthetic set with the
 * four training methods only (tools/fixtures/prompt/pretrain_tiny_clip.py): a stand-in for CLIP's own
 * pre-training. Swap in a real Hugging Face CLIP folder (ViT-L/14 for CLIPping and UFD) for real work.
 */
export const TINY_CLIP = fileURLToPath(new URL('../models/tiny-clip-df40', import.meta.url));

/** Where `dfd synth` writes by default, relative to the working directory. */
export const DEFAULT_DATA_DIR = 'data/mini-df40';

export const PLUGINS: Plugin[] = [clipPlugin, df40Plugin, coopPlugin, cocoopPlugin, ufdPlugin, mlflowPlugin];

/** The 8 unknown-type DF40 test sets (protocol P3 without deepfacelab). */
export const TEST_SUBSETS = [...DF40_TEST_SUBSETS];

export interface ExampleOptions {
  /** Dataset root (a DF40 tree; the mini-DF40 by default). */
  root?: string;
  seed?: number;
  runsDir?: string;
  /** Feature-cache folder. */
  cacheDir?: string;
  /** A few steps only: for `npm test` and smoke runs. */
  fast?: boolean;
}

/** The synth.json version of a synthetic tree (1 before versions were recorded), undefined for other data. */
function synthVersion(dir: string): number | undefined {
  const manifest = resolve(dir, 'synth.json');
  if (!existsSync(manifest)) return undefined;
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: number }).version ?? 1;
}

/**
 * Generates the synthetic mini-DF40 into `root` unless one is already there; a synthetic tree from an older
 * generator is regenerated (its numbers would not match the documented ones). Real data is never touched.
 */
export async function ensureMiniDf40(root: string, log: (line: string) => void = () => {}): Promise<{ root: string; generated: boolean }> {
  const dir = resolve(root);
  const version = synthVersion(dir);
  if (version === SYNTH_VERSION || (version === undefined && existsSync(resolve(dir, 'dataset_json')))) return { root: dir, generated: false };
  log(version === undefined ? `generating the synthetic mini-DF40 in ${dir} ...` : `regenerating the synthetic mini-DF40 in ${dir} (generator version ${version} → ${SYNTH_VERSION}) ...`);
  const result = await generateMiniDf40({ out: dir, overwrite: version !== undefined });
  log(`  ${result.images} images in ${result.seconds.toFixed(1)} s`);
  return { root: dir, generated: true };
}

/** MLflow tracking when MLFLOW_TRACKING_URI is set, else none (the run directory is always written). */
export function trackingFromEnv(): Array<{ use: string }> {
  return process.env.MLFLOW_TRACKING_URI ? [{ use: 'mlflow' }] : [];
}

const COLUMNS: Array<[string, string]> = [
  ['auc', 'AUC'],
  ['ap', 'AP'],
  ['eer', 'EER'],
  ['acc', 'acc@0.5'],
  ['video_auc', 'video AUC'],
];

/** The per-subset table of a test report, subsets in report order, the mean last. */
export function formatTable(report: EvaluationReport): string {
  const names = Object.keys(report.subsets).filter((n) => n !== 'mean');
  if (report.subsets.mean) names.push('mean');
  const width = Math.max(8, ...names.map((n) => n.length), ...Object.keys(report.groups ?? {}).map((g) => g.length + 5));
  const cell = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '   -  ' : v.toFixed(3).padStart(6));
  const header = `${'subset'.padEnd(width)}  ${COLUMNS.map(([, h]) => h.padStart(10)).join('')}`;
  const rows = names.map((n) => `${n.padEnd(width)}  ${COLUMNS.map(([k]) => cell(report.subsets[n]?.[k]).padStart(10)).join('')}`);
  // Declared groups: on the mini-DF40, test sets whose artefact family training saw / did not see.
  const groups = Object.entries(report.groups ?? {}).map(
    ([g, values]) => `${`mean ${g}`.padEnd(width)}  ${COLUMNS.map(([k]) => cell(values[k]).padStart(10)).join('')}`,
  );
  return [header, '-'.repeat(header.length), ...rows, ...groups].join('\n');
}

/** True when this module is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && pathToFileURL(resolve(process.argv[1])).href === moduleUrl;
}
