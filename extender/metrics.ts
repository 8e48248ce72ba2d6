import { Counter, Histogram, type Registry } from 'prom-client';
import { COMPAT_RULES } from '../api/compat.js';
import type { Verb } from './protocol.js';
import type { Tally } from './decide.js';

/**
 * `outcome`: restored / not-restored (answered), invalid (4xx or Error for a bad request),
 * no-cache (NodeNames request without a node cache), error (internal failure).
 */
export type Outcome = 'restored' | 'not-restored' | 'invalid' | 'no-cache' | 'error';

export interface ExtenderMetrics {
  observe(verb: Verb, outcome: Outcome, seconds: number, tally: Tally | undefined): void;
}

export function extenderMetrics(registry: Registry): ExtenderMetrics {
  const requests = new Counter({
    name: 'lazarus_extender_requests_total', help: 'Extender requests by verb and outcome',
    labelNames: ['verb', 'outcome'], registers: [registry],
  });
  const latency = new Histogram({
    name: 'lazarus_extender_request_duration_seconds', help: 'Time from request to response written, by verb',
    labelNames: ['verb'], registers: [registry],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  });
  const filtered = new Counter({
    name: 'lazarus_extender_nodes_filtered_total',
    help: 'Nodes the filter verb rejected, by the rule they failed (a node may fail several)',
    labelNames: ['rule'], registers: [registry],
  });
  const unknown = new Counter({
    name: 'lazarus_extender_nodes_unknown_total',
    help: 'Nodes named in a request that the node cache did not know (passed with score 0)',
    labelNames: ['verb'], registers: [registry],
  });
  // Zero series exist from the start, so rate() and alerts work before the first rejection.
  for (const rule of COMPAT_RULES) filtered.inc({ rule }, 0);

  return {
    observe(verb, outcome, seconds, tally) {
      requests.inc({ verb, outcome });
      latency.observe({ verb }, seconds);
      if (!tally) return;
      if (tally.unknown > 0) unknown.inc({ verb }, tally.unknown);
      if (verb !== 'filter') return;
      for (const [rule, n] of Object.entries(tally.byRule)) filtered.inc({ rule }, n);
    },
  };
}
