/**
 * Registering and building components in a container. The runner uses it for the experiment's slots;
 * components that build other components (the feature cache builds its inner loader) use
 * `instantiateComponent`, so every component gets its validated config under its kind's token the same way.
 */
import { COMPONENT_KINDS, configToken, type ComponentKind, type ExperimentContainer, type Resolver } from '../di.js';
import type { ComponentDefinition, PluginRegistry } from '../plugin.js';

/** Registers a component's validated config and the component itself under its kind's tokens. */
export function registerComponent(container: ExperimentContainer, definition: ComponentDefinition, config: Record<string, unknown>): void {
  const token = COMPONENT_KINDS[definition.kind];
  container.registerValue(configToken(definition.kind), config);
  if (definition.useClass) container.registerClass(token, definition.useClass);
  else container.registerFactory(token, (resolver: Resolver) => definition.useFactory!(config, resolver));
}

/**
 * Builds one component in its own child scope of `parent` (so its config does not replace the
 * experiment's own component of the same kind); it is disposed with the experiment.
 */
export function instantiateComponent<T>(
  parent: ExperimentContainer,
  registry: PluginRegistry,
  kind: ComponentKind,
  name: string,
  config: Record<string, unknown>,
): T {
  const child = parent.createChild();
  registerComponent(child, registry.get(kind, name), config);
  return child.resolve<T>(COMPONENT_KINDS[kind]);
}
