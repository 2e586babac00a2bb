/**
 * `dfd backend install tensorflow`: the native TensorFlow backend for tfjs without Google's storage.
 * Steps (each skipped when its result is already there, so a rerun is quick and offline):
 *   1. the TensorFlow 2.9.1 wheel from PyPI (or `--wheel`), sha256-checked, cached outside the project;
 *   2. its libtensorflow and C headers extracted; a CPython stub library and a `-ltensorflow` linker script;
 *   3. @tensorflow/tfjs-node 4.22.0 installed with `--ignore-scripts` next to core's @tensorflow/tfjs;
 *   4. its addon compiled with node-gyp against the local Node headers (cached per Node ABI);
 *   5. a check in a fresh process that `tf.getBackend()` is `tensorflow` and computes.
 * Where Google's storage is reachable, `npm install @tensorflow/tfjs-node` does all of this by itself.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  checkGivenWheel, defaultCacheDir, ensureWheel, extractLibtensorflow, layoutFor, LIBTENSORFLOW_VERSION, prepareLinkLibraries, WHEELS,
  type TensorflowVariant,
} from './libtensorflow.js';
import { buildAddon, installTfjsNodePackage, layoutDeps, projectOfCoreTfjs, tfjsNodePackage, verifyTfjsNode, TFJS_NODE_VERSION } from './tfjs-node-addon.js';
import { NativeInstallError, requireTools, type ToolName } from './tools.js';

export interface InstallTensorflowOptions {
  variant?: TensorflowVariant;
  /** Cache for the wheel, the extracted libraries and compiled addons; default ~/.cache/dfd/tensorflow. */
  cacheDir?: string;
  /** A wheel file already on disk (machines without PyPI access). */
  wheel?: string;
  /** The npm project to install into; default: the one holding @dfd/core's @tensorflow/tfjs. */
  projectDir?: string;
  /** Recompile the addon even if a cached build exists. */
  force?: boolean;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

export interface InstallTensorflowResult {
  package: string;
  packageDir: string;
  addon: string;
  cacheDir: string;
  backend: string;
}

function checkPlatform(): void {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new NativeInstallError(
      `this installer handles Linux x86-64 only (this is ${process.platform}-${process.arch}). ` +
        `Install the backend the standard way instead: npm install @tensorflow/tfjs-node@${TFJS_NODE_VERSION}`,
    );
  }
}

export async function installTensorflowBackend(options: InstallTensorflowOptions = {}): Promise<InstallTensorflowResult> {
  const variant = options.variant ?? 'cpu';
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const cacheDir = options.cacheDir ?? defaultCacheDir(env);
  checkPlatform();
  if (options.wheel) await checkGivenWheel(options.wheel, variant);
  const layout = layoutFor(cacheDir, variant);
  const wheelCached = existsSync(join(cacheDir, 'wheels', WHEELS[variant].filename));
  const needs: ToolName[] = ['npm', 'node-gyp', 'python3', 'c++', 'cc', 'make', 'nm'];
  if (!options.wheel && !wheelCached) needs.push('pip');
  const tools = requireTools(needs, env);

  log(`dfd: installing the native TensorFlow backend (${tfjsNodePackage(variant)}@${TFJS_NODE_VERSION}, libtensorflow ${LIBTENSORFLOW_VERSION} ${variant}); cache ${cacheDir}`);
  const wheel = await ensureWheel({ cacheDir, variant, wheel: options.wheel, pip: tools.pip, env, log });
  await extractLibtensorflow(wheel, layout, log);
  await prepareLinkLibraries(layout, { cc: tools.cc!, nm: tools.nm! }, env, log);
  const projectDir = options.projectDir ?? projectOfCoreTfjs();
  const packageDir = await installTfjsNodePackage(projectDir, variant, tools.npm!, env, log);
  layoutDeps(packageDir, layout);
  const addon = await buildAddon({ packageDir, layout, nodeGyp: tools['node-gyp']!, force: options.force ?? false, env, log });
  const check = verifyTfjsNode(projectDir, variant, env);
  const expected = [5, 11, 11, 25, 0, 2, 0];
  if (check.backend !== 'tensorflow' || check.result.join() !== expected.join()) {
    throw new NativeInstallError(`${tfjsNodePackage(variant)} loaded, but its check gave backend ${check.backend} and ${check.result.join(', ')} (expected tensorflow and ${expected.join(', ')})`);
  }
  log(`  check: tf.getBackend() = 'tensorflow'; matmul and gather's gradient compute. Done: runs now pick the native backend (DFD_BACKEND=wasm to opt out).`);
  return { package: tfjsNodePackage(variant), packageDir, addon, cacheDir, backend: check.backend };
}
