/**
 * libtensorflow 2.9.1 (the version @tensorflow/tfjs-node 4.22.0 is built for) taken from PyPI's
 * TensorFlow wheel, because tfjs-node's own install script downloads it from Google's storage, which many
 * clusters block.
 *
 * The wheel ships no `libtensorflow.so`: its C API (`TF_*`, `TFE_*`) is exported by
 * `tensorflow/python/_pywrap_tensorflow_internal.so`, which depends on `libtensorflow_framework.so.2`.
 * That library also references ~190 CPython symbols without linking libpython, and it is linked with
 * BIND_NOW, so it only loads when something defines them. The C API never calls them, so a small stub
 * library defines each one as a function that aborts with its name (should one ever be called, the
 * message says which). `-ltensorflow` then resolves to a linker script naming the stub and the library.
 *
 * Everything is kept in a cache directory outside any repository (`~/.cache/dfd/tensorflow` by default),
 * one step at a time, each skipped when its output is already there: a second install is offline.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { sha256File } from '../digest.js';
import { extractMember, listZip } from './zip.js';
import { NativeInstallError, runTool, type Tool } from './tools.js';

export const LIBTENSORFLOW_VERSION = '2.9.1';

export type TensorflowVariant = 'cpu' | 'gpu';

interface WheelSpec {
  /** The PyPI distribution. */
  distribution: string;
  filename: string;
  sha256: string;
}

/** The cp310 tag does not matter (no Python runs); the hashes are PyPI's. */
export const WHEELS: Record<TensorflowVariant, WheelSpec> = {
  cpu: {
    distribution: 'tensorflow-cpu',
    filename: 'tensorflow_cpu-2.9.1-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
    sha256: '6666ddeae45e1f41da788cb4bdea3435aba16edb0bc17b7ac00631c7c9eb052e',
  },
  // TensorFlow 2.9's plain `tensorflow` wheel is the GPU build on Linux (CUDA 11.2, cuDNN 8.1).
  gpu: {
    distribution: 'tensorflow',
    filename: 'tensorflow-2.9.1-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
    sha256: 'add2f4e55fd7209a5cb01d815364adc9827184d74a83c2f1616c72be2e85c8b7',
  },
};

const PYWRAP = 'tensorflow/python/_pywrap_tensorflow_internal.so';
const FRAMEWORK = 'tensorflow/libtensorflow_framework.so.2';
export const STUB_LIBRARY = 'libdfd_pystub.so';

/** The libraries the built addon loads at run time (the linker script is only for the build). */
export const RUNTIME_LIBRARIES = ['_pywrap_tensorflow_internal.so', 'libtensorflow_framework.so.2', STUB_LIBRARY];

export interface LibtensorflowLayout {
  /** `lib/`: the runtime libraries, the stub, `libtensorflow.so` (linker script), `libtensorflow_framework.so`. */
  libDir: string;
  /** `include/`: the C API headers. */
  includeDir: string;
  /** Where the compiled addon is cached, one per Node ABI and N-API version. */
  addonDir: string;
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DFD_CACHE_DIR) return resolve(env.DFD_CACHE_DIR, 'tensorflow');
  const base = env.XDG_CACHE_HOME ?? join(env.HOME ?? '/tmp', '.cache');
  return join(base, 'dfd', 'tensorflow');
}

export function layoutFor(cacheDir: string, variant: TensorflowVariant): LibtensorflowLayout {
  const root = join(cacheDir, `libtensorflow-${LIBTENSORFLOW_VERSION}-${variant}`);
  return { libDir: join(root, 'lib'), includeDir: join(root, 'include'), addonDir: join(root, 'addon') };
}

/** A wheel the user passed must be exactly PyPI's file (checked before any tool is looked for). */
export async function checkGivenWheel(wheel: string, variant: TensorflowVariant): Promise<string> {
  const spec = WHEELS[variant];
  const given = resolve(wheel);
  if (!existsSync(given)) throw new NativeInstallError(`--wheel ${given}: no such file`);
  const digest = await sha256File(given);
  if (digest !== spec.sha256) {
    throw new NativeInstallError(`--wheel ${given}: sha256 ${digest} is not PyPI's ${spec.filename} (${spec.sha256}); pass that exact file`);
  }
  return given;
}

export interface WheelOptions {
  cacheDir: string;
  variant: TensorflowVariant;
  /** A wheel file the user already has (offline machines). */
  wheel?: string;
  pip?: Tool;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

/** The wheel in the cache, verified against PyPI's sha256; copied from `wheel` or downloaded with pip. */
export async function ensureWheel(options: WheelOptions): Promise<string> {
  const spec = WHEELS[options.variant];
  const wheelsDir = join(options.cacheDir, 'wheels');
  const cached = join(wheelsDir, spec.filename);
  mkdirSync(wheelsDir, { recursive: true });
  if (options.wheel) {
    const given = await checkGivenWheel(options.wheel, options.variant);
    if (given !== cached) copyFileSync(given, cached);
    return cached;
  }
  if (existsSync(cached)) {
    if ((await sha256File(cached)) === spec.sha256) {
      options.log(`  wheel: cached ${cached}`);
      return cached;
    }
    options.log(`  wheel: ${cached} does not match its sha256 (interrupted download?); downloading again`);
    rmSync(cached);
  }
  if (!options.pip) throw new NativeInstallError(`the wheel ${spec.filename} is not cached and pip is not available: pass --wheel PATH`);
  options.log(`  wheel: downloading ${spec.distribution}==${LIBTENSORFLOW_VERSION} from PyPI with pip (${options.variant === 'cpu' ? '207' : '512'} MB)`);
  await runTool(
    options.pip,
    ['download', `${spec.distribution}==${LIBTENSORFLOW_VERSION}`, '--no-deps', '--only-binary=:all:', '--python-version', '310',
      '--platform', 'manylinux2014_x86_64', '--disable-pip-version-check', '--progress-bar', 'off', '-d', wheelsDir],
    {
      cwd: wheelsDir,
      env: options.env,
      log: options.log,
      what: `pip download ${spec.distribution}==${LIBTENSORFLOW_VERSION} (no network to PyPI? download ${spec.filename} elsewhere and pass --wheel PATH)`,
    },
  );
  if (!existsSync(cached) || (await sha256File(cached)) !== spec.sha256) {
    throw new NativeInstallError(`pip finished but ${cached} is missing or does not match PyPI's sha256 ${spec.sha256}`);
  }
  return cached;
}

function isHeader(name: string): boolean {
  return (
    (name.startsWith('tensorflow/include/tensorflow/c/') && name.endsWith('.h')) ||
    /^tensorflow\/include\/tensorflow\/core\/platform\/ctstring[a-z_]*\.h$/.test(name)
  );
}

/** Extracts the two libraries and the C API headers (once per wheel: a marker records which wheel). */
export async function extractLibtensorflow(wheel: string, layout: LibtensorflowLayout, log: (line: string) => void): Promise<void> {
  const marker = join(layout.libDir, '.extracted-from');
  if (existsSync(marker) && readFileSync(marker, 'utf8') === basename(wheel)) {
    log(`  libraries: already extracted in ${layout.libDir}`);
    return;
  }
  log(`  libraries: extracting libtensorflow and its C headers from ${basename(wheel)}`);
  const members = listZip(wheel);
  const wanted = new Map([[PYWRAP, join(layout.libDir, '_pywrap_tensorflow_internal.so')], [FRAMEWORK, join(layout.libDir, 'libtensorflow_framework.so.2')]]);
  for (const member of members) {
    if (isHeader(member.name)) wanted.set(member.name, join(layout.includeDir, member.name.slice('tensorflow/include/'.length)));
  }
  for (const name of [PYWRAP, FRAMEWORK, 'tensorflow/include/tensorflow/c/c_api.h', 'tensorflow/include/tensorflow/c/eager/c_api.h']) {
    if (!members.some((m) => m.name === name)) throw new NativeInstallError(`${wheel} has no ${name}: not a TensorFlow ${LIBTENSORFLOW_VERSION} Linux wheel?`);
  }
  for (const member of members) {
    const destination = wanted.get(member.name);
    if (destination) await extractMember(wheel, member, destination);
  }
  writeFileSync(marker, basename(wheel));
}

/** The CPython symbols `library` expects someone else to define. */
export function undefinedPythonSymbols(nm: Tool, library: string): string[] {
  const [file, ...prefix] = nm.command;
  const out = execFileSync(file!, [...prefix, '-D', '--undefined-only', library], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const symbols = out
    .split('\n')
    .map((line) => line.trim().split(/\s+/).at(-1) ?? '')
    .filter((symbol) => /^_?Py/.test(symbol));
  return [...new Set(symbols)].sort();
}

/** C source defining every symbol as a function that names itself and aborts if it is ever called. */
export function stubSource(symbols: string[]): string {
  const lines = [
    '/* Generated by `dfd backend install tensorflow`: CPython symbols that TensorFlow\'s library references',
    ' * but its C API never calls. Each aborts with its name, so a call would be visible, never silent. */',
    '#include <stdio.h>',
    '#include <stdlib.h>',
    'static void dfd_pystub_called(const char *name) {',
    '  fprintf(stderr, "dfd: TensorFlow called the CPython function %s, which the native backend does not provide\\n", name);',
    '  abort();',
    '}',
    ...symbols.map((symbol) => `void ${symbol}(void) { dfd_pystub_called("${symbol}"); }`),
    '',
  ];
  return lines.join('\n');
}

/** Builds the stub library and the `-ltensorflow` linker script next to the extracted libraries. */
export async function prepareLinkLibraries(
  layout: LibtensorflowLayout,
  tools: { cc: Tool; nm: Tool },
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<void> {
  const stub = join(layout.libDir, STUB_LIBRARY);
  const script = join(layout.libDir, 'libtensorflow.so');
  const frameworkLink = join(layout.libDir, 'libtensorflow_framework.so');
  if (existsSync(stub) && existsSync(script) && existsSync(frameworkLink)) {
    log(`  stub library and linker script: present`);
    return;
  }
  const symbols = undefinedPythonSymbols(tools.nm, join(layout.libDir, '_pywrap_tensorflow_internal.so'));
  if (symbols.length === 0) throw new NativeInstallError('the TensorFlow library references no CPython symbols: an unexpected wheel');
  log(`  stub library: ${symbols.length} CPython symbols`);
  const source = join(layout.libDir, 'dfd_pystub.c');
  writeFileSync(source, stubSource(symbols));
  // Built under a private name and renamed: two installs running at once never see a half-written stub.
  const partial = `${stub}.${process.pid}.partial`;
  await runTool(tools.cc, ['-shared', '-fPIC', '-O1', `-Wl,-soname,${STUB_LIBRARY}`, '-o', partial, source], {
    cwd: layout.libDir, env, log, what: 'compiling the CPython stub library',
  });
  renameSync(partial, stub);
  // `-l:` keeps the bare file names in the addon's DT_NEEDED, found at run time through its rpath.
  writeFileSync(script, `/* dfd: -ltensorflow = TensorFlow's C API library plus the CPython stub it needs to load */\nINPUT(-l:${STUB_LIBRARY} -l:_pywrap_tensorflow_internal.so)\n`);
  rmSync(frameworkLink, { force: true });
  symlinkSync('libtensorflow_framework.so.2', frameworkLink);
}
