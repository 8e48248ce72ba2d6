/**
 * POST /validate-eviction: decode, GET the pod, decide (eviction.ts), then the edges: the hold's
 * patch on the pod, a 429 or an admission, and Events written in the background. Never blocks a
 * drain on its own failure: anything unexpected admits the eviction, like failurePolicy Ignore.
 */
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Operation } from 'fast-json-patch';
import type { Pod, WorkloadRef } from '../api/types.js';
import { allowed, parseReview, rejected, review, tooManyRequests } from './admission.js';
import { decideEviction, type AllowReason, type EvictionView, type EvictionWarning, type HoldReason } from './eviction.js';
import type { HttpAnswer } from './handler.js';

/** What the handler reads and writes; kube/client.ts in production (eviction-io.ts), fakes in tests. */
export interface EvictionIO {
  /** The pod, status included; undefined when it does not exist. */
  getPod(namespace: string, name: string): Promise<Pod | undefined>;
  /** RFC 6902 patch of the pod; false when its `test` failed or another write raced it (another replica wrote first). */
  patchPod(namespace: string, name: string, ops: readonly Operation[]): Promise<boolean>;
  /** A Warning Event on the pod and, unless the pod is its own workload, on the workload. */
  warn(namespace: string, podUid: string | undefined, warning: EvictionWarning): Promise<void>;
}

export interface EvictionHandlerDeps {
  view: EvictionView;
  io: EvictionIO;
  /** Undefined when ready; otherwise why decisions cannot be trusted yet. */
  notReady: () => string | undefined;
  excludedNamespaces: ReadonlySet<string>;
  clock: () => number;
  log: Logger;
  registry: Registry;
}

type Reason = AllowReason | HoldReason | 'unready' | 'invalid';

/**
 * kubectl drain retries every 5 s while a PodDisruptionBudget refuses what Lazarus admitted:
 * the same warning for the same pod is recorded once per replica in this window, not per retry.
 */
export const WARN_ONCE_MS = 10 * 60_000;
const WARNED_MAX = 10_000;

export function createEvictionHandler(deps: EvictionHandlerDeps): (body: string) => Promise<HttpAnswer> {
  const evictions = new Counter({
    name: 'lazarus_webhook_evictions_total',
    help: 'Evictions of pods answered by the eviction webhook, by verdict (held: 429, admitted) and reason.',
    labelNames: ['verdict', 'reason'], registers: [deps.registry],
  });
  const count = (verdict: 'held' | 'admitted', reason: Reason): void => { evictions.labels(verdict, reason).inc(); };
  const warned = new Map<string, number>();
  /** True the first time in WARN_ONCE_MS that this pod (by UID) gets this warning. */
  const firstWarning = (key: string, now: number): boolean => {
    const until = warned.get(key);
    if (until !== undefined && until > now) return false;
    if (warned.size >= WARNED_MAX) for (const [k, t] of warned) if (t <= now || warned.size >= WARNED_MAX) warned.delete(k);
    warned.set(key, now + WARN_ONCE_MS);
    return true;
  };
  const admit = (uid: string, reason: Reason, warnings: readonly string[] = []): HttpAnswer => {
    count('admitted', reason);
    return { status: 200, body: review(uid, allowed(warnings)) };
  };

  return async (body) => {
    const parsed = parseReview(body);
    if (!parsed.ok) {
      count('admitted', 'invalid');
      return { status: parsed.code, body: review(parsed.uid, rejected(parsed.code, parsed.message)) };
    }
    const request = parsed.request;
    const isEviction = request.resource?.resource === 'pods' && request.subResource === 'eviction' && request.operation === 'CREATE';
    const namespace = request.namespace ?? '';
    const name = request.name ?? '';
    if (!isEviction || !namespace || !name) return admit(request.uid, 'invalid');
    const notReady = deps.notReady();
    if (notReady !== undefined) return admit(request.uid, 'unready', [`lazarus: webhook not ready (${notReady}); eviction not held`]);

    /** Set once the pod is known to be opted in and due a hold: a failure after that is worth an Event. */
    let holding: { uid: string | undefined; workload: WorkloadRef } | undefined;
    try {
      const pod = await deps.io.getPod(namespace, name);
      const now = deps.clock();
      const decision = decideEviction({ pod, namespace, name, dryRun: request.dryRun === true, excludedNamespaces: deps.excludedNamespaces, now }, deps.view);
      if (decision.verdict === 'hold') {
        holding = { uid: pod?.metadata.uid, workload: decision.workload };
        // A lost race (another replica, the controller answering) leaves the pod as the winner wrote it: still held.
        if (decision.write) await deps.io.patchPod(namespace, name, decision.write);
        count('held', decision.reason);
        deps.log.info({ uid: request.uid, namespace, pod: name, reason: decision.reason, heldSince: new Date(decision.heldSince).toISOString() }, 'eviction held');
        return { status: 200, body: review(request.uid, tooManyRequests(decision.message)) };
      }
      const { warning } = decision;
      if (warning && firstWarning(`${namespace}/${name}/${pod?.metadata.uid ?? ''}/${decision.reason}`, now)) {
        // In the background: an Event never delays nor fails the answer.
        deps.io.warn(namespace, pod?.metadata.uid, warning).catch((err: unknown) => deps.log.warn({ err, namespace, pod: name }, 'eviction Event not written'));
        deps.log.warn({ uid: request.uid, namespace, pod: name, reason: decision.reason, message: decision.message }, 'eviction admitted without a fresh checkpoint');
      } else if (decision.reason !== 'not-opted-in' && decision.reason !== 'excluded') {
        deps.log.info({ uid: request.uid, namespace, pod: name, reason: decision.reason }, 'eviction admitted');
      }
      return admit(request.uid, decision.reason, decision.reason === 'not-opted-in' || decision.reason === 'excluded' ? [] : [`lazarus: ${decision.message}`]);
    } catch (err) {
      deps.log.error({ uid: request.uid, namespace, pod: name, err }, 'eviction decision failed; admitting');
      const message = `eviction of ${namespace}/${name} admitted without a fresh checkpoint: internal error (${(err as Error).message})`;
      // A pod whose hold could not be written is evicted unprotected: its owner should hear of it, as for a timeout.
      if (holding && firstWarning(`${namespace}/${name}/${holding.uid ?? ''}/error`, deps.clock())) {
        deps.io.warn(namespace, holding.uid, { reason: 'EvictionNotHeld', message, pod: name, workload: holding.workload })
          .catch((warnErr: unknown) => deps.log.warn({ err: warnErr, namespace, pod: name }, 'eviction Event not written'));
      }
      return admit(request.uid, 'error', [`lazarus: ${message}`]);
    }
  };
}
