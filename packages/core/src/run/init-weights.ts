/**
 * Two-stage training: a run starts from tensors another run learned (`init` in the experiment). The source
 * run is named by its run directory or by a scheme a plugin resolves (`mlflow:<run-id>`); exactly the named
 * tensors are copied from its checkpoint into the variables of the same name, bit for bit (float32 data
 * copied as stored), and the source is recorded as this run's parent in `parent.json`.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { InitConfig } from '../experiment.js';
import type { Plugin } from '../plugin.js';
import type { NamedTensor } from '../safetensors.js';
import { assignWeights, loadCheckpoint } from '../train/checkpoint.js';
import { openRunDirectory, writeJson } from './run-directory.js';

export class InitError extends Error {
  override name = 'InitError';
}

/** What `parent.json` records: where the tensors came from, which, their shapes, and whether they train on. */
export interface InitRecord {
  /** `init.from` as written in the experiment. */
  from: string;
  runId: string;
  runDir: string;
  experiment: string;
  stage?: string;
  /** Absolute path of the checkpoint read, and its SHA-256 (the exact bytes the tensors came from). */
  checkpoint: string;
  sha256: string;
  /** Copied tensors by their full name, with shapes. */
  variables: Record<string, number[]>;
  trainable: boolean;
}

export const PARENT_FILE = 'parent.json';

/** `<scheme>:<rest>` for a scheme a plugin handles; plain paths (even `C:\...`) are not schemes. */
function schemeOf(from: string): { scheme: string; reference: string } | undefined {
  const match = /^([a-z][a-z0-9+.-]{1,}):(.+)$/i.exec(from);
  return match ? { scheme: match[1]!.toLowerCase(), reference: match[2]! } : undefined;
}

/** The run directory `init.from` names: a path, or `<scheme>:<id>` resolved by a plugin's run locator. */
export async function locateRun(from: string, plugins: readonly Plugin[], cwd: string): Promise<string> {
  const scheme = schemeOf(from);
  if (scheme && scheme.scheme !== 'file') {
    const locators = plugins.flatMap((p) => p.runLocators ?? []);
    const locator = locators.find((l) => l.scheme === scheme.scheme);
    if (!locator) {
      if (scheme.scheme === 'stage') {
        throw new InitError(`init.from '${from}' names a pipeline stage: it only resolves inside a pipeline (dfd run on a file exporting { stages })`);
      }
      const known = locators.map((l) => `${l.scheme}:`).join(', ');
      throw new InitError(
        `init.from '${from}': no loaded plugin resolves '${scheme.scheme}:' run references` +
          `${known ? ` (resolvable: ${known})` : ''}. Name the run directory instead, or load the plugin (e.g. @dfd/tracking-mlflow for mlflow:)`,
      );
    }
    return locator.locate(scheme.reference, { cwd });
  }
  const dir = resolvePath(cwd, scheme?.scheme === 'file' ? scheme.reference : from);
  if (!existsSync(dir)) throw new InitError(`init.from: run directory ${dir} does not exist (pass runs/<experiment>/<run-id>)`);
  return dir;
}

/** The checkpoint file of a run: its selected one (selected.json), else best, else last; or the one asked for. */
export function checkpointOfRun(runDir: string, which: InitConfig['checkpoint']): string {
  const run = openRunDirectory(runDir);
  let name: string;
  if (which === 'selected') {
    const selectedPath = join(run.dir, 'selected.json');
    if (!existsSync(selectedPath)) {
      throw new InitError(
        `init.from ${run.dir}: the run selected no checkpoint (no selected.json: it did not finish). ` +
          `Resume it (dfd resume ${run.dir}) or set init.checkpoint to 'last'`,
      );
    }
    name = (JSON.parse(readFileSync(selectedPath, 'utf8')) as { checkpoint: string }).checkpoint;
  } else {
    name = `${which}.safetensors`;
  }
  const path = join(run.checkpointsDir, name);
  if (!existsSync(path)) throw new InitError(`init.from ${run.dir}: ${path} does not exist`);
  return path;
}

const describeTensors = (tensors: Record<string, { shape: readonly number[] }>) =>
  Object.entries(tensors)
    .map(([name, t]) => `${name} [${t.shape.join(', ')}]`)
    .join(', ') || 'nothing';

/**
 * Resolves each requested name against the checkpoint: the exact name, else the one name ending in
 * `.<requested>`. A missing or ambiguous name fails, listing what the checkpoint holds.
 */
export function resolveInitNames(requested: readonly string[], available: Record<string, { shape: readonly number[] }>, source: string): string[] {
  const names = Object.keys(available);
  const resolved = requested.map((want) => {
    if (want in available) return want;
    const candidates = names.filter((name) => name.endsWith(`.${want}`));
    if (candidates.length === 1) return candidates[0]!;
    if (candidates.length > 1) {
      throw new InitError(`init.variables: '${want}' is ambiguous in ${source}: ${candidates.join(', ')} all end in it; use the full name`);
    }
    throw new InitError(`init.variables: ${source} has no tensor '${want}'. It holds: ${describeTensors(available)}`);
  });
  const duplicates = resolved.filter((name, i) => resolved.indexOf(name) !== i);
  if (duplicates.length) throw new InitError(`init.variables names ${[...new Set(duplicates)].join(', ')} more than once`);
  return resolved;
}

/**
 * Copies the named tensors of the source run's checkpoint into `variables` (the detector's, by the same
 * full names). Fails before assigning anything when a name is missing on either side or a shape differs.
 */
export async function applyInit(
  init: InitConfig,
  variables: Record<string, tf.Variable>,
  options: { plugins: readonly Plugin[]; cwd: string },
): Promise<InitRecord> {
  const runDir = await locateRun(init.from, options.plugins, options.cwd);
  const checkpoint = checkpointOfRun(runDir, init.checkpoint);
  const loaded = await loadCheckpoint(checkpoint);
  const names = resolveInitNames(init.variables, loaded.model, checkpoint);
  const missing = names.filter((name) => !(name in variables));
  if (missing.length) {
    throw new InitError(
      `init: this run's detector has no variable ${missing.join(', ')} to receive from ${checkpoint}. ` +
        `Its variables: ${describeTensors(variables)}`,
    );
  }
  const picked: Record<string, NamedTensor> = Object.fromEntries(names.map((name) => [name, loaded.model[name]!]));
  for (const name of names) {
    const have = picked[name]!.shape;
    const want = variables[name]!.shape;
    if (have.join(',') !== want.join(',')) {
      throw new InitError(
        `init: ${checkpoint} holds ${name} with shape [${have.join(', ')}] but this run's detector expects [${want.join(', ')}] ` +
          `(a different model configuration?). The checkpoint holds: ${describeTensors(loaded.model)}`,
      );
    }
  }
  assignWeights(Object.fromEntries(names.map((name) => [name, variables[name]!])), picked, checkpoint);
  const source = openRunDirectory(runDir);
  const recorded = JSON.parse(readFileSync(join(source.dir, 'config.json'), 'utf8')) as { name?: string; stage?: string };
  return {
    from: init.from,
    runId: source.runId,
    runDir: resolvePath(source.dir),
    experiment: recorded.name ?? '',
    ...(recorded.stage ? { stage: recorded.stage } : {}),
    checkpoint: resolvePath(checkpoint),
    sha256: createHash('sha256').update(readFileSync(checkpoint)).digest('hex'),
    variables: Object.fromEntries(names.map((name) => [name, [...picked[name]!.shape]])),
    trainable: init.trainable,
  };
}

export function writeInitRecord(runDir: string, record: InitRecord): string {
  const path = join(runDir, PARENT_FILE);
  writeJson(path, record);
  return path;
}

/** The parent recorded by an earlier start of this run (a resume reads it instead of copying again). */
export function readInitRecord(runDir: string): InitRecord | undefined {
  const path = join(runDir, PARENT_FILE);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as InitRecord) : undefined;
}
