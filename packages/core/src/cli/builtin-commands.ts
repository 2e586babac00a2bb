/**
 * The commands @dfd/core itself contributes. Plugin packages contribute theirs through
 * `registrar.command(...)`; `dfd` merges both lists (see cli/main.ts). Add a core command here.
 */
import type { CliCommand } from './command.js';
import { metricsCommand } from './commands/metrics.js';
import { backendCommand } from './commands/backend.js';

export const builtinCommands: CliCommand[] = [metricsCommand, backendCommand];
