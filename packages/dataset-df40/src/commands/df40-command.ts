/** `dfd df40 verify ROOT [--json-dir DIR] [--json] [--prefix FROM=TO] [--concurrency N]`. */
import { UsageError, type CliCommand, type CliIO } from '@dfd/core';
import { resolve } from 'node:path';
import { formatVerifyProgress, formatVerifyTable, verifyDf40, verifyJson, VerifyRootError } from '../verify.js';
import { intOption, parseArgs } from './args.js';

const usage = `Usage: dfd df40 verify ROOT [--json-dir DIR] [--json] [--all] [--prefix FROM=TO ...] [--concurrency N]

Checks a DF40/DeepfakeBench tree against its JSONs: per dataset (JSON top-level key) and label, the videos
listed, the frames that exist and decode, the frames missing, the videos with no frame on disk (empty)
and the files that do not decode (corrupt), plus totals.

  ROOT              folder holding DF40/, DF40_train/, FaceForensics++/ ...
  --json-dir DIR    folder of the dataset JSONs (default ROOT/dataset_json)
  --json            print {"datasets", "totals", "problems": [{dataset, label, kind, count, paths}], "unreadable"}
                    instead of a table: every bad path is listed
  --all             list every bad path in the table's problem list (default: 3 examples each)
  --prefix FROM=TO  rewrite frame paths starting with FROM (repeatable; TO relative to ROOT);
                    without it, paths are re-anchored at the first folder that exists in ROOT
  --concurrency N   images decoded at once (default 4)

Exit status: 0 when the root could be read (problems are part of the report), 2 when ROOT or the JSON
folder does not exist.`;

export const df40Command: CliCommand = {
  name: 'df40',
  summary: 'DF40 tools: `dfd df40 verify ROOT` checks a DF40 tree against its JSONs',
  usage,
  async run(args: string[], io: CliIO): Promise<number> {
    const [sub, ...rest] = args;
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
      io.stdout.write(usage + '\n');
      return sub === undefined ? 2 : 0;
    }
    if (sub !== 'verify') throw new UsageError(`unknown sub-command '${sub}' (available: verify)`);
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout.write(usage + '\n');
      return 0;
    }
    const parsed = parseArgs(rest, { flags: ['json', 'all'], values: ['json-dir', 'prefix', 'concurrency'] });
    if (parsed.positionals.length !== 1) throw new UsageError('dfd df40 verify needs exactly one ROOT');
    const root = resolve(io.cwd, parsed.positionals[0]!);
    const prefixes = (parsed.values.get('prefix') ?? []).map((rule) => {
      const eq = rule.indexOf('=');
      if (eq <= 0) throw new UsageError(`--prefix takes FROM=TO, got '${rule}'`);
      return { from: rule.slice(0, eq), to: rule.slice(eq + 1) };
    });
    const jsonDir = parsed.values.get('json-dir')?.at(-1);
    try {
      const result = await verifyDf40(root, {
        ...(jsonDir !== undefined ? { jsonDir: resolve(io.cwd, jsonDir) } : {}),
        prefixes,
        concurrency: intOption(parsed, 'concurrency', 1) ?? 4,
        // DF40 has about a million frames: say how far decoding is (stderr, so --json stays clean).
        onProgress: (done, total, failed) =>
          io.stderr.write(io.isTTY ? `\r${formatVerifyProgress(done, total, failed)}` + (done === total ? '\n' : '') : `${formatVerifyProgress(done, total, failed)}\n`),
        progressEveryMs: io.isTTY ? 500 : 30_000,
      });
      if (parsed.flags.has('json')) {
        io.stdout.write(JSON.stringify(verifyJson(result)) + '\n');
        for (const message of result.unreadable) io.stderr.write(`warning: ${message}\n`);
      } else {
        io.stdout.write(formatVerifyTable(result, { all: parsed.flags.has('all') }));
      }
      return 0;
    } catch (error) {
      if (error instanceof VerifyRootError) {
        io.stderr.write(`dfd df40 verify: ${error.message}\n`);
        return 2;
      }
      throw error;
    }
  },
};
