/**
 * Fake Nodes: Node objects with the facts a kubelet and the Lazarus agent would publish, created
 * through the API. Nothing runs on them; the scheduler binds pods to them and that is all. The
 * demo makes them on any cluster it is pointed at (test/harness/nodes.ts creates them for tests).
 */
import type { Node } from '../api/types.js';
import { LABEL_ARCH, NODE_CPU_FLAGS, NODE_CRIU, NODE_CRIU_VERSION, NODE_RESTORE_CAPABLE, NODE_CGROUP, NODE_RUNTIME } from '../api/keys.js';
import { criuCode, runtimeLabelValue } from '../api/versions.js';

export interface FakeImage { names: string[]; sizeBytes?: number }

export interface FakeNodeSpec {
  name: string;
  /** status.nodeInfo.architecture and label kubernetes.io/arch; default amd64. */
  arch?: string;
  /** status.nodeInfo.kernelVersion; default 6.8.0-45-generic. */
  kernel?: string;
  /** status.nodeInfo.containerRuntimeVersion; default cri-o://1.33.2. */
  runtime?: string;
  /** CRIU version as the agent reports it (e.g. 4.1.1): label lazarus.dev/criu-version and annotation lazarus.dev/criu. Absent: no agent facts. */
  criu?: string;
  cpuFlags?: readonly string[];
  /** Label lazarus.dev/restore-capable; default true when `criu` is given. */
  restoreCapable?: boolean;
  cgroup?: 'v1' | 'v2';
  /** status.images: plain names or full entries. */
  images?: ReadonlyArray<string | FakeImage>;
  /**
   * InternalIP; default 10.255.0.1. Never dialled directly: the API server refuses loopback node
   * addresses, so the harness proxies any ADDRESS:kubeletPort to 127.0.0.1:kubeletPort (node-proxy.ts).
   */
  address?: string;
  /** status.daemonEndpoints.kubeletEndpoint.Port; default 10250. */
  kubeletPort?: number;
  /** Ready condition; default true. A not-ready node also gets the not-ready NoSchedule taint. */
  ready?: boolean;
  /** spec.unschedulable (cordoned). */
  unschedulable?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Allocatable and capacity; defaults cpu 8, memory 32Gi, pods 110. */
  cpu?: string;
  memory?: string;
  pods?: string;
  /** Timestamps for conditions; default now. */
  now?: Date;
}

export const FAKE_KUBELET_VERSION = 'v1.35.4';
export const FAKE_NODE_ADDRESS = '10.255.0.1';

/** The Node object (metadata + spec) and its status, from the spec. Pure. */
export function fakeNode(spec: FakeNodeSpec): { node: Node; status: Record<string, unknown> } {
  const arch = spec.arch ?? 'amd64';
  const labels: Record<string, string> = {
    [LABEL_ARCH]: arch,
    'kubernetes.io/os': 'linux',
    'kubernetes.io/hostname': spec.name,
    'beta.kubernetes.io/arch': arch,
    'beta.kubernetes.io/os': 'linux',
  };
  const annotations: Record<string, string> = {};
  if (spec.criu !== undefined) {
    const code = criuCode(spec.criu);
    if (code === undefined) throw new Error(`fake node ${spec.name}: criu "${spec.criu}" is not a version like 4.1.1`);
    labels[NODE_CRIU_VERSION] = String(code);
    annotations[NODE_CRIU] = spec.criu;
  }
  const restoreCapable = spec.restoreCapable ?? (spec.criu !== undefined ? true : undefined);
  if (restoreCapable !== undefined) labels[NODE_RESTORE_CAPABLE] = String(restoreCapable);
  // The agent names the runtime in a label wherever it publishes facts.
  const runtimeLabel = runtimeLabelValue(spec.runtime ?? 'cri-o://1.33.2');
  if (spec.criu !== undefined && runtimeLabel !== undefined) labels[NODE_RUNTIME] = runtimeLabel;
  if (spec.cpuFlags) annotations[NODE_CPU_FLAGS] = spec.cpuFlags.join(' ');
  if (spec.cgroup) annotations[NODE_CGROUP] = spec.cgroup;
  Object.assign(labels, spec.labels);
  Object.assign(annotations, spec.annotations);

  const ready = spec.ready ?? true;
  const taints = ready ? [] : [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }];
  const now = (spec.now ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z');
  const resources = { cpu: spec.cpu ?? '8', memory: spec.memory ?? '32Gi', pods: spec.pods ?? '110', 'ephemeral-storage': '100Gi' };
  const condition = (type: string, status: string, reason: string, message: string): Record<string, string> => ({ type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: now });
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: spec.name, labels, annotations },
    spec: { ...(spec.unschedulable ? { unschedulable: true } : {}), ...(taints.length ? { taints } : {}) },
  } as unknown as Node;
  const status = {
    capacity: resources,
    allocatable: resources,
    conditions: [
      condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
      ready ? condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status')
        : condition('Ready', 'False', 'KubeletNotReady', 'fake node marked not ready'),
    ],
    addresses: [{ type: 'InternalIP', address: spec.address ?? FAKE_NODE_ADDRESS }, { type: 'Hostname', address: spec.name }],
    daemonEndpoints: { kubeletEndpoint: { Port: spec.kubeletPort ?? 10250 } },
    nodeInfo: {
      machineID: `fake-${spec.name}`, systemUUID: `fake-${spec.name}`, bootID: `fake-${spec.name}`,
      kernelVersion: spec.kernel ?? '6.8.0-45-generic',
      osImage: 'Lazarus fake node', containerRuntimeVersion: spec.runtime ?? 'cri-o://1.33.2',
      kubeletVersion: FAKE_KUBELET_VERSION, kubeProxyVersion: '', operatingSystem: 'linux', architecture: arch,
    },
    images: (spec.images ?? []).map((i) => (typeof i === 'string' ? { names: [i], sizeBytes: 10_000_000 } : { names: i.names, sizeBytes: i.sizeBytes ?? 10_000_000 })),
  };
  return { node, status };
}

/** Where kubelets keep their heartbeat Leases, one per node, named after it. */
export const NODE_LEASE_NAMESPACE = 'kube-node-lease';

/** How often the demo renews its nodes' Leases: well inside the default 40-50 s grace period. */
export const HEARTBEAT_MS = 5_000;

/** `2026-11-27T12:00:00.123000Z`: a Lease's MicroTime. */
export function microTime(at: number): string {
  return new Date(at).toISOString().replace(/Z$/, '000Z');
}

/**
 * The heartbeat Lease a kubelet keeps for its node. The node-lifecycle controller marks a node
 * NotReady (and taints it unreachable) once neither its Lease nor its Ready condition has been
 * renewed for --node-monitor-grace-period (40-50 s by default); renewing this Lease, as the demo
 * does while it runs, keeps a fake node Ready. Owned by the Node, so it goes with it. Pure.
 */
export function nodeLease(node: { name: string; uid: string }, now: number, durationSeconds: number): Record<string, unknown> {
  return {
    apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
    metadata: { name: node.name, namespace: NODE_LEASE_NAMESPACE, ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: node.name, uid: node.uid }] },
    spec: { holderIdentity: node.name, leaseDurationSeconds: durationSeconds, renewTime: microTime(now) },
  };
}
