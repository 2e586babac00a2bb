/**
 * The components @dfd/core registers itself (the default detector and evaluators). Loaded into every
 * experiment's registry before the user's plugins.
 */
import { definePlugin } from './plugin.js';
import { builtinCommands } from './cli/builtin-commands.js';

export const corePlugin = definePlugin({
  name: '@dfd/core',
  version: '0.1.0',
  register(registrar) {
    for (const command of builtinCommands) registrar.command(command);
  },
});
