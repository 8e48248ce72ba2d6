import { Registry, collectDefaultMetrics } from 'prom-client';

/** A registry per server instance, so tests can run several side by side. */
export function createRegistry(component: string, withDefaults = true): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  if (withDefaults) collectDefaultMetrics({ register: registry, prefix: 'lazarus_' });
  return registry;
}
