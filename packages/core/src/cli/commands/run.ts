/** `dfd run <experiment.ts|.js|.json>` and `dfd resume <run-dir>`. */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { register as registerHooks } from 'node:module';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ExperimentInCode } from '../../experiment.js';
import type { Plugin } from '../../plugin.js';
import { resumeRun, runExperiment, type RunResult } from '../../run/runner.js';
import { RunInterrupted } from '../../run/interrupt.js';
import type { CoverageCounts, EvaluationReport } from '../../contracts.js';
import { incompleteSubsets, isSubsetComplete } from '../../evaluation/coverage.js';
import { isPipeline, runPipeline, type PipelineDefinition, type PipelineResult } from '../../run/pipeline.js';
import { UsageError, type CliCommand, type CliIO } from '../command.js';
import { formatMetric } from '../../run/progress.js';

let registerTsxOnce: unknown;

/** The tsconfig.json nearest to the experiment file (its compiler options: decorators ...), if any. */
function nearestTsconfig(file: string): string | undefined {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'tsconfig.json'))) return join(dir, 'tsconfig.json');
    if (dirname(dir) === dir || basename(dir) === 'node_modules') return undefined;
  }
}

/**
 * tsx compiles TypeScript on import, and a hook of ours (esm-hook.ts) makes it load the experiment as an
 * ES module wherever it lies. The compiler options come from TSX_TSCONFIG_PATH, else the tsconfig.json
 * nearest to the file (not the one of the current folder).
 */
async function registerTypeScript(file: string): Promise<unknown> {
  const { register } = await import('tsx/esm/api');
  const tsconfig = process.env.TSX_TSCONFIG_PATH ?? nearestTsconfig(file);
  const unregister = register(tsconfig ? { tsconfig } : {});
  // Registered after tsx, so it runs first and hands tsx the `module` format.
  registerHooks(new URL('../esm-hook.js', import.meta.url));
  return unregister;
}

/** Loads an experiment from JSON, or from a module whose default export is one (or a function returning one). */
export async function loadExperimentFile(path: string): Promise<ExperimentInCode> {
  const loaded = await loadRunnableFile(path);
  if (isPipeline(loaded)) throw new UsageError(`${resolve(path)} defines a pipeline (stages: ${loaded.stages.map((s) => s.name).join(', ')}), not one experiment`);
  return loaded;
}

/** An experiment or a pipeline (`{ name, stages: [...] }`) from JSON or a module's default export. */
export async function loadRunnableFile(path: string): Promise<ExperimentInCode | PipelineDefinition> {
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
    registerTsxOnce ??= await registerTypeScript(absolute);
    module = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } else {
    module = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  }
  const exported = module.default ?? module.experiment ?? module.pipeline;
  if (exported === undefined) throw new UsageError(`${absolute} has no default export (export default defineExperiment({...}) or definePipeline({...}))`);
  const value = typeof exported === 'function' ? await (exported as () => unknown)() : exported;
  return value as ExperimentInCode | PipelineDefinition;
}

/**
 * `--set` on a pipeline: `stages.<i>.…` paths address the pipeline itself; any other path is applied to
 * every stage's experiment (`--set trainer.epochs=1` shortens them all).
 */
export function applyPipelineOverrides(pipeline: PipelineDefinition, sets: string[], runsDir?: string): PipelineDefinition {
  const own = sets.filter((s) => s.startsWith('stages.'));
  const perStage = sets.filter((s) => !s.startsWith('stages.'));
  const base = applyOverrides(pipeline as unknown as ExperimentInCode, own) as unknown as PipelineDefinition;
  return {
    ...base,
    stages: base.stages.map((stage) => {
      let experiment = applyOverrides(stage.experiment as ExperimentInCode, perStage);
      if (runsDir) experiment = { ...experiment, runsDir };
      return { ...stage, experiment };
    }),
  };
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

/** `60/64` frames scored of those listed, with a `!` when some were dropped. */
function coverageCell(counts: CoverageCounts | undefined): string {
  if (!counts) return '';
  return `${counts.frames.scored}/${counts.frames.listed}${isSubsetComplete(counts) ? '' : ' !'}`;
}

/** The printed test table: metrics per subset and group, frames scored/listed, and a note when coverage is below 100%. */
export function formatTestTable(test: EvaluationReport): string {
  const metrics = ['auc', 'ap', 'eer', 'acc'];
  const rows = Object.entries(test.subsets);
  const groups = Object.entries(test.groups ?? {});
  const width = Math.max(8, ...rows.map(([name]) => name.length), ...groups.map(([group]) => group.length + 5));
  const coverage = test.coverage;
  const frames = (name: string) => (coverage ? `  ${coverageCell(name === 'overall' ? coverage.overall : coverage.subsets[name]).padStart(10)}` : '');
  const lines = [`${'subset'.padEnd(width)}  ${metrics.map((m) => m.padStart(7)).join(' ')}${coverage ? `  ${'frames'.padStart(10)}` : ''}`];
  for (const [name, values] of rows) lines.push(`${name.padEnd(width)}  ${metrics.map((m) => formatMetric(values[m]).padStart(7)).join(' ')}${frames(name)}`);
  // Declared groups (seen / unseen artefact families ...): each the mean of its subsets, no frame count of its own.
  for (const [group, values] of groups) lines.push(`${`mean ${group}`.padEnd(width)}  ${metrics.map((m) => formatMetric(values[m]).padStart(7)).join(' ')}`);
  lines.push(`${'overall'.padEnd(width)}  ${metrics.map((m) => formatMetric(test.overall[m]).padStart(7)).join(' ')}${frames('overall')}`);
  if (coverage && !coverage.complete) {
    lines.push('', 'test coverage is below 100%: these numbers do not cover every listed frame (dropped files: test-dropped.csv)');
    for (const line of incompleteSubsets(coverage)) lines.push(`  ${line}`);
  }
  return `${lines.join('\n')}\n`;
}

function printResult(result: RunResult, io: CliIO, json: boolean): void {
  if (json) {
    io.stdout.write(`${JSON.stringify({ runId: result.runId, runDir: result.runDir, status: result.status, steps: result.steps, selected: result.selected, test: result.test })}\n`);
    return;
  }
  io.stdout.write(`\nrun ${result.status}: ${result.runDir}\n`);
  if (result.test) io.stdout.write(formatTestTable(result.test));
}

/** Runs `action`; an interruption before the run's record began exits 130 like a killed run. */
async function interruptible(io: CliIO, action: () => Promise<number>): Promise<number> {
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof RunInterrupted)) throw error;
    io.stderr.write(`dfd: ${error.message}; nothing was recorded\n`);
    return 130;
  }
}

/** Seconds a run may take to stop cleanly after Ctrl-C/SIGTERM before the process exits anyway. */
export function stopGraceSeconds(env: NodeJS.ProcessEnv = process.env): number {
  const value = Number(env.DFD_STOP_GRACE_S ?? 5);
  return Number.isFinite(value) && value >= 0 ? value : 5;
}

/**
 * Ctrl-C or SIGTERM: the run stops at the next step (or between scoring batches) with a resumable
 * checkpoint. Whatever it is doing, the process exits within a few seconds (DFD_STOP_GRACE_S, default 5):
 * a step stuck on a dead network drive or a long cache fill does not hold it. A second signal exits at once.
 * Checkpoints and record files are written whole (temporary name + rename), so exiting never tears them.
 */
function abortOnSignals(io: CliIO): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const grace = stopGraceSeconds(io.env);
  let timer: NodeJS.Timeout | undefined;
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    io.stderr.write(`\n${name}: stopping after this step, within ${grace} s (again to exit now); continue later with dfd resume <run dir>\n`);
    controller.abort();
    timer = setTimeout(() => {
      io.stderr.write(`dfd: did not stop within ${grace} s; exiting. The last checkpoint is intact: continue with dfd resume <run dir>\n`);
      process.exit(130);
    }, grace * 1000);
    timer.unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    release() {
      if (timer) clearTimeout(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

const exitCodeOf = (result: { status: RunResult['status'] }) => (result.status === 'finished' ? 0 : result.status === 'killed' ? 130 : 1);

function printPipelineResult(result: PipelineResult, total: number, io: CliIO, json: boolean): void {
  if (json) {
    io.stdout.write(`${JSON.stringify({ pipeline: result.name, status: result.status, stages: result.stages.map((s) => ({ stage: s.stage, runId: s.runId, runDir: s.runDir, status: s.status, steps: s.steps, selected: s.selected, test: s.test })) })}\n`);
    return;
  }
  for (const stage of result.stages) {
    io.stdout.write(`\n== stage ${stage.stage}`);
    printResult(stage, io, false);
  }
  if (result.status !== 'finished') {
    const last = result.stages.at(-1);
    io.stdout.write(
      `\npipeline ${result.name} stopped at stage ${last?.stage} (${result.status}) after ${result.stages.length} of ${total} stages` +
        (last ? `: dfd resume ${last.runDir} continues it` : '') +
        '\n',
    );
  }
}

export function runCommand(plugins: () => Plugin[]): CliCommand {
  return {
    name: 'run',
    summary: 'train, select on validation and evaluate an experiment (.ts, .js or .json)',
    usage:
      'dfd run <experiment.ts|experiment.js|experiment.json> [--set key.path=value ...] [--runs-dir DIR] [--no-progress] [--json]\n\n' +
      '  A file whose export has `stages` is a pipeline: its stages run in order (stage 2 starting from stage 1).\n' +
      '  --set        override a field of the experiment, e.g. --set trainer.epochs=1 (JSON values parse);\n' +
      '               on a pipeline it applies to every stage, except paths starting with stages.<i>.\n' +
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
      const loaded = await loadRunnableFile(resolve(io.cwd, positionals[0]!));
      const runsDir = values['runs-dir'] ? resolve(io.cwd, values['runs-dir']) : undefined;
      const progress = !values['no-progress'] && io.stderr;
      if (isPipeline(loaded)) {
        const pipeline = applyPipelineOverrides(loaded, values.set as string[], runsDir);
        const abort = abortOnSignals(io);
        try {
          return await interruptible(io, async () => {
            const result = await runPipeline(pipeline, {
              plugins: plugins(),
              signal: abort.signal,
              progress,
              cwd: io.cwd,
              onStage: (stage, index) => {
                if (!values.json) io.stderr.write(`\n== pipeline ${pipeline.name}: stage ${index + 1}/${pipeline.stages.length} '${stage}'\n`);
              },
            });
            printPipelineResult(result, pipeline.stages.length, io, values.json as boolean);
            return exitCodeOf(result);
          });
        } finally {
          abort.release();
        }
      }
      let definition = applyOverrides(loaded, values.set as string[]);
      if (runsDir) definition = { ...definition, runsDir };
      const abort = abortOnSignals(io);
      try {
        return await interruptible(io, async () => {
          const result = await runExperiment(definition, { plugins: plugins(), signal: abort.signal, progress, cwd: io.cwd });
          printResult(result, io, values.json as boolean);
          return exitCodeOf(result);
        });
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
      const abort = abortOnSignals(io);
      try {
        return await interruptible(io, async () => {
          const result = await resumeRun(resolve(io.cwd, positionals[0]!), { plugins: plugins(), signal: abort.signal, progress: !values['no-progress'] && io.stderr, cwd: io.cwd });
          printResult(result, io, values.json as boolean);
          return exitCodeOf(result);
        });
      } finally {
        abort.release();
      }
    },
  };
}
