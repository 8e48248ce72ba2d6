/**
 * POST /mutate: decode, decide, answer. Never blocks a pod: anything unexpected inside
 * (unsynced caches, a bug) admits the pod unchanged with a warning, like failurePolicy Ignore.
 */
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import { allowed, parseReview, patched, podOf, rejected, review, reviewTemplate } from './admission.js';
import { DecisionCache } from './decision-cache.js';
import { decide, decisionInputs, type ClusterView, type Decision } from './decide.js';

export interface HandlerDeps {
  view: ClusterView;
  /**
   * Changes whenever anything in the view that decisions about pods in `namespace` read does.
   * With it, sibling pods reuse an answer while it holds (DecisionCache); without it, every
   * admission is decided afresh.
   */
  generation?: (namespace: string) => number;
  /** Undefined when ready; otherwise why decisions cannot be trusted yet. */
  notReady: () => string | undefined;
  excludedNamespaces: ReadonlySet<string>;
  /** The webhook's --registry (decide()'s defaultRegistry); default none. */
  defaultRegistry?: string;
  clock: () => number;
  log: Logger;
  registry: Registry;
  /** Replaceable for tests of the internal-error path. */
  decideFn?: typeof decide;
}

export interface HttpAnswer { status: number; body: string }

const OUTCOMES = ['restored', 'cold', 'skipped', 'unready', 'error', 'invalid'] as const;

/** A decision with its answer serialised but for the UID. */
interface Answered { decision: Decision; answer: (uid: string) => string }

export function createAdmissionHandler(deps: HandlerDeps): (body: string) => HttpAnswer {
  const decisions = new Counter({
    name: 'lazarus_webhook_admissions_total', help: `Pod admissions by outcome (${OUTCOMES.join(', ')}).`,
    labelNames: ['outcome'], registers: [deps.registry],
  });
  // Bound once: a label lookup per admission is measurable on this path.
  const counted = Object.fromEntries(OUTCOMES.map((o) => [o, decisions.labels(o)])) as Record<typeof OUTCOMES[number], { inc(): void }>;
  const reused = new Counter({
    name: 'lazarus_webhook_decisions_reused_total', help: 'Admissions answered with the decision made for an identical sibling pod.',
    registers: [deps.registry],
  });
  const latency = new Histogram({
    name: 'lazarus_webhook_decision_seconds', help: 'Time to decide one admission (excluding transport).',
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05], registers: [deps.registry],
  });
  const decideFn = deps.decideFn ?? decide;
  const generation = deps.generation;
  const cache = generation ? new DecisionCache<Answered>() : undefined;
  const ok = (uid: string, answer: ReturnType<typeof allowed>): HttpAnswer => ({ status: 200, body: review(uid, answer) });

  return (body) => {
    const parsed = parseReview(body);
    if (!parsed.ok) {
      counted.invalid.inc();
      return { status: parsed.code, body: review(parsed.uid, rejected(parsed.code, parsed.message)) };
    }
    const request = parsed.request;
    if (request.kind.kind !== 'Pod' || request.operation !== 'CREATE') return ok(request.uid, allowed());
    const pod = podOf(request);
    if (!pod) {
      counted.invalid.inc();
      return { status: 400, body: review(request.uid, rejected(400, 'request.object is not a Pod with metadata, spec and named containers')) };
    }
    const notReady = deps.notReady();
    if (notReady !== undefined) {
      counted.unready.inc();
      return ok(request.uid, allowed([`lazarus: webhook not ready (${notReady}); pod admitted unchanged`]));
    }
    const started = performance.now();
    const now = deps.clock();
    const namespace = request.namespace || pod.metadata.namespace || '';
    const version = generation?.(namespace) ?? 0;
    let answered: Answered | undefined;
    try {
      // With reuse, decide() sees only the inputs, so the key covers everything the decision
      // depends on; without it, the pod itself (the same decision: decide.test.ts checks both).
      const inputs = cache ? decisionInputs(pod) : pod;
      const key = cache && `${namespace}\u0000${JSON.stringify(inputs)}`;
      answered = key === undefined ? undefined : cache?.get(key, version, now);
      if (answered) {
        reused.inc();
      } else {
        const decision = decideFn({ pod: inputs, namespace, excludedNamespaces: deps.excludedNamespaces, defaultRegistry: deps.defaultRegistry ?? '', now }, deps.view);
        answered = { decision, answer: reviewTemplate(patched(decision.patchJson, decision.warnings)) };
        if (key !== undefined) cache?.set(key, version, answered, decision.validUntil);
      }
    } catch (err) {
      counted.error.inc();
      deps.log.error({ uid: request.uid, err }, 'admission decision failed; admitting unchanged');
      return ok(request.uid, allowed([`lazarus: internal error, pod admitted unchanged (request ${request.uid})`]));
    }
    latency.observe((performance.now() - started) / 1000);
    const { decision } = answered;
    counted[decision.outcome].inc();
    if (decision.outcome !== 'skipped') {
      deps.log.info({
        uid: request.uid, namespace: request.namespace, pod: pod.metadata.name || pod.metadata.generateName,
        outcome: decision.outcome, reason: decision.reason, policy: decision.policy, checkpoints: decision.checkpoints, dryRun: request.dryRun,
      }, 'admission');
    }
    return { status: 200, body: answered.answer(request.uid) };
  };
}
