/** Small builders for test data: plain objects shaped like the API server's. */
import { nodeFacts, type NodeFacts } from '../../api/compat.js';
import { effectivePolicy } from '../../api/policy.js';
import { specHash } from '../../api/spec-hash.js';
import type { Checkpoint, Container, EffectivePolicy, Node, Pod, RestorePolicy, WorkloadRef } from '../../api/types.js';
import type { OwnerKind, OwnerView } from '../../api/workload.js';
import type { ClusterView } from '../../webhook/decide.js';

export const NOW = Date.parse('2026-11-27T12:00:00Z');
export const ago = (ms: number): string => new Date(NOW - ms).toISOString();
export const MINUTE = 60_000;
/** Where checkpoint images live in these tests: the webhook's --registry in every test that decides. */
export const REGISTRY = 'registry.example/lazarus';
export const HOUR = 60 * MINUTE;

export const ORIGIN = Object.freeze({
  node: 'node-7', architecture: 'amd64', kernelVersion: '6.8.0-45-generic', criuVersion: 40101,
  runtime: 'cri-o://1.33.2', cgroup: 'v2', cpuFlags: ['fpu', 'sse4_2', 'avx2'],
});

export function container(name = 'app', image = 'registry.example/web:1.4', extra: Partial<Container> = {}): Container {
  return { name, image, ...extra };
}

/** A pod as a ReplicaSet creates it: generateName, no name, owner reference to the RS. */
export function rsPod(containers: Container[] = [container()], rs = 'web-7d9c', annotations?: Record<string, string>): Pod {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      generateName: `${rs}-`, namespace: 'shop',
      labels: { app: 'web', 'pod-template-hash': rs.split('-').pop() ?? '' },
      ...(annotations ? { annotations } : {}),
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs, uid: 'u1', controller: true }],
    },
    spec: { containers },
  };
}

export function checkpoint(name: string, opts: {
  container?: Container; workload?: WorkloadRef; namespace?: string; takenAt?: string; phase?: Checkpoint['status'] extends infer S ? S extends { phase?: infer P } ? P : never : never;
  sourcePod?: string; specHash?: string; origin?: Partial<typeof ORIGIN>;
} = {}): Checkpoint {
  const c = opts.container ?? container();
  return {
    apiVersion: 'lazarus.dev/v1alpha1', kind: 'Checkpoint',
    metadata: { name, namespace: opts.namespace ?? 'shop' },
    spec: {
      workload: opts.workload ?? { kind: 'Deployment', name: 'web' },
      container: c.name,
      sourcePod: opts.sourcePod ?? 'web-7d9c-abcde',
      image: `registry.example/lazarus/shop/web-${c.name}@sha256:${'a'.repeat(64)}`,
      baseImage: c.image ?? '',
      specHash: opts.specHash ?? specHash(c),
      takenAt: opts.takenAt ?? ago(4 * MINUTE),
      origin: { ...ORIGIN, cpuFlags: [...ORIGIN.cpuFlags], ...opts.origin },
    },
    status: { phase: opts.phase ?? 'Ready' },
  };
}

export function node(name: string, opts: {
  arch?: string; kernel?: string; runtime?: string; criu?: number | undefined; cpuFlags?: string | undefined;
  capable?: boolean; capableReason?: string; ready?: boolean; unschedulable?: boolean; images?: string[];
  /** More labels (e.g. a pool); they win over the agent's. */
  labels?: Record<string, string>;
  taints?: { key: string; value?: string; effect: string }[];
} = {}): Node {
  const labels: Record<string, string> = { 'kubernetes.io/arch': opts.arch ?? 'amd64' };
  if (opts.criu !== undefined || !('criu' in opts)) labels['lazarus.dev/criu-version'] = String(opts.criu ?? 40101);
  labels['lazarus.dev/restore-capable'] = String(opts.capable ?? true);
  labels['lazarus.dev/runtime'] = (opts.runtime ?? 'cri-o://1.33.2').split('://')[0] ?? '';
  Object.assign(labels, opts.labels);
  const annotations: Record<string, string> = {};
  if (opts.capableReason !== undefined) annotations['lazarus.dev/restore-capable-reason'] = opts.capableReason;
  if (opts.cpuFlags !== undefined || !('cpuFlags' in opts)) annotations['lazarus.dev/cpu-flags'] = opts.cpuFlags ?? 'fpu sse4_2 avx2 avx512f';
  return {
    metadata: { name, labels, annotations },
    spec: { ...(opts.unschedulable ? { unschedulable: true } : {}), ...(opts.taints ? { taints: opts.taints } : {}) },
    status: {
      nodeInfo: { architecture: opts.arch ?? 'amd64', kernelVersion: opts.kernel ?? '6.8.0-45-generic', containerRuntimeVersion: opts.runtime ?? 'cri-o://1.33.2' },
      conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }],
      images: (opts.images ?? []).map((n) => ({ names: [n], sizeBytes: 1 })),
    },
  };
}

export function policy(name: string, spec: RestorePolicy['spec'] = {}): EffectivePolicy {
  return effectivePolicy({ metadata: { name }, spec });
}

export interface ViewData {
  policies?: EffectivePolicy[];
  namespaces?: Record<string, Record<string, string>>;
  owners?: Partial<Record<OwnerKind, Record<string, OwnerView>>>;
  checkpoints?: Checkpoint[];
  nodes?: Node[];
}

/** A ClusterView over plain arrays, as the informer cache offers it. */
export function view(data: ViewData = {}): ClusterView {
  const nodes: NodeFacts[] = (data.nodes ?? [node('node-1')]).map((n) => nodeFacts(n));
  const defaultOwners: Partial<Record<OwnerKind, Record<string, OwnerView>>> = {
    ReplicaSet: { 'shop/web-7d9c': { labels: { app: 'web' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } },
    Deployment: { 'shop/web': { labels: { app: 'web' }, annotations: { 'lazarus.dev/restore': 'enabled' } } },
  };
  const owners = data.owners ?? defaultOwners;
  return {
    policies: () => data.policies ?? [],
    namespaceLabels: (ns) => data.namespaces?.[ns] ?? { 'kubernetes.io/metadata.name': ns },
    owners: { get: (kind, ns, name) => owners[kind]?.[`${ns}/${name}`] },
    checkpoints: (ns, w, c) => (data.checkpoints ?? []).filter((cp) => cp.metadata.namespace === ns
      && cp.spec.workload.kind === w.kind && cp.spec.workload.name === w.name && cp.spec.container === c),
    nodes: () => nodes,
  };
}
