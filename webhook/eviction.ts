/**
 * Hold an eviction until a fresh checkpoint exists (issue 14, point 1): the decision for one
 * `pods/eviction` CREATE, as a pure function of the pod (read with a GET by the caller), a view
 * of the cluster and the clock. The caller does the I/O: it writes `write` to the pod, answers
 * 429 on `hold`, and records `warning` as Events.
 *
 * Where the hold starts, across retries and webhook replicas: the first eviction that is held
 * writes `lazarus.dev/eviction-held-since: <now>` and `lazarus.dev/checkpoint: now` on the pod in
 * one JSON patch that tests the pod's resourceVersion (two replicas racing: one write wins, both
 * answer 429). The webhook keeps no state; every retry, on any replica, reads the hold's start
 * from the pod. The controller takes the checkpoint through its on-demand path (its per-node
 * bound applies) and answers in the annotation; the agent turns the archives into Checkpoints.
 * A checkpoint is fresh when it is a Ready Checkpoint of this pod (spec.sourcePod, and the
 * source-pod-uid label when present) taken at or after the hold's start, one per container.
 * Any Ready set taken after the start counts, whichever path took it.
 *
 * Never for ever: past `checkpoint.evictionTimeout`, on a `failed` answer, a Failed Checkpoint
 * taken for this hold, or a pod that cannot be checkpointed, the eviction is admitted with a
 * `warning` the caller records. A hold whose start is older than the timeout plus
 * STALE_HOLD_MS belongs to an eviction that never happened (a PDB refused it, the drain was
 * stopped): the next eviction starts a new hold.
 */
import jsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { formatTime, parseAnswer } from '../api/checkpoint-request.js';
import { formatAge, parseDuration } from '../api/duration.js';
import { liveHoldSince } from '../api/eviction-hold.js';
import * as K from '../api/keys.js';
import { DEFAULT_POLICY_SPEC, selectPolicy } from '../api/policy.js';
import type { Checkpoint, Pod, WorkloadRef } from '../api/types.js';
import { resolveOptIn, resolveWorkload } from '../api/workload.js';
import type { ClusterView } from './decide.js';

export type EvictionView = Pick<ClusterView, 'policies' | 'namespaceLabels' | 'owners' | 'checkpoints'>;

export interface EvictionInput {
  /** The pod as a GET returned it (status included); undefined when it does not exist. */
  pod: Pod | undefined;
  namespace: string;
  name: string;
  dryRun: boolean;
  excludedNamespaces: ReadonlySet<string>;
  /** Milliseconds since the epoch. */
  now: number;
}

/** Metric labels: why an eviction was admitted or held. */
export type AllowReason = 'excluded' | 'pod-gone' | 'deleting' | 'not-opted-in' | 'not-checkpointable' | 'fresh-checkpoint'
  | 'timeout' | 'checkpoint-failed' | 'dry-run' | 'error';
export type HoldReason = 'requested' | 'in-progress';

/** Admitted despite an opted-in pod not having a fresh checkpoint: said as a Warning Event on the pod and its workload. */
export interface EvictionWarning { reason: 'EvictionNotHeld'; message: string; pod: string; workload: WorkloadRef }

export type EvictionDecision =
  | { verdict: 'allow'; reason: AllowReason; message: string; warning?: EvictionWarning }
  | { verdict: 'hold'; reason: HoldReason; message: string; heldSince: number; workload: WorkloadRef; write?: Operation[] };

export { STALE_HOLD_MS } from '../api/eviction-hold.js';
/** The controller's clock may lag the webhook's a little: an answer this much older than the hold still counts as its own. */
export const CLOCK_SKEW_MS = 2_000;
const DEFAULT_EVICTION_TIMEOUT_MS = 60_000;

const allow = (reason: AllowReason, message: string, warning?: EvictionWarning): EvictionDecision =>
  (warning ? { verdict: 'allow', reason, message, warning } : { verdict: 'allow', reason, message });

interface PodStatusView { phase?: string }

export function decideEviction(input: EvictionInput, view: EvictionView): EvictionDecision {
  const { pod, namespace, name, now } = input;
  const who = `${namespace}/${name}`;
  if (input.excludedNamespaces.has(namespace)) return allow('excluded', `namespace ${namespace} is excluded`);
  if (!pod) return allow('pod-gone', `pod ${who} not found`);
  if (pod.metadata.deletionTimestamp) return allow('deleting', `pod ${who} is already being deleted`);

  const resolved = resolveWorkload(pod, name, namespace, view.owners);
  const policy = selectPolicy(view.policies(), { namespaceLabels: view.namespaceLabels(namespace), workloadLabels: resolved.labels });
  const optIn = resolveOptIn(resolved.chain, policy);
  if (!optIn.enabled) return allow('not-opted-in', optIn.because);

  const warn = (reason: AllowReason, why: string): EvictionDecision => {
    const message = `eviction of ${who} admitted without a fresh checkpoint: ${why}`;
    return input.dryRun ? allow(reason, message) : allow(reason, message, { reason: 'EvictionNotHeld', message, pod: name, workload: resolved.workload });
  };
  const phase = (pod.status as PodStatusView | undefined)?.phase;
  if (!pod.spec.nodeName || phase !== 'Running') return warn('not-checkpointable', `the pod is ${phase ?? 'without a phase'}${pod.spec.nodeName ? '' : ' and on no node'}, not Running`);

  const timeoutText = policy.spec.checkpoint.evictionTimeout || DEFAULT_POLICY_SPEC.checkpoint.evictionTimeout;
  const timeoutMs = parseDuration(timeoutText) ?? DEFAULT_EVICTION_TIMEOUT_MS;
  const annotations = pod.metadata.annotations ?? {};
  const heldSince = liveHoldSince(annotations, timeoutMs, now);

  const holding = (reason: HoldReason, since: number, detail: string, write?: Operation[]): EvictionDecision => {
    const message = `Lazarus is checkpointing ${who} before its eviction, retry (${detail}; held ${formatAge(now - since)} of at most ${timeoutText})`;
    if (input.dryRun) return allow('dry-run', `dry run: a real eviction would be held: ${message}`);
    const hold = { verdict: 'hold', reason, message, heldSince: since, workload: resolved.workload } as const;
    return write ? { ...hold, write } : hold;
  };

  if (heldSince === undefined) {
    const start = Date.parse(formatTime(now));
    return holding('requested', start, 'checkpoint requested', holdPatch(pod, { [K.EVICTION_HELD_SINCE]: formatTime(start), [K.CHECKPOINT_REQUEST]: 'now' }));
  }

  const fresh = freshCheckpoints(pod, name, namespace, resolved.workload, view, heldSince);
  if (fresh.ready.length === pod.spec.containers.length) {
    return allow('fresh-checkpoint', `every container of ${who} has a Ready checkpoint taken since the hold began: ${fresh.ready.map((cp) => cp.metadata.name ?? '').join(', ')}`);
  }
  if (fresh.failed) return warn('checkpoint-failed', `checkpoint ${fresh.failed.metadata.name ?? ''} of container ${fresh.failed.spec.container} failed: ${fresh.failed.status?.reason ?? 'no reason given'}`);
  if (now >= heldSince + timeoutMs) return warn('timeout', `no Ready checkpoint of every container within checkpoint.evictionTimeout ${timeoutText} (${fresh.ready.length}/${pod.spec.containers.length} Ready)`);

  const answer = parseAnswer(annotations[K.CHECKPOINT_REQUEST] ?? '');
  const own = (at: number): boolean => at >= heldSince - CLOCK_SKEW_MS;
  switch (answer?.state) {
    case 'now': return holding('in-progress', heldSince, 'waiting for the controller to accept the checkpoint request');
    case 'requested': return holding('in-progress', heldSince, 'the controller is taking the checkpoint');
    case 'taken':
      if (own(answer.at)) return holding('in-progress', heldSince, `archives written, waiting for Ready Checkpoints (${fresh.ready.length}/${pod.spec.containers.length})`);
      break;
    case 'failed':
      if (own(answer.at)) return warn('checkpoint-failed', `the controller answered: ${answer.reason}`);
      break;
    case undefined:
      break;
  }
  // No request of this hold on the pod (a stale answer, a typo, or somebody removed it): ask again.
  return holding('requested', heldSince, 'checkpoint requested again', holdPatch(pod, { [K.CHECKPOINT_REQUEST]: 'now' }));
}

/**
 * The annotations to set, as a diff of the pod's annotations, after a `test` of its
 * resourceVersion: written only if nobody changed the pod since the GET it was decided on.
 */
export function holdPatch(pod: Pod, set: Readonly<Record<string, string>>): Operation[] {
  const annotations = pod.metadata.annotations;
  const before = { metadata: annotations === undefined ? {} : { annotations } };
  const after = { metadata: { annotations: { ...annotations, ...set } } };
  const ops = jsonPatch.compare(before, after);
  return [{ op: 'test', path: '/metadata/resourceVersion', value: pod.metadata.resourceVersion ?? '' }, ...ops];
}

/** The pod's own checkpoints taken since `since`: the newest Ready one per container, and a Failed one for a container with none Ready. */
function freshCheckpoints(pod: Pod, name: string, namespace: string, workload: WorkloadRef, view: EvictionView, since: number): { ready: Checkpoint[]; failed?: Checkpoint } {
  const uid = pod.metadata.uid;
  const ready: Checkpoint[] = [];
  let failed: Checkpoint | undefined;
  for (const container of pod.spec.containers) {
    const ours = view.checkpoints(namespace, workload, container.name).filter((cp) => cp.spec.sourcePod === name
      && (uid === undefined || cp.metadata.labels?.[K.CHECKPOINT_SOURCE_POD_UID] === undefined || cp.metadata.labels[K.CHECKPOINT_SOURCE_POD_UID] === uid)
      && Date.parse(cp.spec.takenAt) >= since);
    const good = ours.find((cp) => cp.status?.phase === 'Ready');
    if (good) ready.push(good);
    else failed ??= ours.find((cp) => cp.status?.phase === 'Failed');
  }
  return failed ? { ready, failed } : { ready };
}
