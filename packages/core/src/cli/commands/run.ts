/** `dfd run <experiment.ts|.js|.json>` and `dfd resume <run-dir>`. */
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ExperimentInCode } from '../../experiment.js';
import type { Plugin } from '../../plugin.js';
import { resumeRun, runExperiment, type RunResult } from '../../run/runner.js';
import { UsageError, type CliCommand, type CliIO } from '../command.js';
import { formatMetric } from '../../run/progress.js';

let registerTsxOnce: unknown;

/** Loads an experiment from JSON, or from a module whose default export is one (or a function returning one). */
export async function loadExperimentFile(path: string): Promise<ExperimentInCode> {
  const absolute = resolve(path);
  const extension = extname(absolute);
  if (extension === '.json') {
    try {
      return JSON.parse(await readFile(absolute, 'utf8')) as ExperimentInCode;
    } catch (error) {
      throw new UsageError(`cannot read experiment ${absolute}: ${(error as Error).message}`);
    }
  }
  let module: Record<string, unknown>;
  if (extension === '.ts' || extension === '.mts' || extension === '.cts') {
    // TypeScript experiments run through tsx (esbuild), so researchers need no build step. The loader is
    // registered process-wide (not tsImport's isolated namespace) so the experiment shares this process's
    // module instances: one @dfd/core, one tfjs engine.
    const { register } = await import('tsx/esm/api');
    registerTsxOnce ??= register();
    module = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } else {
    module = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  }
  const exported = module.default ?? module.experiment;
  if (exported === undefined) throw new UsageError(`${absolute} has no default export (export default defineExperiment({...}))`);
  const value = typeof exported === 'function' ? await (exported as () => unknown)() : exported;
  return value as ExperimentInCode;
}

/** `--set trainer.epochs=1 --set dataset.config.root=/data`: values are JSON when they parse, strings otherwise. */
export function applyOverrides(definition: ExperimentInCode, sets: string[]): ExperimentInCode {
  const copy = { ...definition } as Record<string, unknown>;
  for (const assignment of sets) {
    const eq = assignment.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set expects key.path=value, got '${assignment}'`);
    const path = assignment.slice(0, eq).split('.');
    const raw = assignment.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a plain string
    }
    let target = copy;
    for (const key of path.slice(0, -1)) {
      const next = target[key];
      target[key] = typeof next === 'object' && next !== null ? (Array.isArray(next) ? [...next] : { ...next }) : {};
      target = target[key] as Record<string, unknown>;
    }
    target[path.at(-1)!] = value;
  }
  return copy as ExperimentInCode;
}

function printResult(result: RunResult, io: CliIO, json: boolean): void {
  if (json) {
    io.stdout.write(`${JSON.stringify({ runId: result.runId, runDir: result.runDir, status: result.status, steps: result.steps, selected: result.selected, test: result.test })}\n`);
    return;
  }
  io.stdout.write(`\nrun ${result.status}: ${result.runDir}\n`);
  if (result.test) {
    const metrics = ['auc', 'ap', 'eer', 'acc'];
    const rows = Object.entries(result.test.subsets);
    const width = Math.max(8, ...rows.map(([name]) => name.length));
    io.stdout.write(`${'subset'.padEnd(width)}  ${metrics.map((m) => m.padStart(7)).join(' ')}\n`);
    for (const [name, values] of rows) {
      io.stdout.write(`${name.padEnd(width)}  ${metrics.map((m) => formatMetric(values[m]).padStart(7)).join(' ')}\n`);
    }
    io.stdout.write(`${'overall'.padEnd(width)}  ${metrics.map((m) => formatMetric(result.test!.overall[m]).padStart(7)).join(' ')}\n`);
  }
}

/** Ctrl-C stops at the next step with a resumable checkpoint; a second Ctrl-C exits at once. */
function abortOnSignals(): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping after this step (Ctrl-C again to exit now)...\n');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    release() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

const exitCodeOf = (result: RunResult) => (result.status === 'finished' ? 0 : result.status === 'killed' ? 130 : 1);

export function runCommand(plugins: () => Plugin[]): CliCommand {
  return {
    name: 'run',
    summary: 'train, select on validation and evaluate an experiment (.ts, .js or .json)',
    usage:
      'dfd run <experiment.ts|experiment.js|experiment.json> [--set key.path=value ...] [--runs-dir DIR] [--no-progress] [--json]\n\n' +
      '  --set        override a field of the experiment, e.g. --set trainer.epochs=1 (JSON values parse)\n' +
      '  --runs-dir   where run directories go (default: the experiment\'s runsDir, "runs")\n' +
      '  --json       print the result as one JSON line',
    async run(args, io) {
      const { values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        options: {
          set: { type: 'string', multiple: true, default: [] },
          'runs-dir': { type: 'string' },
          'no-progress': { type: 'boolean', default: false },
          json: { type: 'boolean', default: false },
        },
      });
      if (positionals.length !== 1) throw new UsageError('expected exactly one experiment file');
      let definition = applyOverrides(await loadExperimentFile(resolve(io.cwd, positionals[0]!)), values.set as string[]);
      if (values['runs-dir']) definition = { ...definition, runsDir: resolve(io.cwd, values['runs-dir']) };
      const abort = abortOnSignals();
      try {
        const result = await runExperiment(definition, { plugins: plugins(), signal: abort.signal, progress: !values['no-progress'] && io.stderr, cwd: io.cwd });
        printResult(result, io, values.json as boolean);
        return exitCodeOf(result);
      } finally {
        abort.release();
      }
    },
  };
}

export function resumeCommand(plugins: () => Plugin[]): CliCommand {
  return {
    name: 'resume',
    summary: 'continue a killed run from its last checkpoint (same weights as an uninterrupted run)',
    usage: 'dfd resume <runs/<experiment>/<run-id>> [--no-progress] [--json]',
    async run(args, io) {
      const { values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        options: { 'no-progress': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
      });
      if (positionals.length !== 1) throw new UsageError('expected exactly one run directory');
      const abort = abortOnSignals();
      try {
        const result = await resumeRun(resolve(io.cwd, positionals[0]!), { plugins: plugins(), signal: abort.signal, progress: !values['no-progress'] && io.stderr, cwd: io.cwd });
        printResult(result, io, values.json as boolean);
        return exitCodeOf(result);
      } finally {
        abort.release();
      }
    },
  };
}
