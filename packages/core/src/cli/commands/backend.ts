/**
 * `dfd backend`: which tfjs backend a run here will use and why, and `dfd backend install tensorflow`,
 * the native backend installed without Google's storage (see native/install-tensorflow.ts).
 */
import { parseArgs } from 'node:util';
import { describeBackend, selectBackend, type BackendChoice } from '../../backend.js';
import { installTensorflowBackend } from '../../native/install-tensorflow.js';
import { UsageError, type CliCommand, type CliIO } from '../command.js';

const USAGE = `dfd backend [status] [--json]
dfd backend install tensorflow [--gpu] [--wheel FILE] [--cache-dir DIR] [--force]

  status      (default) select the backend as a run would (DFD_BACKEND, else tensorflow > wasm > cpu)
              and print which one it is, why, and the settings that keep it deterministic
  --json      the same as JSON

  install tensorflow
              install @tensorflow/tfjs-node 4.22.0 with libtensorflow 2.9.1 taken from PyPI's
              tensorflow-cpu wheel (no download from Google's storage); idempotent, cached in
              ~/.cache/dfd/tensorflow (DFD_CACHE_DIR moves it). Needs npm, python3, a C/C++ compiler,
              make and nm; pip unless the wheel is cached or given.
  --gpu       @tensorflow/tfjs-node-gpu with the tensorflow 2.9.1 GPU wheel (needs CUDA 11.2 and
              cuDNN 8.1; UNTESTED: no GPU was at hand when this was written)
  --wheel     use this wheel file (machines without PyPI access)
  --cache-dir where to keep the wheel, the libraries and compiled addons
  --force     recompile the addon even if a cached build exists

Where Google's storage is reachable, \`npm install @tensorflow/tfjs-node\` installs the same backend.`;

async function status(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, strict: true });
  const choice = (io.env.DFD_BACKEND as BackendChoice | undefined) ?? 'auto';
  const selection = await selectBackend(choice);
  const report = describeBackend(selection);
  if (values.json) {
    io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  const lines = [`backend: ${report.name}${choice === 'auto' ? ' (auto)' : ` (DFD_BACKEND=${choice})`}`];
  for (const t of selection.tried) lines.push(`  ${t.name.padEnd(28)} ${t.outcome}`);
  for (const [key, value] of Object.entries(report.settings)) lines.push(`  ${key} = ${value}`);
  if (report.hint) lines.push('', report.hint);
  io.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

async function install(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      gpu: { type: 'boolean', default: false },
      wheel: { type: 'string' },
      'cache-dir': { type: 'string' },
      force: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (positionals.length !== 1 || positionals[0] !== 'tensorflow') throw new UsageError('dfd backend install: the only installable backend is `tensorflow`');
  const result = await installTensorflowBackend({
    variant: values.gpu ? 'gpu' : 'cpu',
    wheel: values.wheel,
    cacheDir: values['cache-dir'],
    force: values.force,
    env: io.env,
    log: (line) => io.stderr.write(`${line}\n`),
  });
  io.stdout.write(`${result.package} ready (${result.addon})\n`);
  return 0;
}

export const backendCommand: CliCommand = {
  name: 'backend',
  summary: 'show which tfjs backend runs use and why; install the native TensorFlow backend',
  usage: USAGE,
  async run(args, io) {
    const [sub, ...rest] = args;
    if (sub === 'install') return install(rest, io);
    if (sub === undefined || sub === 'status') return status(rest, io);
    if (sub.startsWith('-')) return status(args, io);
    throw new UsageError(`unknown sub-command '${sub}'`);
  },
};
