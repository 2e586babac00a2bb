/**
 * sbatch scripts as text: `#SBATCH` directives from the user's resource flags, then a bash body that runs
 * one `dfd` command. Kept on disk beside the job's logs (and printed by --dry-run), so what ran can be read.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Resource flags shared by every `dfd slurm` command; each maps onto the sbatch option of the same meaning. */
export interface Resources {
  partition?: string;
  gres?: string;
  cpus?: number;
  mem?: string;
  time?: string;
  account?: string;
  /** Extra raw sbatch options, e.g. `--qos=short` (repeatable --sbatch). */
  extra?: string[];
}

/** Single-quotes for bash: the value reaches the program exactly as given. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * How a task starts `dfd`: by default this very Node binary and this installation's `dfd` entry (absolute
 * paths), so tasks run the version that submitted them. On a cluster both must be on the shared filesystem;
 * `--dfd 'npx dfd'` (or any command) overrides it.
 */
export function defaultDfdCommand(): string[] {
  const require = createRequire(import.meta.url);
  const corePackage = require.resolve('@dfd/core/package.json');
  return [process.execPath, join(dirname(corePackage), 'bin', 'dfd.js')];
}

export interface ScriptSpec {
  jobName: string;
  /** `0-3` or `0,2` for an array; absent for a single job. */
  array?: string;
  /** Slurm output pattern, e.g. `<dir>/logs/%A_%a.out`. */
  output: string;
  cwd: string;
  resources: Resources;
  /** Lines run before the command (module loads, a venv), from --setup. */
  setup?: string[];
  /** Comment lines after the directives (what the job is, how to check it). */
  notes?: string[];
  /** The bash body (already quoted): typically one `exec ... dfd ...` line after variable assignments. */
  body: string[];
}

export function directives(resources: Resources): string[] {
  const lines: string[] = [];
  if (resources.partition) lines.push(`--partition=${resources.partition}`);
  if (resources.account) lines.push(`--account=${resources.account}`);
  if (resources.gres) lines.push(`--gres=${resources.gres}`);
  if (resources.cpus) lines.push(`--cpus-per-task=${resources.cpus}`);
  if (resources.mem) lines.push(`--mem=${resources.mem}`);
  if (resources.time) lines.push(`--time=${resources.time}`);
  lines.push(...(resources.extra ?? []));
  return lines;
}

export function renderScript(spec: ScriptSpec): string {
  const sbatch = [
    `--job-name=${spec.jobName}`,
    ...(spec.array ? [`--array=${spec.array}`] : []),
    `--output=${spec.output}`,
    `--chdir=${spec.cwd}`,
    ...directives(spec.resources),
  ];
  return [
    '#!/bin/bash',
    ...sbatch.map((d) => `#SBATCH ${d}`),
    ...(spec.notes ?? []).map((n) => `# ${n}`),
    'set -euo pipefail',
    ...(spec.setup ?? []),
    ...spec.body,
    '',
  ].join('\n');
}

/** A command line with every fixed word quoted; `raw` words (bash expansions like "$K/$N") pass unquoted. */
export function commandLine(words: Array<string | { raw: string }>): string {
  return words.map((w) => (typeof w === 'string' ? shellQuote(w) : w.raw)).join(' ');
}
