/**
 * Puts @tensorflow/tfjs-node (or -gpu) next to the @tensorflow/tfjs that @dfd/core uses, without its
 * install script (which downloads from Google's storage), and gives it the addon compiled here against
 * the wheel's libtensorflow.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { RUNTIME_LIBRARIES, type LibtensorflowLayout, type TensorflowVariant } from './libtensorflow.js';
import { NativeInstallError, runTool, type Tool } from './tools.js';

export const TFJS_NODE_VERSION = '4.22.0';

export function tfjsNodePackage(variant: TensorflowVariant): string {
  return variant === 'gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
}

/**
 * The npm project whose node_modules holds core's @tensorflow/tfjs: tfjs-node must go there, so that it
 * resolves the same tfjs instance (one engine) and registers its backend where core looks for it.
 */
export function projectOfCoreTfjs(): string {
  const tfjsPackageJson = createRequire(import.meta.url).resolve('@tensorflow/tfjs/package.json');
  // <project>/node_modules/@tensorflow/tfjs/package.json
  return dirname(dirname(dirname(dirname(tfjsPackageJson))));
}

function installedVersion(projectDir: string, pkg: string): string | undefined {
  const file = join(projectDir, 'node_modules', pkg, 'package.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version : undefined;
}

/** `npm install --no-save --ignore-scripts`: the package without its download, the project's manifest untouched. */
export async function installTfjsNodePackage(
  projectDir: string,
  variant: TensorflowVariant,
  npm: Tool,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<string> {
  const pkg = tfjsNodePackage(variant);
  const packageDir = join(projectDir, 'node_modules', pkg);
  if (installedVersion(projectDir, pkg) === TFJS_NODE_VERSION) {
    log(`  ${pkg}@${TFJS_NODE_VERSION}: installed in ${projectDir}`);
  } else {
    log(`  ${pkg}@${TFJS_NODE_VERSION}: npm install --no-save --ignore-scripts in ${projectDir}`);
    await runTool(npm, ['install', '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', `${pkg}@${TFJS_NODE_VERSION}`], {
      cwd: projectDir, env, log, what: `npm install ${pkg}@${TFJS_NODE_VERSION}`,
    });
  }
  const ownTfjs = createRequire(join(packageDir, 'package.json')).resolve('@tensorflow/tfjs/package.json');
  const coreTfjs = createRequire(import.meta.url).resolve('@tensorflow/tfjs/package.json');
  if (ownTfjs !== coreTfjs) {
    throw new NativeInstallError(
      `${pkg} resolves @tensorflow/tfjs at ${dirname(ownTfjs)} but @dfd/core uses ${dirname(coreTfjs)}: two tfjs instances ` +
        `would not share a backend. Make both @tensorflow/tfjs ${TFJS_NODE_VERSION} (npm dedupe) and run this again.`,
    );
  }
  return packageDir;
}

/** The N-API version node-pre-gyp will look for: the highest the package lists that this Node supports. */
export function napiBuildVersion(packageDir: string): number {
  const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { binary: { napi_versions: number[] } };
  const supported = Number(process.versions.napi);
  const usable = manifest.binary.napi_versions.filter((v) => v <= supported);
  if (usable.length === 0) throw new NativeInstallError(`this Node supports N-API ${supported}; the addon needs one of ${manifest.binary.napi_versions.join(', ')}`);
  return Math.max(...usable);
}

/** Hard links (no copy of ~500 MB) when the cache is on the same file system, else copies. */
function linkOrCopy(from: string, to: string): void {
  rmSync(to, { force: true });
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
}

/** `deps/lib` and `deps/include` where binding.gyp expects libtensorflow (and the addon's rpath finds it). */
export function layoutDeps(packageDir: string, layout: LibtensorflowLayout): void {
  const depsLib = join(packageDir, 'deps', 'lib');
  mkdirSync(depsLib, { recursive: true });
  for (const name of readdirSync(depsLib)) rmSync(join(depsLib, name), { force: true, recursive: true });
  for (const name of [...RUNTIME_LIBRARIES, 'libtensorflow.so']) linkOrCopy(join(layout.libDir, name), join(depsLib, name));
  symlinkSync('libtensorflow_framework.so.2', join(depsLib, 'libtensorflow_framework.so'));
  const depsInclude = join(packageDir, 'deps', 'include');
  rmSync(depsInclude, { force: true, recursive: true });
  symlinkSync(layout.includeDir, depsInclude);
}

/**
 * The addon calls nothing in the CPython stub, so a linker that defaults to --as-needed (Debian and
 * Ubuntu's gcc do) would drop it from DT_NEEDED, and TensorFlow's library would then fail to load
 * (BIND_NOW, undefined Py* symbols). gyp's Makefiles add LDFLAGS before the libraries.
 */
function addonBuildEnv(env: NodeJS.ProcessEnv, nodedir: string | undefined): NodeJS.ProcessEnv {
  return { ...env, LDFLAGS: `${env.LDFLAGS ?? ''} -Wl,--no-as-needed`.trim(), ...(nodedir ? { npm_config_nodedir: nodedir } : {}) };
}

export interface AddonBuild {
  packageDir: string;
  layout: LibtensorflowLayout;
  nodeGyp: Tool;
  /** Rebuild even when a cached addon exists. */
  force: boolean;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

/**
 * Compiles `tfjs_binding.node` with node-gyp against the local Node headers (`--nodedir`, so nothing is
 * downloaded), caches it per Node ABI, and puts it where node-pre-gyp's `find` looks.
 */
export async function buildAddon(build: AddonBuild): Promise<string> {
  const napi = napiBuildVersion(build.packageDir);
  const cached = join(build.layout.addonDir, `node-abi${process.versions.modules}-napi${napi}`, 'tfjs_binding.node');
  const modulePath = join(build.packageDir, 'lib', `napi-v${napi}`);
  if (build.force || !existsSync(cached)) {
    const nodedir = dirname(dirname(process.execPath));
    const haveHeaders = existsSync(join(nodedir, 'include', 'node', 'node_api.h'));
    if (!haveHeaders) build.log(`  (no Node headers under ${nodedir}/include/node: node-gyp will try to download them)`);
    build.log(`  addon: compiling tfjs_binding.node (N-API ${napi}) with node-gyp; about a minute`);
    await runTool(
      build.nodeGyp,
      ['rebuild', ...(haveHeaders ? [`--nodedir=${nodedir}`] : []), `--napi_build_version=${napi}`, '--module_name=tfjs_binding', `--module_path=${modulePath}`],
      { cwd: build.packageDir, env: addonBuildEnv(build.env, haveHeaders ? nodedir : undefined), log: build.log, what: 'compiling the tfjs-node addon' },
    );
    const built = join(build.packageDir, 'build', 'Release', 'tfjs_binding.node');
    if (!existsSync(built)) throw new NativeInstallError(`node-gyp finished but ${built} is missing`);
    mkdirSync(dirname(cached), { recursive: true });
    copyFileSync(built, `${cached}.${process.pid}.partial`);
    renameSync(`${cached}.${process.pid}.partial`, cached);
  } else {
    build.log(`  addon: cached ${cached}`);
  }
  mkdirSync(modulePath, { recursive: true });
  copyFileSync(cached, join(modulePath, 'tfjs_binding.node'));
  return join(modulePath, 'tfjs_binding.node');
}

/**
 * Loads the package in a fresh Node process and runs a matmul and a `gather` gradient (which wasm
 * lacks): proof that the backend works, and the error text if it does not.
 */
export function verifyTfjsNode(projectDir: string, variant: TensorflowVariant, env: NodeJS.ProcessEnv): { backend: string; result: number[] } {
  const pkg = tfjsNodePackage(variant);
  const script = `
    const tf = require(${JSON.stringify(pkg)});
    const x = tf.tensor2d([[1, 2], [3, 4]]);
    const y = tf.matMul(x, x, false, true);
    const g = tf.grad((t) => tf.gather(t, tf.tensor1d([1, 1], 'int32')).sum())(tf.tensor1d([5, 6, 7]));
    console.log(JSON.stringify({ backend: tf.getBackend(), result: [...y.dataSync(), ...g.dataSync()] }));`;
  try {
    const out = execFileSync(process.execPath, ['-e', script], {
      cwd: projectDir,
      env: { ...env, TF_CPP_MIN_LOG_LEVEL: '2' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out.trim().split('\n').at(-1)!) as { backend: string; result: number[] };
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? (error as Error).message);
    throw new NativeInstallError(`${pkg} was built but does not load:\n${stderr.split('\n').slice(-15).join('\n')}`);
  }
}
