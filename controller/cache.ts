/**
 * The controller's view of the cluster: kube/cluster-cache.ts (checkpoints, policies,
 * namespaces, owners, nodes) plus a pod informer that keeps only what the controller reads.
 */
import type { Logger } from 'pino';
import { CHECKPOINT_REQUEST, RESTORED_FROM } from '../api/keys.js';
import type { Checkpoint, ObjectMeta } from '../api/types.js';
import type { OwnerKind, OwnerView } from '../api/workload.js';
import type { KubeClient } from '../kube/client.js';
import { ClusterCache } from '../kube/cluster-cache.js';
import { Informer, type KubeObject } from '../kube/informer.js';
import { SharedValues, sharedKey } from '../kube/shared-values.js';
import type { ControllerView } from './controller.js';
import type { AnnotatedWorkload } from './demand.js';
import type { ContainerStateView, ContainerStatusView, UnschedulableView } from './outcome.js';
import type { PodView } from './targets.js';

interface RawState {
  running?: { startedAt?: string };
  waiting?: { reason?: string; message?: string };
  terminated?: { exitCode?: number; reason?: string; message?: string; startedAt?: string; finishedAt?: string };
}
interface RawCondition { type?: string; status?: string; reason?: string; message?: string; lastTransitionTime?: string }
interface RawPod {
  metadata?: ObjectMeta & { deletionTimestamp?: string };
  spec?: { nodeName?: string; containers?: { name: string }[] };
  status?: { phase?: string; startTime?: string; conditions?: RawCondition[]; containerStatuses?: { name: string; state?: RawState; lastState?: RawState; restartCount?: number }[] };
}

function state(s: RawState | undefined): ContainerStateView | undefined {
  if (!s) return undefined;
  if (s.running) return { running: s.running.startedAt ? { startedAt: s.running.startedAt } : {} };
  if (s.waiting) return { waiting: { ...(s.waiting.reason ? { reason: s.waiting.reason } : {}), ...(s.waiting.message ? { message: s.waiting.message } : {}) } };
  if (s.terminated) {
    const t = s.terminated;
    return { terminated: { ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}), ...(t.reason ? { reason: t.reason } : {}), ...(t.message ? { message: t.message } : {}), ...(t.startedAt ? { startedAt: t.startedAt } : {}), ...(t.finishedAt ? { finishedAt: t.finishedAt } : {}) } };
  }
  return undefined;
}

/** PodScheduled False/Unschedulable on a pod without a node: the scheduler found no node for it. */
function unschedulable(pod: RawPod): UnschedulableView | undefined {
  if (pod.spec?.nodeName) return undefined;
  const c = pod.status?.conditions?.find((x) => x.type === 'PodScheduled');
  if (c?.status !== 'False' || c.reason !== 'Unschedulable') return undefined;
  // Without a transition time (the scheduler always sets one), count from the pod's creation.
  const since = c.lastTransitionTime ?? pod.metadata?.creationTimestamp;
  return { ...(since ? { since } : {}), ...(c.message ? { message: c.message.slice(0, 512) } : {}) };
}

/** Shared by every running container of a pod that was not restored: nothing reads more of its state. */
const RUNNING: ContainerStateView = Object.freeze({ running: Object.freeze({}) });

/** Sibling pods' labels, owner and container names, node names and namespaces: one copy each. */
const shared = new SharedValues();

function sharedLabels(labels: Record<string, string>): Record<string, string> {
  const parts: string[] = [];
  for (const k in labels) parts.push(k, labels[k] ?? '');
  return shared.get(sharedKey('labels', parts), () => ({ ...labels }));
}

/**
 * A pod trimmed to the controller's needs (no spec beyond container names and node). Container
 * states in detail (times, exit codes, messages, last state) are read only to judge a restore, so
 * only restored pods keep them; of any other pod, which containers run is all checkpoints need —
 * about a fifth of the view, at 100,000 pods.
 */
export function podView(object: KubeObject): PodView {
  const pod = object as RawPod;
  const m = pod.metadata ?? {};
  const names = (pod.spec?.containers ?? []).map((c) => c.name);
  const view: PodView = {
    namespace: shared.string(m.namespace ?? ''), name: m.name ?? '', uid: m.uid ?? '',
    deleting: Boolean(m.deletionTimestamp),
    containers: shared.list('containers', names) as string[],
  };
  if (pod.spec?.nodeName) view.nodeName = shared.string(pod.spec.nodeName);
  if (pod.status?.phase) view.phase = shared.string(pod.status.phase);
  if (m.creationTimestamp) view.createdAt = m.creationTimestamp;
  // Most pods start the second they are created: one string for both then.
  if (pod.status?.startTime) view.startTime = pod.status.startTime === view.createdAt ? view.createdAt : pod.status.startTime;
  const stuck = unschedulable(pod);
  if (stuck) view.unschedulable = stuck;
  if (m.labels) view.labels = sharedLabels(m.labels);
  if (m.annotations) {
    // kubectl's last-applied copy can be large and is never read here.
    const annotations = { ...m.annotations };
    delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
    view.annotations = annotations;
  }
  if (m.ownerReferences) {
    const refs = m.ownerReferences;
    view.ownerReferences = shared.get(sharedKey('owners', refs.flatMap((r) => [r.apiVersion, r.kind, r.name, r.controller ? 'c' : ''])),
      () => refs.map((r) => ({ apiVersion: r.apiVersion, kind: r.kind, name: r.name, ...(r.controller ? { controller: true } : {}) })));
  }
  if (pod.status?.containerStatuses && !m.annotations?.[RESTORED_FROM]) {
    const running = pod.status.containerStatuses.filter((s) => s.state?.running).map((s) => s.name);
    view.containerStatuses = shared.get(sharedKey('running', running), () => running.map((name): ContainerStatusView => ({ name, state: RUNNING })));
  } else if (pod.status?.containerStatuses) {
    view.containerStatuses = pod.status.containerStatuses.map((s): ContainerStatusView => {
      const st = state(s.state);
      const last = state(s.lastState);
      return { name: s.name, ...(st ? { state: st } : {}), ...(last ? { lastState: last } : {}), ...(s.restartCount !== undefined ? { restartCount: s.restartCount } : {}) };
    });
  }
  return view;
}

export class ControllerCache implements ControllerView {
  readonly cluster: ClusterCache;
  readonly podStore: Informer<PodView>;
  readonly owners;

  constructor(client: KubeClient, log: Logger, onPodChange?: (now: PodView | undefined) => void) {
    this.cluster = new ClusterCache(client, log);
    this.owners = this.cluster.owners;
    this.podStore = new Informer(client, { path: '/api/v1/pods', transform: podView, ...(onPodChange ? { onChange: (_k: string, now: PodView | undefined) => onPodChange(now) } : {}) }, log);
  }

  start(signal: AbortSignal): void {
    this.cluster.start(signal);
    void this.podStore.run(signal);
  }

  notSynced(): string | undefined {
    const cluster = this.cluster.notSynced();
    if (!this.podStore.hasSynced) return cluster ? `${cluster}, pods` : 'caches not synced: pods';
    return cluster;
  }

  pods(): Iterable<PodView> { return this.podStore.values(); }
  checkpoints(): Iterable<Checkpoint> { return this.cluster.checkpointStore.values(); }
  checkpoint(namespace: string, name: string): Checkpoint | undefined { return this.cluster.checkpointStore.get(`${namespace}/${name}`); }
  checkpointsVersion(): number { return this.cluster.checkpointStore.version; }
  *nodes(): Iterable<{ name: string; unschedulable: boolean }> {
    for (const n of this.cluster.nodes()) yield { name: n.name, unschedulable: n.unschedulable };
  }
  *annotatedWorkloads(): Iterable<AnnotatedWorkload> {
    const stores: [OwnerKind, Iterable<[string, OwnerView]>][] = [
      ['Deployment', this.cluster.deploymentStore.entries()],
      ['StatefulSet', this.cluster.statefulSetStore.entries()],
      ['ReplicaSet', this.cluster.replicaSetStore.entries()],
    ];
    for (const [kind, entries] of stores) {
      for (const [key, view] of entries) {
        if (view.annotations?.[CHECKPOINT_REQUEST] === undefined) continue;
        const slash = key.indexOf('/');
        yield { kind, namespace: key.slice(0, slash), name: key.slice(slash + 1), view };
      }
    }
  }
  policies(): ReturnType<ClusterCache['policies']> { return this.cluster.policies(); }
  namespaceLabels(namespace: string): Record<string, string> | undefined { return this.cluster.namespaceLabels(namespace); }
}
