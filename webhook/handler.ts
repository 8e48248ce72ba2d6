/**
 * POST /mutate: decode, decide, answer. Never blocks a pod: anything unexpected inside
 * (unsynced caches, a bug) admits the pod unchanged with a warning, like failurePolicy Ignore.
 */
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import { allowed, parseReview, patched, podOf, rejected, review } from './admission.js';
import { decide, type ClusterView, type Decision } from './decide.js';

export interface HandlerDeps {
  view: ClusterView;
  /** Undefined when ready; otherwise why decisions cannot be trusted yet. */
  notReady: () => string | undefined;
  excludedNamespaces: ReadonlySet<string>;
  clock: () => number;
  log: Logger;
  registry: Registry;
  /** Replaceable for tests of the internal-error path. */
  decideFn?: typeof decide;
}

export interface HttpAnswer { status: number; body: string }

export function createAdmissionHandler(deps: HandlerDeps): (body: string) => HttpAnswer {
  const decisions = new Counter({
    name: 'lazarus_webhook_admissions_total', help: 'Pod admissions by outcome (restored, cold, skipped, unready, error, invalid).',
    labelNames: ['outcome'], registers: [deps.registry],
  });
  const latency = new Histogram({
    name: 'lazarus_webhook_decision_seconds', help: 'Time to decide one admission (excluding transport).',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05], registers: [deps.registry],
  });
  const decideFn = deps.decideFn ?? decide;
  const ok = (uid: string, answer: ReturnType<typeof allowed>): HttpAnswer => ({ status: 200, body: review(uid, answer) });

  return (body) => {
    const parsed = parseReview(body);
    if (!parsed.ok) {
      decisions.inc({ outcome: 'invalid' });
      return { status: parsed.code, body: review(parsed.uid, rejected(parsed.code, parsed.message)) };
    }
    const request = parsed.request;
    if (request.kind.kind !== 'Pod' || request.operation !== 'CREATE') return ok(request.uid, allowed());
    const pod = podOf(request);
    if (!pod) {
      decisions.inc({ outcome: 'invalid' });
      return { status: 400, body: review(request.uid, rejected(400, 'request.object is not a Pod with metadata, spec and named containers')) };
    }
    const notReady = deps.notReady();
    if (notReady !== undefined) {
      decisions.inc({ outcome: 'unready' });
      return ok(request.uid, allowed([`lazarus: webhook not ready (${notReady}); pod admitted unchanged`]));
    }
    const started = performance.now();
    let decision: Decision;
    try {
      decision = decideFn({
        pod, namespace: request.namespace || pod.metadata.namespace || '',
        excludedNamespaces: deps.excludedNamespaces, now: deps.clock(),
      }, deps.view);
    } catch (err) {
      decisions.inc({ outcome: 'error' });
      deps.log.error({ uid: request.uid, err }, 'admission decision failed; admitting unchanged');
      return ok(request.uid, allowed([`lazarus: internal error, pod admitted unchanged (request ${request.uid})`]));
    }
    latency.observe((performance.now() - started) / 1000);
    decisions.inc({ outcome: decision.outcome });
    if (decision.outcome !== 'skipped') {
      deps.log.info({
        uid: request.uid, namespace: request.namespace, pod: pod.metadata.name || pod.metadata.generateName,
        outcome: decision.outcome, reason: decision.reason, policy: decision.policy, checkpoints: decision.checkpoints, dryRun: request.dryRun,
      }, 'admission');
    }
    return ok(request.uid, patched(decision.patch, decision.warnings));
  };
}
