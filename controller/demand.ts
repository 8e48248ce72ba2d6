/**
 * Checkpoint on demand (DESIGN §2): which `lazarus.dev/checkpoint` annotations ask for work,
 * which pods and containers a request covers, and the answer written back. Pure: caches and
 * results come in as data; controller.ts does the writes.
 *
 * Eligibility is the periodic path's: a pod must be opted in (its own `lazarus.dev/restore`,
 * else its workload's, else the policy's mode) and Running on a node; only running containers
 * are checkpointed. The policy's schedule (`interval`, `onDrain`) does not matter: the user asked.
 */
import { REQUEST_NOW, parseAnswer, type CheckpointAnswer } from '../api/checkpoint-request.js';
import * as K from '../api/keys.js';
import { selectPolicy } from '../api/policy.js';
import { resolveOptIn, type OwnerKind, type OwnerView } from '../api/workload.js';
import type { Target } from './schedule.js';
import { podPolicy, type PodView, type PolicyView } from './targets.js';

export type SubjectKind = 'Pod' | OwnerKind;

/** The object the user annotated. */
export interface DemandSubject { kind: SubjectKind; namespace: string; name: string; uid?: string }

export const subjectKey = (s: DemandSubject): string => `${s.kind}/${s.namespace}/${s.name}`;

/** A `lazarus.dev/checkpoint` annotation found in the caches. */
export interface Asked { subject: DemandSubject; value: string }

export interface AnnotatedWorkload { kind: OwnerKind; namespace: string; name: string; view: OwnerView }

/**
 * Every annotated pod and workload. A ReplicaSet controlled by a Deployment is left out: the
 * Deployment controller copies the Deployment's annotations onto it, so its value is the
 * Deployment's request, not a second one.
 */
export function askedSubjects(pods: Iterable<PodView>, workloads: Iterable<AnnotatedWorkload>): Asked[] {
  const asked: Asked[] = [];
  for (const pod of pods) {
    const value = pod.annotations?.[K.CHECKPOINT_REQUEST];
    if (value !== undefined) asked.push({ subject: { kind: 'Pod', namespace: pod.namespace, name: pod.name, uid: pod.uid }, value });
  }
  for (const w of workloads) {
    const value = w.view.annotations?.[K.CHECKPOINT_REQUEST];
    if (value === undefined) continue;
    if (w.kind === 'ReplicaSet' && w.view.ownerReferences?.some((r) => r.controller && r.kind === 'Deployment')) continue;
    asked.push({ subject: { kind: w.kind, namespace: w.namespace, name: w.name }, value });
  }
  return asked;
}

export type Intake =
  | { action: 'ignore' }
  /** `now`: accept it (write `requested <time>`) and start. */
  | { action: 'claim' }
  /** `requested <time>` that no one here is working on (a previous leader was): carry it on. */
  | { action: 'adopt'; requestedAt: number }
  /** Not in the grammar: answer `failed` with this reason. */
  | { action: 'reject'; reason: string };

/**
 * What to do about one annotation value. `pending`: this controller is working on the subject;
 * `answered`: the `requested …` value it last answered (a cache may still show it for a moment).
 */
export function intake(value: string, state: { pending: boolean; answered: string | undefined }): Intake {
  const parsed = parseAnswer(value);
  if (!parsed) return { action: 'reject', reason: `"${value}" is not a request: set ${K.CHECKPOINT_REQUEST}=${REQUEST_NOW}` };
  switch (parsed.state) {
    case 'now': return state.pending ? { action: 'ignore' } : { action: 'claim' };
    case 'requested': return state.pending || state.answered === value ? { action: 'ignore' } : { action: 'adopt', requestedAt: parsed.at };
    case 'taken':
    case 'failed':
      return { action: 'ignore' };
  }
}

/** One container a request covers: a checkpoint target, or why it cannot be one. */
export interface DemandItem {
  /** `namespace/pod/container`, as schedule.ts' Target. */
  key: string;
  pod: string;
  container: string;
  /** Absent when `error` says why this container is not checkpointed. */
  target?: Target;
  error?: string;
}

export type DemandPlan = { error: string } | { items: DemandItem[] };

function notOptedIn(because: string): string {
  return `not opted in: annotate ${K.RESTORE}=enabled on the pod or its workload (${because.replace(/^not opted in \((.*)\)$/, '$1')})`;
}

/** The containers of one pod, or why none of them can be checkpointed. */
function podItems(pod: PodView, view: PolicyView, now: number): DemandPlan {
  if (pod.deleting) return { error: `pod ${pod.name} is being deleted` };
  const { policy, enabled, because } = podPolicy(pod, view);
  if (!enabled) return { error: notOptedIn(because) };
  if (pod.phase !== 'Running' || !pod.nodeName) return { error: `pod ${pod.name} is ${pod.phase ?? 'Pending'}${pod.nodeName ? '' : ' and not on a node'}, not Running` };
  const node = pod.nodeName;
  const running = new Set((pod.containerStatuses ?? []).filter((s) => s.state?.running).map((s) => s.name));
  const items = pod.containers.map((container): DemandItem => {
    const key = `${pod.namespace}/${pod.name}/${container}`;
    if (!running.has(container)) return { key, pod: pod.name, container, error: `container ${container} is not running` };
    return {
      key, pod: pod.name, container,
      target: {
        key, namespace: pod.namespace, pod: pod.name, podUid: pod.uid, node, container,
        startedAt: now, intervalMs: 0, onDrain: false, timeoutSeconds: policy.spec.checkpoint.timeoutSeconds,
        maxParallelPerNode: policy.spec.checkpoint.maxParallelPerNode,
      },
    };
  });
  if (!items.some((i) => i.target)) return { error: `no running containers in pod ${pod.name}` };
  return { items };
}

/** The pods a workload request covers: those whose top-level workload it is, not being deleted. */
export function workloadPods(subject: DemandSubject, pods: Iterable<PodView>, view: PolicyView): PodView[] {
  const chosen: PodView[] = [];
  for (const pod of pods) {
    if (pod.namespace !== subject.namespace || pod.deleting) continue;
    const { workload } = podPolicy(pod, view);
    if (workload.kind === subject.kind && workload.name === subject.name) chosen.push(pod);
  }
  return chosen.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Which containers a request covers, or why it cannot be served at all. */
export function planDemand(subject: DemandSubject, pods: Iterable<PodView>, view: PolicyView, now: number): DemandPlan {
  if (subject.kind === 'Pod') {
    for (const pod of pods) {
      if (pod.namespace === subject.namespace && pod.name === subject.name) return podItems(pod, view, now);
    }
    return { error: `pod ${subject.name} not found` };
  }
  const owner = view.owners.get(subject.kind, subject.namespace, subject.name);
  if (!owner) return { error: `${subject.kind} ${subject.name} not found` };
  const policy = selectPolicy(view.policies(), { namespaceLabels: view.namespaceLabels(subject.namespace), workloadLabels: owner.labels });
  const optIn = resolveOptIn([{ kind: subject.kind, name: subject.name, annotations: owner.annotations }], policy);
  if (!optIn.enabled) return { error: notOptedIn(optIn.because) };
  const members = workloadPods(subject, pods, view);
  if (!members.length) return { error: `no pods of ${subject.kind} ${subject.name}` };
  const items: DemandItem[] = [];
  for (const pod of members) {
    const plan = podItems(pod, view, now);
    if ('items' in plan) items.push(...plan.items);
    else items.push(...pod.containers.map((container) => ({ key: `${pod.namespace}/${pod.name}/${container}`, pod: pod.name, container, error: plan.error })));
  }
  return { items };
}

export type ItemResult = { ok: true; node: string; paths: string[] } | { ok: false; reason: string };

const AGENT_NOTE = 'the agent on the node turns each archive into an image and a Checkpoint (Ready later)';

/** The answer once every item has a result (or an error from planning). */
export function summarize(subject: DemandSubject, items: readonly DemandItem[], results: ReadonlyMap<string, ItemResult>, at: number): CheckpointAnswer {
  const outcome = items.map((item) => ({ item, result: item.error !== undefined ? { ok: false as const, reason: item.error } : results.get(item.key) ?? { ok: false as const, reason: 'no result' } }));
  const failed = outcome.filter((o) => !o.result.ok);
  if (subject.kind === 'Pod') {
    if (failed.length) {
      const reasons = failed.map((o) => `${o.item.container}: ${o.result.ok ? '' : o.result.reason}`);
      const taken = outcome.filter((o) => o.result.ok).map((o) => o.item.container);
      return { state: 'failed', at, reason: `${reasons.join('; ')}${taken.length ? ` (taken: ${taken.join(', ')})` : ''}` };
    }
    const nodes = new Set(outcome.map((o) => (o.result.ok ? o.result.node : '')));
    const archives = outcome.map((o) => `${o.item.container}=${o.result.ok && o.result.paths.length ? o.result.paths.join('+') : 'archive written'}`);
    return { state: 'taken', at, detail: `${archives.join(', ')} on node ${[...nodes].join(', ')}; ${AGENT_NOTE}` };
  }
  const podNames = [...new Set(items.map((i) => i.pod))];
  const failedPods = new Set(failed.map((o) => o.item.pod));
  const takenPods = podNames.filter((p) => !failedPods.has(p));
  if (!failed.length) {
    return { state: 'taken', at, detail: `${takenPods.length}/${podNames.length} pods (${takenPods.join(', ')}), archives on their nodes; ${AGENT_NOTE}` };
  }
  const reasons = failed.map((o) => `${o.item.pod}/${o.item.container}: ${o.result.ok ? '' : o.result.reason}`);
  return { state: 'failed', at, reason: `${takenPods.length}/${podNames.length} pods taken; ${reasons.join('; ')}` };
}

/** A request that failed before any checkpoint (not opted in, no pods, not in the grammar). */
export function failedAnswer(reason: string, at: number): CheckpointAnswer {
  return { state: 'failed', at, reason };
}
