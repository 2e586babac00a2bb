/** `dfd sync RUN_DIR... [--to URI] [--experiment NAME]`: replays local runs to an MLflow server. */
import { resolve } from 'node:path';
import { UsageError, type CliCommand, type CliIO } from '@dfd/core';
import { findRunDirs, syncRunDir, type SyncResult } from './sync.js';

const usage = `Usage: dfd sync RUN_DIR... [--to URI] [--experiment NAME] [--json]

Sends local runs to an MLflow tracking server: runs recorded without tracking, runs whose server was
down, runs already partly sent. Safe to repeat: nothing is sent twice.

  RUN_DIR            a run directory (runs/<experiment>/<run-id>), or a folder of them
  --to URI           the server (default: $MLFLOW_TRACKING_URI), e.g. http://127.0.0.1:5000
  --experiment NAME  MLflow experiment (default: $MLFLOW_EXPERIMENT_NAME, else the run's experiment)
  --json             one JSON line per run instead of text

Credentials: MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (basic) or MLFLOW_TRACKING_TOKEN (bearer).
The server must proxy artifacts (mlflow server --serve-artifacts).`;

interface SyncArgs {
  dirs: string[];
  to?: string;
  experiment?: string;
  json: boolean;
}

export function parseSyncArgs(args: string[]): SyncArgs {
  const parsed: SyncArgs = { dirs: [], json: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = (name: string) => {
      const eq = arg.indexOf('=');
      if (eq >= 0) return arg.slice(eq + 1);
      const next = args[++i];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${name} needs a value`);
      return next;
    };
    if (arg === '--to' || arg.startsWith('--to=')) parsed.to = value('--to');
    else if (arg === '--experiment' || arg.startsWith('--experiment=')) parsed.experiment = value('--experiment');
    else if (arg === '--json') parsed.json = true;
    else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
    else parsed.dirs.push(arg);
  }
  if (parsed.dirs.length === 0) throw new UsageError('name at least one run directory');
  return parsed;
}

function describe(result: SyncResult, shown: string): string {
  const what =
    result.sentEvents === 0
      ? 'already up to date'
      : `${result.sentEvents}/${result.totalEvents} events, ${result.metricPoints} metric points, ${result.uploads} artifacts` +
        (result.reconciledPoints ? `, ${result.reconciledPoints} points already there` : '');
  return `${shown} → ${result.runUrl ?? '(no run)'}: ${what}${result.ended ? '' : ' (run has no end event: left RUNNING)'}`;
}

export const syncCommand: CliCommand = {
  name: 'sync',
  summary: 'send local runs to an MLflow server (idempotent)',
  usage,
  async run(args: string[], io: CliIO): Promise<number> {
    const options = parseSyncArgs(args);
    const trackingUri = options.to ?? io.env.MLFLOW_TRACKING_URI;
    if (!trackingUri) throw new UsageError('no server: pass --to URI or set MLFLOW_TRACKING_URI');
    let failed = 0;
    const runDirs: Array<{ dir: string; shown: string }> = [];
    for (const dir of options.dirs) {
      try {
        const found = findRunDirs(resolve(io.cwd, dir));
        if (found.length === 0) throw new Error(`${dir} holds no run directory (no events.jsonl found)`);
        runDirs.push(...found.map((d) => ({ dir: d, shown: found.length === 1 && d === resolve(io.cwd, dir) ? dir : d })));
      } catch (error) {
        failed++;
        io.stderr.write(`dfd sync: ${(error as Error).message}\n`);
      }
    }
    for (const { dir, shown } of runDirs) {
      try {
        const result = await syncRunDir(dir, {
          trackingUri,
          experimentName: options.experiment,
          env: io.env,
          logger: (message) => io.stderr.write(`[mlflow] ${message}\n`),
        });
        io.stdout.write(options.json ? `${JSON.stringify(result)}\n` : `${describe(result, shown)}\n`);
      } catch (error) {
        failed++;
        io.stderr.write(`dfd sync: ${shown}: ${(error as Error).message}\n`);
      }
    }
    return failed ? 1 : 0;
  },
};
