/**
 * Picks the tfjs backend once per process: `tensorflow` when @tensorflow/tfjs-node-gpu or
 * @tensorflow/tfjs-node is installed (optional peers: their install downloads libtensorflow, which many
 * machines cannot), else `wasm`, else `cpu`. `DFD_BACKEND` or the experiment's `backend` overrides.
 */
// The umbrella package, not tfjs-core alone: its Node bundle is the one that registers every gradient
// and the chained tensor ops (tfjs-core's Node bundle registers neither).
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendChoice = BackendName | 'auto';

export interface BackendSelection {
  name: BackendName;
  /** Why this one: which candidates were tried and why each was skipped. */
  tried: Array<{ name: string; outcome: string }>;
}

/** How a candidate module is loaded; replaceable in tests to simulate a missing package. */
export type ModuleLoader = (specifier: string) => Promise<unknown>;

const defaultLoader: ModuleLoader = (specifier) => import(specifier);

let current: BackendSelection | undefined;

export class BackendError extends Error {
  override name = 'BackendError';
}

function isInstalled(specifier: string): boolean {
  try {
    createRequire(import.meta.url).resolve(specifier);
    return true;
  } catch {
    return false;
  }
}

async function tryTensorflow(loader: ModuleLoader, tried: BackendSelection['tried']): Promise<boolean> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    if (loader === defaultLoader && !isInstalled(pkg)) {
      tried.push({ name: pkg, outcome: 'not installed' });
      continue;
    }
    try {
      await loader(pkg);
      if (await tf.setBackend('tensorflow')) {
        tried.push({ name: pkg, outcome: 'selected' });
        return true;
      }
      tried.push({ name: pkg, outcome: 'loaded but the tensorflow backend did not initialise' });
    } catch (error) {
      tried.push({ name: pkg, outcome: `failed to load: ${(error as Error).message.split('\n')[0]}` });
    }
  }
  return false;
}

async function tryWasm(loader: ModuleLoader, tried: BackendSelection['tried']): Promise<boolean> {
  try {
    await loader('@tensorflow/tfjs-backend-wasm');
    if (await tf.setBackend('wasm')) {
      tried.push({ name: 'wasm', outcome: 'selected' });
      return true;
    }
    tried.push({ name: 'wasm', outcome: 'did not initialise' });
  } catch (error) {
    tried.push({ name: 'wasm', outcome: `failed to load: ${(error as Error).message.split('\n')[0]}` });
  }
  return false;
}

/**
 * Selects and initialises the backend. `choice` defaults to `DFD_BACKEND` or `auto`. An explicit choice
 * that cannot initialise is an error (the user asked for it); `auto` falls through the list.
 */
export async function selectBackend(
  choice: BackendChoice = (process.env.DFD_BACKEND as BackendChoice | undefined) ?? 'auto',
  loader: ModuleLoader = defaultLoader,
): Promise<BackendSelection> {
  if (!['auto', 'tensorflow', 'wasm', 'cpu'].includes(choice)) {
    throw new BackendError(`unknown backend '${choice}' (DFD_BACKEND?): use auto, tensorflow, wasm or cpu`);
  }
  const tried: BackendSelection['tried'] = [];
  if (choice === 'auto' || choice === 'tensorflow') {
    if (await tryTensorflow(loader, tried)) return remember({ name: 'tensorflow', tried });
    if (choice === 'tensorflow') {
      throw new BackendError(
        `backend 'tensorflow' requested but neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node could be loaded ` +
          `(${tried.map((t) => `${t.name}: ${t.outcome}`).join('; ')}). Install one, or use DFD_BACKEND=wasm.`,
      );
    }
  }
  if (choice === 'auto' || choice === 'wasm') {
    if (await tryWasm(loader, tried)) return remember({ name: 'wasm', tried });
    if (choice === 'wasm') throw new BackendError(`backend 'wasm' requested but it failed: ${tried.at(-1)?.outcome}`);
  }
  // tfjs prints a "use tfjs-node" banner on first CPU use; the run records the backend itself, so
  // silence tfjs' console logging (PROD only turns off its logging and debug checks).
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
  tried.push({ name: 'cpu', outcome: 'selected' });
  return remember({ name: 'cpu', tried });
}

function remember(selection: BackendSelection): BackendSelection {
  current = selection;
  return selection;
}

/** The selection made in this process, if any. */
export function currentBackend(): BackendSelection | undefined {
  return current;
}

/** Selects a backend once; later calls with `auto` reuse it. */
export async function ensureBackend(choice: BackendChoice = 'auto'): Promise<BackendSelection> {
  const envChoice = process.env.DFD_BACKEND as BackendChoice | undefined;
  const wanted = envChoice ?? choice;
  if (current && (wanted === 'auto' || wanted === current.name)) return current;
  return selectBackend(wanted);
}
