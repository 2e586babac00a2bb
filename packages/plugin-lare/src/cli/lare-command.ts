/** `dfd lare extract|merge|verify|import`. */
import { UsageError, type CliCommand, type CliIO } from '@dfd/core';
import { extract, EXTRACT_USAGE } from './extract.js';
import { merge, MERGE_USAGE } from './merge.js';
import { verify, VERIFY_USAGE } from './verify.js';
import { importMaps, IMPORT_USAGE } from './import.js';

const SUBCOMMANDS: Record<string, { run: (args: string[], io: CliIO) => Promise<number>; usage: string }> = {
  extract: { run: extract, usage: EXTRACT_USAGE },
  merge: { run: merge, usage: MERGE_USAGE },
  verify: { run: verify, usage: VERIFY_USAGE },
  import: { run: importMaps, usage: IMPORT_USAGE },
};

const USAGE = `dfd lare <extract|merge|verify|import> [options]   (dfd lare <sub> --help for each)

${Object.values(SUBCOMMANDS)
  .map((s) => s.usage.split('\n')[0])
  .join('\n')}`;

export const lareCommand: CliCommand = {
  name: 'lare',
  summary: 'LaRE stage 1: latent reconstruction error maps from Stable Diffusion (extract, merge, verify, import)',
  usage: USAGE,
  async run(args, io) {
    const [sub, ...rest] = args;
    if (!sub || sub === '--help' || sub === '-h') {
      io.stdout.write(`${USAGE}\n`);
      return sub ? 0 : 2;
    }
    const command = SUBCOMMANDS[sub];
    if (!command) throw new UsageError(`unknown sub-command '${sub}'; use one of ${Object.keys(SUBCOMMANDS).join(', ')}`);
    if (rest.includes('--help')) {
      io.stdout.write(`${command.usage}\n`);
      return 0;
    }
    try {
      return await command.run(rest, io);
    } catch (error) {
      // node:util parseArgs errors are usage errors: show them with the sub-command's usage.
      if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw new UsageError(`${(error as Error).message}\n\n${command.usage}`);
      throw error;
    }
  },
};
