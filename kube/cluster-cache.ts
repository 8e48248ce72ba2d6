/**
 * Informer-backed snapshot of what admission and scheduling decisions read: Checkpoints,
 * RestorePolicies, Namespaces, ReplicaSets, Deployments, StatefulSets and Nodes — each
 * trimmed to the fields decisions use before it is stored.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { nodeFacts, sameNodeFacts, sameRestoreFacts, type NodeFacts } from '../api/compat.js';
import { effectivePolicy } from '../api/policy.js';
import type { Checkpoint, EffectivePolicy, Node, ObjectMeta, RestorePolicy, WorkloadRef } from '../api/types.js';
import type { OwnerKind, OwnerLookup, OwnerView } from '../api/workload.js';
import type { KubeClient } from './client.js';
import { Informer, type KubeObject } from './informer.js';
import { SharedValues } from './shared-values.js';

export type CacheKind = 'checkpoints' | 'policies' | 'namespaces' | 'replicasets' | 'deployments' | 'statefulsets' | 'nodes';

const PATHS: Record<CacheKind, string> = {
  checkpoints: '/apis/lazarus.dev/v1alpha1/checkpoints',
  policies: '/apis/lazarus.dev/v1alpha1/restorepolicies',
  namespaces: '/api/v1/namespaces',
  replicasets: '/apis/apps/v1/replicasets',
  deployments: '/apis/apps/v1/deployments',
  statefulsets: '/apis/apps/v1/statefulsets',
  nodes: '/api/v1/nodes',
};

function ownerView(object: KubeObject): OwnerView {
  const m = object.metadata as ObjectMeta | undefined;
  const view: OwnerView = {};
  if (m?.labels) view.labels = m.labels;
  if (m?.annotations) {
    // kubectl's last-applied copy can be large and is never read here.
    const { 'kubectl.kubernetes.io/last-applied-configuration': _dropped, ...rest } = m.annotations;
    view.annotations = rest;
  }
  if (m?.ownerReferences) view.ownerReferences = m.ownerReferences.map((r) => ({ apiVersion: r.apiVersion, kind: r.kind, name: r.name, ...(r.controller ? { controller: true } : {}) }));
  return view;
}

function trimCheckpoint(object: KubeObject, shared: SharedValues): Checkpoint {
  const cp = object as Checkpoint;
  const origin = cp.spec?.origin;
  return {
    metadata: { name: cp.metadata.name ?? '', namespace: cp.metadata.namespace ?? '' },
    // The checkpoints of one CPU model share their origin's ~90 flags, most of a stored Checkpoint.
    spec: origin && Array.isArray(origin.cpuFlags) ? { ...cp.spec, origin: { ...origin, cpuFlags: shared.list('cpu-flags', origin.cpuFlags) as string[] } } : cp.spec,
    ...(cp.status ? { status: cp.status } : {}),
  };
}

const indexKey = (namespace: string, workload: WorkloadRef, container: string): string =>
  `${namespace}\u0000${workload.kind}\u0000${workload.name}\u0000${container}`;
const checkpointIndexKey = (cp: Checkpoint): string => indexKey(cp.metadata.namespace ?? '', cp.spec.workload, cp.spec.container);

const EMPTY: readonly Checkpoint[] = [];

export interface ClusterCacheOptions {
  /** Only the informers of these run (the extender needs no Checkpoints, for one); default all. */
  kinds?: readonly CacheKind[];
  /**
   * Keep each Node's image names (what the extender scores with). Nothing else reads them, and
   * at 5,000 Nodes with 20 images each they are most of the Node store; default false.
   */
  nodeImages?: boolean;
}

export class ClusterCache implements OwnerLookup {
  readonly checkpointStore: Informer<Checkpoint>;
  readonly policyStore: Informer<EffectivePolicy>;
  readonly namespaceStore: Informer<Record<string, string> | undefined>;
  readonly replicaSetStore: Informer<OwnerView>;
  readonly deploymentStore: Informer<OwnerView>;
  readonly statefulSetStore: Informer<OwnerView>;
  readonly nodeStore: Informer<NodeFacts>;

  private readonly byWorkload = new Map<string, Checkpoint[]>();
  /** Checkpoint changes by namespace (for generation(namespace)); only ever grows, like versions. */
  private readonly checkpointChanges = new Map<string, number>();
  /** Node changes that can change canRestoreOn(): not a node's images (for generation()). */
  private nodeRestoreChanges = 0;
  private policyList: EffectivePolicy[] = [];
  private allSynced = false;
  readonly owners: OwnerLookup = this;

  private readonly kinds: readonly CacheKind[];

  constructor(client: KubeClient, log: Logger, options: ClusterCacheOptions = {}) {
    this.kinds = options.kinds ?? Object.keys(PATHS) as CacheKind[];
    const nodeOptions = { images: options.nodeImages ?? false, index: true };
    // Updates that change nothing a decision reads are not changes: they keep generation() still.
    const equal = isDeepStrictEqual;
    const flagLists = new SharedValues(1000);
    this.checkpointStore = new Informer(client, {
      path: PATHS.checkpoints, transform: (o) => trimCheckpoint(o, flagLists), equal,
      onChange: (_key, now, before) => this.reindex(now, before),
    }, log);
    this.policyStore = new Informer(client, {
      path: PATHS.policies, transform: (o) => effectivePolicy(o as RestorePolicy), equal,
      onChange: () => { this.policyList = [...this.policyStore.values()]; },
    }, log);
    // Namespaces and owners are read for their metadata alone: their specs (a ReplicaSet's whole
    // pod template) never cross the wire.
    const metadataOnly = true;
    this.namespaceStore = new Informer(client, { path: PATHS.namespaces, transform: (o) => (o.metadata as ObjectMeta | undefined)?.labels, equal, metadataOnly }, log);
    this.replicaSetStore = new Informer(client, { path: PATHS.replicasets, transform: ownerView, equal, metadataOnly }, log);
    this.deploymentStore = new Informer(client, { path: PATHS.deployments, transform: ownerView, equal, metadataOnly }, log);
    this.statefulSetStore = new Informer(client, { path: PATHS.statefulsets, transform: ownerView, equal, metadataOnly }, log);
    this.nodeStore = new Informer(client, {
      path: PATHS.nodes, transform: (o) => nodeFacts(o as Node, nodeOptions), equal: sameNodeFacts,
      onChange: (_key, now, before) => { if (!now || !before || !sameRestoreFacts(now, before)) this.nodeRestoreChanges++; },
    }, log);
  }

  /**
   * Changes whenever anything an admission decision reads does; equal numbers mean an equal
   * view. Nodes count only when what canRestoreOn() reads changes (not their images). With a
   * namespace, the view of a decision about a pod there: Checkpoints count only in their own
   * namespace (a pod never restores from another's), everything else counts everywhere.
   */
  generation(namespace?: string): number {
    let sum = 0;
    for (const kind of this.kinds) {
      if (kind === 'checkpoints' && namespace !== undefined) sum += this.checkpointChanges.get(namespace) ?? 0;
      else if (kind === 'nodes') sum += this.nodeRestoreChanges;
      else sum += this.informer(kind).version;
    }
    return sum;
  }

  private informer(kind: CacheKind): Pick<Informer<unknown>, 'run' | 'hasSynced' | 'version'> {
    switch (kind) {
      case 'checkpoints': return this.checkpointStore;
      case 'policies': return this.policyStore;
      case 'namespaces': return this.namespaceStore;
      case 'replicasets': return this.replicaSetStore;
      case 'deployments': return this.deploymentStore;
      case 'statefulsets': return this.statefulSetStore;
      case 'nodes': return this.nodeStore;
    }
  }

  /** Starts the informers; they stop when `signal` aborts. Resolves when all have stopped. */
  async start(signal: AbortSignal): Promise<void> {
    await Promise.all(this.kinds.map((kind) => this.informer(kind).run(signal)));
  }

  /**
   * Undefined when every cache has synced; otherwise which have not. Asked on every admission:
   * an informer never un-syncs (a relist keeps serving the old items), so once all have, the
   * answer is remembered.
   */
  notSynced(): string | undefined {
    if (this.allSynced) return undefined;
    const pending = this.kinds.filter((kind) => !this.informer(kind).hasSynced);
    if (pending.length === 0) { this.allSynced = true; return undefined; }
    return `caches not synced: ${pending.join(', ')}`;
  }

  hasSynced(kind: CacheKind): boolean { return this.informer(kind).hasSynced; }

  private reindex(now: Checkpoint | undefined, before: Checkpoint | undefined): void {
    const namespace = (now ?? before)?.metadata.namespace ?? '';
    this.checkpointChanges.set(namespace, (this.checkpointChanges.get(namespace) ?? 0) + 1);
    if (before) {
      const key = checkpointIndexKey(before);
      const list = this.byWorkload.get(key)?.filter((c) => c.metadata.name !== before.metadata.name);
      if (list?.length) this.byWorkload.set(key, list);
      else this.byWorkload.delete(key);
    }
    if (now) {
      // A new list, never a push: a list once handed out stays as it was (ClusterView.checkpoints).
      const key = checkpointIndexKey(now);
      const list = this.byWorkload.get(key);
      this.byWorkload.set(key, list ? [...list, now] : [now]);
    }
  }

  // ---- ClusterView ---------------------------------------------------------------------

  policies(): readonly EffectivePolicy[] { return this.policyList; }
  namespaceLabels(namespace: string): Record<string, string> | undefined { return this.namespaceStore.get(namespace); }
  checkpoints(namespace: string, workload: WorkloadRef, container: string): readonly Checkpoint[] {
    return this.byWorkload.get(indexKey(namespace, workload, container)) ?? EMPTY;
  }
  nodes(): Iterable<NodeFacts> { return this.nodeStore.values(); }
  node(name: string): NodeFacts | undefined { return this.nodeStore.get(name); }

  get(kind: OwnerKind, namespace: string, name: string): OwnerView | undefined {
    const key = `${namespace}/${name}`;
    switch (kind) {
      case 'ReplicaSet': return this.replicaSetStore.get(key);
      case 'Deployment': return this.deploymentStore.get(key);
      case 'StatefulSet': return this.statefulSetStore.get(key);
    }
  }
}
