/**
 * A `dfd` sub-command. Core registers `run`, `resume` and `plugins`; plugin packages contribute their own
 * through `registrar.command(...)` (e.g. `dfd encode` from @dfd/encoder-clip). One registry: `PluginRegistry`.
 */
import type { PluginRegistry } from '../plugin.js';
export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** True when stdout is an interactive terminal (progress bars); plain lines otherwise. */
  isTTY: boolean;
  /** The components of every installed plugin (set by `dfd`), for commands that reuse them (`dfd encode --preset`). */
  registry?: PluginRegistry;
}

export interface CliCommand {
  /** The first word after `dfd`, e.g. `encode` or `df40` (which may have its own sub-commands). */
  name: string;
  /** One line for `dfd --help`. */
  summary: string;
  /** Full usage text, printed for `dfd <name> --help` and on argument errors. */
  usage: string;
  /** Returns the process exit code. Throwing `UsageError` prints the message and usage and exits 2. */
  run(args: string[], io: CliIO): Promise<number>;
}

/** Wrong arguments: the CLI prints the message and the command's usage and exits with code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
