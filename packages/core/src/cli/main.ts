/**
 * The `dfd` command. Core's commands and those of every discovered plugin package live in one registry
 * (`PluginRegistry.commands()`), so `dfd --help` lists everything installed.
 */
import { PluginRegistry, type Plugin } from '../plugin.js';
import { corePlugin } from '../builtin-plugin.js';
import { UsageError, type CliCommand, type CliIO } from './command.js';
import { discoverPlugins } from './discover.js';
import { pluginsCommand } from './commands/plugins.js';
import { resumeCommand, runCommand } from './commands/run.js';
import { predictCommand } from './commands/predict.js';

function help(commands: CliCommand[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'dfd — experiments with CLIP-based deepfake detectors',
    '',
    'usage: dfd <command> [options]     dfd <command> --help',
    '',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
  ].join('\n');
}

export async function main(argv: string[], io: CliIO): Promise<number> {
  const discovery = await discoverPlugins(io.cwd, io.env);
  const userPlugins: Plugin[] = discovery.plugins;
  const registry = new PluginRegistry([corePlugin, ...userPlugins]);
  const commands = [
    runCommand(() => userPlugins),
    resumeCommand(() => userPlugins),
    predictCommand(() => userPlugins),
    pluginsCommand(() => registry, () => discovery.skipped),
    ...registry.commands(),
  ];
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(help(commands));
    return name ? 0 : 2;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    io.stderr.write(`dfd: unknown command '${name}'. Commands: ${commands.map((c) => c.name).join(', ')}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(`${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(rest, { ...io, registry });
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`dfd ${name}: ${(error as Error).message}\n\n${command.usage}\n`);
      return 2;
    }
    io.stderr.write(`dfd ${name}: ${(error as Error).message}\n`);
    if (io.env.DFD_DEBUG) io.stderr.write(`${(error as Error).stack}\n`);
    return 1;
  }
}
