/**
 * Our facade over tsyringe. Plugins see `inject`, `injectable`, the tokens below and `Resolver`; nothing
 * depends on emitted decorator metadata (esbuild/tsx don't emit it), so every constructor parameter of a
 * component class carries an explicit `@inject(TOKEN)`.
 */
import 'reflect-metadata';
import { container as rootContainer, inject, injectable, type DependencyContainer } from 'tsyringe';

export { inject, injectable };

/** The DI tokens of the parts an experiment is assembled from. */
export const TOKENS = {
  Encoder: Symbol.for('dfd.Encoder'),
  FrozenImageEncoder: Symbol.for('dfd.FrozenImageEncoder'),
  PromptLearner: Symbol.for('dfd.PromptLearner'),
  FeatureEnhancer: Symbol.for('dfd.FeatureEnhancer'),
  Fuser: Symbol.for('dfd.Fuser'),
  Detector: Symbol.for('dfd.Detector'),
  /** All configured FeatureEnhancers of the experiment, in order (`FeatureEnhancer[]`, possibly empty). */
  FeatureEnhancers: Symbol.for('dfd.FeatureEnhancers'),
  /**
   * Their names in fusion inputs and messages (`string[]`, same order): the enhancer's own `name`, else
   * the component name it was configured with (`lare-egre`); a repeated name gets `#2`, `#3` ...
   */
  FeatureEnhancerNames: Symbol.for('dfd.FeatureEnhancerNames'),
  Evaluator: Symbol.for('dfd.Evaluator'),
  Dataset: Symbol.for('dfd.Dataset'),
  /** Turns samples into batches (image pipeline, feature cache ...): `BatchLoader`. */
  BatchLoader: Symbol.for('dfd.BatchLoader'),
  /** The seeded random source of the experiment (`Rng`). */
  Rng: Symbol.for('dfd.Rng'),
  /** The run context (`RunContext`): run directory, experiment name, emit(). */
  RunContext: Symbol.for('dfd.RunContext'),
  /** The resolved experiment definition (`ResolvedExperiment`). */
  Experiment: Symbol.for('dfd.Experiment'),
  /** The experiment's `PluginRegistry`, for components that build other components (the feature cache's inner loader). */
  Registry: Symbol.for('dfd.Registry'),
} as const;

/** The component kinds a plugin can register, each with its token. */
export const COMPONENT_KINDS = {
  encoder: TOKENS.Encoder,
  promptLearner: TOKENS.PromptLearner,
  enhancer: TOKENS.FeatureEnhancer,
  fuser: TOKENS.Fuser,
  detector: TOKENS.Detector,
  evaluator: TOKENS.Evaluator,
  dataset: TOKENS.Dataset,
  loader: TOKENS.BatchLoader,
  tracker: Symbol.for('dfd.Tracker'),
} as const;

export type ComponentKind = keyof typeof COMPONENT_KINDS;

const configTokens = new Map<ComponentKind, symbol>();
/**
 * The token under which a component's validated, defaulted config is registered in the experiment's
 * container: `@inject(configToken('promptLearner')) config: CoOpConfig`.
 */
export function configToken(kind: ComponentKind): symbol {
  let token = configTokens.get(kind);
  if (!token) {
    token = Symbol.for(`dfd.config.${kind}`);
    configTokens.set(kind, token);
  }
  return token;
}

export type Token<T = unknown> = symbol | string | (new (...args: never[]) => T);

/** What a factory sees: resolve by token, nothing else. */
export interface Resolver {
  resolve<T>(token: Token<T>): T;
  isRegistered(token: Token): boolean;
}

/**
 * One experiment's container: a child of the (empty) root, so experiments share nothing mutable. Every
 * component is created at most once per container (lazily, on first resolve) and remembered, so
 * `dispose()` releases exactly what was created.
 */
export class ExperimentContainer implements Resolver {
  private readonly created: unknown[] = [];

  private constructor(private readonly inner: DependencyContainer) {}

  static create(): ExperimentContainer {
    return new ExperimentContainer(rootContainer.createChildContainer());
  }

  /** A scope that sees this container's registrations and can override some (one enhancer's config ...). */
  createChild(): ExperimentContainer {
    const child = new ExperimentContainer(this.inner.createChildContainer());
    // Instances created in the child are released with the parent.
    (child as unknown as { created: unknown[] }).created = this.created;
    return child;
  }

  registerValue<T>(token: Token<T>, value: T): void {
    this.inner.register(token as symbol, { useValue: value });
  }

  /** A class whose constructor parameters all carry `@inject(...)`; one instance per container. */
  registerClass<T>(token: Token<T>, cls: new (...args: never[]) => T): void {
    this.registerFactory(token, () => this.inner.resolve(cls as never) as T);
  }

  /** A factory, called at most once per container. */
  registerFactory<T>(token: Token<T>, factory: (resolver: Resolver) => T): void {
    let made = false;
    let value: T;
    this.inner.register(token as symbol, {
      useFactory: () => {
        if (!made) {
          value = factory(this);
          made = true;
          this.created.push(value);
        }
        return value;
      },
    });
  }

  resolve<T>(token: Token<T>): T {
    return this.inner.resolve(token as symbol) as T;
  }

  isRegistered(token: Token): boolean {
    return this.inner.isRegistered(token as symbol, true);
  }

  /** Disposes every created component that has `dispose()`, newest first, then forgets them. */
  dispose(): void {
    for (const instance of this.created.splice(0).reverse()) {
      (instance as { dispose?: () => void } | undefined)?.dispose?.();
    }
    this.inner.clearInstances();
  }
}

/** A part that an experiment may or may not configure (a fuser, the encoder of a feature-based probe). */
export function resolveOptional<T>(resolver: Resolver, token: Token<T>): T | undefined {
  return resolver.isRegistered(token) ? resolver.resolve<T>(token) : undefined;
}
