/**
 * Plugins and the component registry.
 *
 * A plugin is a plain object made by `definePlugin`; its `register` callback declares components (a kind,
 * a name, a zod config schema with defaults, and a class or factory). The registry validates configs
 * (unknown keys rejected), and every failure message lists what is registered, so a typo is a one-line fix.
 */
import { z } from 'zod';
import { COMPONENT_KINDS, type ComponentKind, type Resolver } from './di.js';
import type { CliCommand } from './cli/command.js';

export type ConfigSchema = z.ZodType<Record<string, unknown>>;

export interface ComponentDefinition<S extends ConfigSchema = ConfigSchema, T = unknown> {
  kind: ComponentKind;
  name: string;
  description?: string;
  /** Zod object schema with defaults. Unknown keys are rejected whatever the schema says. */
  config: S;
  /** Named partial configs (e.g. CoOp's `coop` and `clipping` recipes). */
  presets?: Record<string, Partial<z.input<S>>>;
  /** A class whose constructor parameters all use `@inject(TOKEN)`. */
  useClass?: new (...args: never[]) => T;
  /** Or a factory receiving the validated config. */
  useFactory?: (config: z.output<S>, resolver: Resolver) => T;
}

/**
 * Finds a local run directory for a run reference of one scheme (`mlflow:<run-id>` → the run's directory,
 * or a copy of its artifacts), so `init.from` can name runs by a tracker's id.
 */
export interface RunLocator {
  /** The prefix it handles, without the colon, e.g. `mlflow`. */
  scheme: string;
  /** `reference` is what follows `<scheme>:`; returns a run directory (config.json + checkpoints/). */
  locate(reference: string, context: { cwd: string }): Promise<string>;
}

export interface PluginRegistrar {
  add<S extends ConfigSchema, T>(component: ComponentDefinition<S, T>): void;
  /** CLI commands this plugin contributes (`dfd <name> ...`). */
  command(command: CliCommand): void;
  /** Resolves `<scheme>:<id>` run references (e.g. a tracker's run ids) to run directories. */
  runLocator?(locator: RunLocator): void;
}

export interface PluginSpec {
  /** Usually the npm package name, e.g. `@dfd/plugin-coop`. */
  name: string;
  version?: string;
  register(registrar: PluginRegistrar): void;
}

export interface Plugin {
  readonly name: string;
  readonly version: string;
  readonly components: readonly ComponentDefinition[];
  readonly commands: readonly CliCommand[];
  readonly runLocators?: readonly RunLocator[];
}

export class PluginError extends Error {
  override name = 'PluginError';
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function definePlugin(spec: PluginSpec): Plugin {
  const components: ComponentDefinition[] = [];
  const commands: CliCommand[] = [];
  const runLocators: RunLocator[] = [];
  spec.register({
    add(component) {
      if (!(component.kind in COMPONENT_KINDS)) {
        throw new PluginError(
          `plugin ${spec.name}: component '${component.name}' has unknown kind '${component.kind}'; ` +
            `kinds are: ${Object.keys(COMPONENT_KINDS).join(', ')}`,
        );
      }
      if (!component.useClass === !component.useFactory) {
        throw new PluginError(`plugin ${spec.name}: component '${component.name}' needs exactly one of useClass or useFactory`);
      }
      components.push(component as unknown as ComponentDefinition);
    },
    command(command) {
      commands.push(command);
    },
    runLocator(locator) {
      runLocators.push(locator);
    },
  });
  return Object.freeze({ name: spec.name, version: spec.version ?? '0.0.0', components, commands, runLocators });
}

interface RegisteredComponent {
  plugin: string;
  definition: ComponentDefinition;
}

/** Components from a set of plugins. Each experiment builds its own registry: nothing global. */
export class PluginRegistry {
  private readonly components = new Map<string, RegisteredComponent>();
  private readonly plugins = new Map<string, Plugin>();
  private readonly cliCommands = new Map<string, { plugin: string; command: CliCommand }>();

  constructor(plugins: Iterable<Plugin> = []) {
    for (const plugin of plugins) this.use(plugin);
  }

  use(plugin: Plugin): this {
    if (this.plugins.has(plugin.name)) return this; // the same plugin twice is harmless
    for (const definition of plugin.components) {
      const key = `${definition.kind}:${definition.name}`;
      const existing = this.components.get(key);
      if (existing) {
        throw new PluginError(
          `duplicate ${definition.kind} '${definition.name}': registered by ${existing.plugin} and again by ${plugin.name}. ` +
            `Registered ${definition.kind}s: ${this.namesOf(definition.kind).join(', ')}`,
        );
      }
    }
    for (const command of plugin.commands) {
      const existing = this.cliCommands.get(command.name);
      if (existing) {
        throw new PluginError(`duplicate command '${command.name}': from ${existing.plugin} and ${plugin.name}`);
      }
    }
    for (const definition of plugin.components) {
      this.components.set(`${definition.kind}:${definition.name}`, { plugin: plugin.name, definition });
    }
    for (const command of plugin.commands) this.cliCommands.set(command.name, { plugin: plugin.name, command });
    this.plugins.set(plugin.name, plugin);
    return this;
  }

  namesOf(kind: ComponentKind): string[] {
    return [...this.components.values()]
      .filter((c) => c.definition.kind === kind)
      .map((c) => c.definition.name)
      .sort();
  }

  get(kind: ComponentKind, name: string): ComponentDefinition {
    const found = this.components.get(`${kind}:${name}`);
    if (!found) {
      const known = this.namesOf(kind);
      throw new PluginError(
        `unknown ${kind} '${name}'. Registered ${kind}s: ${known.length ? known.join(', ') : '(none)'}; ` +
          `plugins loaded: ${[...this.plugins.keys()].join(', ') || '(none)'}`,
      );
    }
    return found.definition;
  }

  pluginOf(kind: ComponentKind, name: string): string | undefined {
    return this.components.get(`${kind}:${name}`)?.plugin;
  }

  /** Validates and defaults a component config: preset values first, then the user's values over them. */
  resolveConfig(kind: ComponentKind, name: string, raw: unknown = {}, preset?: string): Record<string, unknown> {
    const definition = this.get(kind, name);
    let base: Record<string, unknown> = {};
    if (preset !== undefined) {
      const presets = definition.presets ?? {};
      const chosen = presets[preset];
      if (!chosen) {
        throw new ConfigError(
          `${kind} '${name}' has no preset '${preset}'. Presets: ${Object.keys(presets).join(', ') || '(none)'}`,
        );
      }
      base = chosen as Record<string, unknown>;
    }
    if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
      throw new ConfigError(`${kind} '${name}': config must be an object, got ${JSON.stringify(raw)}`);
    }
    const merged = { ...base, ...(raw as Record<string, unknown>) };
    const schema = strictSchema(definition.config);
    const parsed = schema.safeParse(merged);
    if (!parsed.success) {
      throw new ConfigError(`${kind} '${name}' config is invalid:\n${formatIssues(parsed.error, definition.config, merged)}`);
    }
    return parsed.data as Record<string, unknown>;
  }

  listPlugins(): Plugin[] {
    return [...this.plugins.values()];
  }

  listComponents(): Array<{ plugin: string; definition: ComponentDefinition }> {
    return [...this.components.values()].sort((a, b) =>
      `${a.definition.kind}:${a.definition.name}`.localeCompare(`${b.definition.kind}:${b.definition.name}`),
    );
  }

  commands(): CliCommand[] {
    return [...this.cliCommands.values()].map((c) => c.command);
  }
}

function strictSchema(schema: ConfigSchema): ConfigSchema {
  return schema instanceof z.ZodObject ? (schema.strict() as unknown as ConfigSchema) : schema;
}

function knownKeys(schema: ConfigSchema): string[] {
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

/** The value at `path` inside `input`, for messages that say what was given. */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  return value;
}

/**
 * A union's bare "Invalid input" says nothing: name what each alternative expects (its own message when the
 * schema gives one) and what was given.
 */
function unionMessage(issue: z.core.$ZodIssueInvalidUnion, input: unknown): string {
  const given = valueAt(input, issue.path);
  const shown = given === undefined ? 'nothing' : JSON.stringify(given);
  if (issue.message && issue.message !== 'Invalid input') return `${issue.message}; got ${shown}`;
  const expected = [...new Set(issue.errors.map((branch) => {
    const first = branch[0];
    return first?.code === 'invalid_type' ? `a${/^[aeiou]/.test(first.expected) ? 'n' : ''} ${first.expected}` : (first?.message ?? 'another shape');
  }))];
  return `expected ${expected.join(' or ')}; got ${shown}`;
}

function formatIssues(error: z.ZodError, schema: ConfigSchema, input?: unknown): string {
  return error.issues
    .map((issue) => {
      const at = issue.path.length ? issue.path.join('.') : '(root)';
      if (issue.code === 'unrecognized_keys') {
        return `  - unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}` +
          `${issue.path.length ? ` in ${at}` : ''}; known keys: ${knownKeys(schema).join(', ')}`;
      }
      if (issue.code === 'invalid_union') return `  - ${at}: ${unionMessage(issue, input)}`;
      return `  - ${at}: ${issue.message}`;
    })
    .join('\n');
}

/** JSON Schema of a component config, for `dfd plugins --json` and documentation. */
export function configJsonSchema(definition: ComponentDefinition): unknown {
  try {
    return z.toJSONSchema(definition.config, { unrepresentable: 'any', io: 'input' });
  } catch {
    return { description: 'schema not representable as JSON Schema' };
  }
}
