/**
 * Finds installed plugin packages for the CLI: every `node_modules/@dfd/*` package visible from the
 * working directory (and from core's own location), plus names in `DFD_PLUGINS` (comma-separated, for
 * third-party plugins). A package that exports no plugin (or fails to load) is reported, not fatal.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, parse } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from '../plugin.js';
import { importPlugins } from '../run/assemble.js';

function ancestors(start: string): string[] {
  const dirs: string[] = [];
  let dir = start;
  for (;;) {
    dirs.push(dir);
    const parent = dirname(dir);
    if (parent === dir || dir === parse(dir).root) break;
    dir = parent;
  }
  return dirs;
}

export function installedDfdPackages(cwd: string): string[] {
  const names = new Set<string>();
  const roots = [...ancestors(cwd), ...ancestors(dirname(fileURLToPath(import.meta.url)))];
  for (const root of roots) {
    const scope = join(root, 'node_modules', '@dfd');
    if (!existsSync(scope)) continue;
    for (const entry of readdirSync(scope)) if (entry !== 'core' && entry !== 'examples') names.add(`@dfd/${entry}`);
  }
  return [...names].sort();
}

export interface Discovery {
  plugins: Plugin[];
  /** Packages found but not usable, with the reason (not built, exports no plugin yet ...). */
  skipped: Array<{ name: string; reason: string }>;
}

export async function discoverPlugins(cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<Discovery> {
  const extra = (env.DFD_PLUGINS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const plugins: Plugin[] = [];
  const skipped: Discovery['skipped'] = [];
  for (const name of [...new Set([...installedDfdPackages(cwd), ...extra])]) {
    try {
      plugins.push(...(await importPlugins([name], cwd)));
    } catch (error) {
      skipped.push({ name, reason: (error as Error).message.split('\n')[0]! });
    }
  }
  return { plugins, skipped };
}
