/** `dfd plugins [--json]`: the registered components, their plugins and config schemas. */
import { parseArgs } from 'node:util';
import { configJsonSchema, type PluginRegistry } from '../../plugin.js';
import type { CliCommand } from '../command.js';

export function pluginsCommand(registry: () => PluginRegistry, skipped: () => Array<{ name: string; reason: string }>): CliCommand {
  return {
    name: 'plugins',
    summary: 'list registered components (encoders, prompt learners, ...) and their config schemas',
    usage: 'dfd plugins [--json]\n\n  --json   print plugins, components and JSON Schemas of their configs as JSON',
    async run(args, io) {
      const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, strict: true });
      const reg = registry();
      if (values.json) {
        const json = {
          plugins: reg.listPlugins().map((p) => ({ name: p.name, version: p.version, commands: p.commands.map((c) => c.name), extraProviders: (p.extraProviders ?? []).map((f) => f.key) })),
          components: reg.listComponents().map(({ plugin, definition }) => ({
            kind: definition.kind,
            name: definition.name,
            plugin,
            description: definition.description ?? '',
            presets: Object.keys(definition.presets ?? {}),
            config: configJsonSchema(definition),
          })),
          skipped: skipped(),
        };
        io.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
        return 0;
      }
      const lines: string[] = [];
      for (const plugin of reg.listPlugins()) {
        const provides = (plugin.extraProviders ?? []).map((f) => f.key);
        lines.push(
          `${plugin.name}@${plugin.version}${plugin.commands.length ? `  (commands: ${plugin.commands.map((c) => c.name).join(', ')})` : ''}` +
            `${provides.length ? `  (computes extras for dfd predict: ${provides.join(', ')})` : ''}`,
        );
        for (const definition of plugin.components) {
          const presets = Object.keys(definition.presets ?? {});
          lines.push(`  ${definition.kind.padEnd(14)} ${definition.name.padEnd(16)} ${definition.description ?? ''}${presets.length ? ` [presets: ${presets.join(', ')}]` : ''}`);
        }
      }
      for (const s of skipped()) lines.push(`(skipped ${s.name}: ${s.reason})`);
      io.stdout.write(`${lines.join('\n')}\n`);
      return 0;
    },
  };
}
