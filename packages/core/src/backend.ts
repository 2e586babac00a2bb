/**
 * Picks the tfjs backend once per process: `tensorflow` when @tensorflow/tfjs-node-gpu or
 * @tensorflow/tfjs-node is installed (optional peers: their install downloads libtensorflow, which many
 * machines cannot), else `wasm`, else `cpu`. `DFD_BACKEND` or the experiment's `backend` overrides.
 */
// The umbrella package, not tfjs-core alone: its Node bundle is the one that registers every gradient
// and the chained tensor ops (tfjs-core's Node bundle registers neither).
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';

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

/**
 * TensorFlow reads these when its first context is created, so they are set before tfjs-node loads (a
 * value the user set wins). Quieter logs (no oneDNN banner), and op determinism: on CPU TensorFlow's
 * kernels are deterministic for a fixed thread count, and TF_DETERMINISTIC_OPS makes it refuse the few
 * ops that are not rather than give run-to-run differences. Threads are TensorFlow's default (all
 * cores) unless TF_NUM_INTRAOP_THREADS pins them; a checkpoint resumed with another thread count can
 * differ in the last bits, so the count is recorded with the run (see describeBackend).
 */
export const TENSORFLOW_ENV_DEFAULTS: Record<string, string> = { TF_CPP_MIN_LOG_LEVEL: '1', TF_DETERMINISTIC_OPS: '1' };

function applyTensorflowEnv(): void {
  for (const [key, value] of Object.entries(TENSORFLOW_ENV_DEFAULTS)) process.env[key] ??= value;
}

async function tryTensorflow(loader: ModuleLoader, tried: BackendSelection['tried']): Promise<boolean> {
  applyTensorflowEnv();
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
          `(${tried.map((t) => `${t.name}: ${t.outcome}`).join('; ')}). Install one (\`npx dfd backend install tensorflow\`, ` +
          `or \`npm install @tensorflow/tfjs-node\` where Google's storage is reachable), or use DFD_BACKEND=wasm.`,
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

export interface BackendReport {
  name: BackendName;
  tried: BackendSelection['tried'];
  /** What decides the numbers besides the code: thread count and determinism settings. */
  settings: Record<string, string>;
  /** Facts a run records with its protocol (report.json), so its numbers can be reproduced and compared. */
  protocolFacts: Record<string, string | number | boolean>;
  /** A next step for the user, when a faster backend is within reach. */
  hint?: string;
}

/**
 * What a run on this backend can promise. On `tensorflow`, a run is deterministic for a fixed thread
 * count (an exact resume is bit-identical), but it is not batch-invariant: Eigen evaluates exp, sigmoid
 * and softmax in SIMD packets with a scalar tail, and the two round differently, so one image's score can
 * differ by a float32 rounding step (~1e-7 relative) depending on the batch it was scored in. wasm and
 * cpu give the same bits whatever the batch.
 */
export function describeBackend(selection: BackendSelection): BackendReport {
  const settings: Record<string, string> = {};
  const protocolFacts: Record<string, string | number | boolean> = { backend: selection.name };
  if (selection.name === 'tensorflow') {
    const threads = Number(process.env.TF_NUM_INTRAOP_THREADS) || availableParallelism();
    settings.package = selection.tried.find((t) => t.outcome === 'selected')?.name ?? '';
    settings.intraOpThreads = process.env.TF_NUM_INTRAOP_THREADS ? String(threads) : `${threads} (all cores; pin with TF_NUM_INTRAOP_THREADS)`;
    settings.deterministicOps = process.env.TF_DETERMINISTIC_OPS ?? '0';
    settings.batchInvariant = 'no: a score may differ by ~1e-7 relative with the batch it is computed in';
    Object.assign(protocolFacts, { backend_intra_op_threads: threads, backend_batch_invariant: false });
  } else {
    settings.threads = '1';
    settings.batchInvariant = 'yes';
  }
  const hint =
    selection.name === 'tensorflow'
      ? undefined
      : 'The native backend trains ~10x faster: `npx dfd backend install tensorflow` (or `npm install @tensorflow/tfjs-node` ' +
        "where Google's storage is reachable).";
  return { name: selection.name, tried: selection.tried, settings, protocolFacts, ...(hint ? { hint } : {}) };
}
