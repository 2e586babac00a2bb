/**
 * Assembles one experiment in its own child container: validates every component config against its
 * plugin's schema, registers the validated configs and the components under their tokens, and resolves
 * the parts. Nothing here is shared between experiments.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type {
  BatchLoader,
  Dataset,
  Detector,
  Encoder,
  Evaluator,
  FeatureEnhancer,
  Fuser,
  PromptLearner,
  Tracker,
} from '../contracts.js';
import { ExperimentContainer, TOKENS, type ComponentKind } from '../di.js';
import type { ComponentRef, ResolvedExperiment } from '../experiment.js';
import { PluginError, PluginRegistry, type Plugin } from '../plugin.js';
import { Rng } from '../rng.js';
import { corePlugin } from '../builtin-plugin.js';
import { instantiateComponent, registerComponent } from './instantiate.js';

/** A component slot after validation: the resolved config is what the run records. */
export interface ResolvedComponent {
  use: string;
  preset?: string;
  plugin: string;
  config: Record<string, unknown>;
}

export type ResolvedSlots = {
  dataset: ResolvedComponent;
  loader?: ResolvedComponent;
  encoder?: ResolvedComponent;
  promptLearner?: ResolvedComponent;
  enhancers: ResolvedComponent[];
  fuser?: ResolvedComponent;
  detector: ResolvedComponent;
  evaluator: ResolvedComponent;
  tracking: ResolvedComponent[];
};

export interface AssembledExperiment {
  container: ExperimentContainer;
  registry: PluginRegistry;
  slots: ResolvedSlots;
  dataset: Dataset;
  loader: BatchLoader;
  detector: Detector;
  evaluator: Evaluator;
  trackers: Tracker[];
  /** Every instantiated part, disposed together. */
  dispose(): void;
}

function isPlugin(value: unknown): value is Plugin {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Plugin).name === 'string' &&
    Array.isArray((value as Plugin).components) &&
    Array.isArray((value as Plugin).commands)
  );
}

/** Finds the Plugin object(s) a module exports (default export or named exports). */
export function pluginsOfModule(module: Record<string, unknown>): Plugin[] {
  const found = new Set<Plugin>();
  for (const value of Object.values(module)) if (isPlugin(value)) found.add(value);
  return [...found];
}

/** Imports plugin packages by name, resolved from `cwd` (the user's project) first, then from core. */
export async function importPlugins(names: string[], cwd = process.cwd()): Promise<Plugin[]> {
  const plugins: Plugin[] = [];
  for (const name of names) {
    let url: string;
    try {
      url = pathToFileURL(createRequire(join(cwd, 'package.json')).resolve(name)).href;
    } catch {
      try {
        url = pathToFileURL(createRequire(import.meta.url).resolve(name)).href;
      } catch {
        throw new PluginError(`plugin package '${name}' is not installed (from ${cwd}): run npm install ${name}`);
      }
    }
    const module = (await import(url)) as Record<string, unknown>;
    const found = pluginsOfModule(module);
    if (!found.length) throw new PluginError(`package '${name}' exports no @dfd plugin (expected a definePlugin(...) export)`);
    plugins.push(...found);
  }
  return plugins;
}

export function buildRegistry(plugins: Plugin[]): PluginRegistry {
  return new PluginRegistry([corePlugin, ...plugins]);
}

function resolveSlot(registry: PluginRegistry, kind: ComponentKind, ref: ComponentRef): ResolvedComponent {
  const config = registry.resolveConfig(kind, ref.use, ref.config ?? {}, ref.preset);
  return {
    use: ref.use,
    ...(ref.preset ? { preset: ref.preset } : {}),
    plugin: registry.pluginOf(kind, ref.use)!,
    config,
  };
}

/** Validates every component reference; throws ConfigError/PluginError listing what is registered. */
export function resolveSlots(experiment: ResolvedExperiment, registry: PluginRegistry): ResolvedSlots {
  const loaderRef = experiment.loader ?? (registry.namesOf('loader').includes('images') ? { use: 'images' } : undefined);
  return {
    dataset: resolveSlot(registry, 'dataset', experiment.dataset),
    loader: loaderRef ? resolveSlot(registry, 'loader', loaderRef) : undefined,
    encoder: experiment.encoder ? resolveSlot(registry, 'encoder', experiment.encoder) : undefined,
    promptLearner: experiment.promptLearner ? resolveSlot(registry, 'promptLearner', experiment.promptLearner) : undefined,
    enhancers: experiment.enhancers.map((ref) => resolveSlot(registry, 'enhancer', ref)),
    fuser: experiment.fuser ? resolveSlot(registry, 'fuser', experiment.fuser) : undefined,
    detector: resolveSlot(registry, 'detector', experiment.detector),
    evaluator: resolveSlot(registry, 'evaluator', experiment.evaluator),
    tracking: experiment.tracking.map((ref) => resolveSlot(registry, 'tracker', ref)),
  };
}

/** Components of one kind that may appear several times (enhancers, trackers) each get their own child scope. */
function instantiateMany<T>(
  registry: PluginRegistry,
  parent: ExperimentContainer,
  kind: ComponentKind,
  slots: ResolvedComponent[],
): T[] {
  return slots.map((slot) => instantiateComponent<T>(parent, registry, kind, slot.use, slot.config));
}

/**
 * Each enhancer's name in fusion inputs and error messages: its own `name` when it sets one, else the
 * component name of its slot. Repeats (two `lare-mlp` slots) are told apart as `lare-mlp`, `lare-mlp#2`.
 */
export function enhancerNames(enhancers: FeatureEnhancer[], slots: Array<{ use: string }>): string[] {
  const seen = new Map<string, number>();
  return enhancers.map((enhancer, i) => {
    const base = enhancer.name || slots[i]?.use || `enhancer${i}`;
    const count = (seen.get(base) ?? 0) + 1;
    seen.set(base, count);
    return count === 1 ? base : `${base}#${count}`;
  });
}

export interface AssembleOptions {
  seed: number;
  /** Values made available to components, e.g. the RunContext. */
  values?: Array<[symbol, unknown]>;
}

/** Instantiates the parts. Order matters only through DI: a prompt learner resolves the encoder it needs. */
export function assemble(
  experiment: ResolvedExperiment,
  registry: PluginRegistry,
  slots: ResolvedSlots,
  options: AssembleOptions,
): AssembledExperiment {
  const container = ExperimentContainer.create();
  container.registerValue(TOKENS.Rng, new Rng(options.seed));
  container.registerValue(TOKENS.Experiment, experiment);
  container.registerValue(TOKENS.Registry, registry);
  for (const [token, value] of options.values ?? []) container.registerValue(token, value);

  const single: Array<[ComponentKind, ResolvedComponent | undefined]> = [
    ['dataset', slots.dataset],
    ['loader', slots.loader],
    ['encoder', slots.encoder],
    ['promptLearner', slots.promptLearner],
    ['fuser', slots.fuser],
    ['detector', slots.detector],
    ['evaluator', slots.evaluator],
  ];
  for (const [kind, slot] of single) if (slot) registerComponent(container, registry.get(kind, slot.use), slot.config);

  const enhancers = instantiateMany<FeatureEnhancer>(registry, container, 'enhancer', slots.enhancers);
  container.registerValue(TOKENS.FeatureEnhancers, enhancers);
  container.registerValue(TOKENS.FeatureEnhancerNames, enhancerNames(enhancers, slots.enhancers));

  if (!slots.loader) {
    throw new PluginError(
      `no batch loader: set \`loader: { use: ... }\` or load a plugin that registers the 'images' loader (e.g. @dfd/dataset-df40). ` +
        `Registered loaders: ${registry.namesOf('loader').join(', ') || '(none)'}`,
    );
  }
  const detector = container.resolve<Detector>(TOKENS.Detector);
  const loader = container.resolve<BatchLoader>(TOKENS.BatchLoader);
  const evaluator = container.resolve<Evaluator>(TOKENS.Evaluator);
  const trackers = instantiateMany<Tracker>(registry, container, 'tracker', slots.tracking);

  return {
    container,
    registry,
    slots,
    // Lazy: predicting with a trained run must not need the training data on disk.
    get dataset() {
      return container.resolve<Dataset>(TOKENS.Dataset);
    },
    loader,
    detector,
    evaluator,
    trackers,
    dispose() {
      container.dispose();
    },
  };
}

