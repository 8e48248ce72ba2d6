/**
 * What the demo creates, as plain data: a pod that ran on a node that is gone (node-lost), its
 * checkpoints, and nodes that differ in every way Lazarus cares about. Pure: the clock and the
 * node-name prefix are arguments.
 */
import { createHash } from 'node:crypto';
import * as K from '../api/keys.js';
import { specHash } from '../api/spec-hash.js';
import type { Checkpoint, Container, OriginFacts, RestorePolicy } from '../api/types.js';
import type { FakeNodeSpec } from './fake-nodes.js';

export const NAMESPACE = 'lazarus-demo';
export const APP = 'web';
export const IMAGE = 'registry.example/web:1.4';
export const PREVIOUS_IMAGE = 'registry.example/web:1.3';
export const CONTAINER: Container = { name: 'app', image: IMAGE, args: ['--serve'] };
/**
 * Where the demo's checkpoint images "live": nothing is pulled (the nodes are fake), but the
 * webhook restores only digest references under a trusted prefix, so the demo's RestorePolicy
 * (demoPolicy) names this one for the demo namespace.
 */
export const CHECKPOINT_REGISTRY = 'registry.example/lazarus';
/** The demo's RestorePolicy (cluster-scoped), named like everything the demo makes. */
export const POLICY = 'lazarus-demo';
/**
 * The fake nodes' InternalIP: TEST-NET-1 (RFC 5737), documentation only and never routed, so a
 * metrics scraper in a user's cluster that dials a demo node reaches nobody.
 */
export const DEMO_NODE_ADDRESS = '192.0.2.1';

/**
 * Everything the demo creates carries this label (=true): the namespace, the nodes, the policy.
 * Cleanup removes only objects with the demo's names and this label. The nodes also carry a
 * NoSchedule taint of the same key; the Deployment selects and tolerates them. On an existing
 * cluster that keeps the demo pod off real nodes and real pods off the demo nodes (nothing runs
 * on them).
 */
export const DEMO_LABEL = 'lazarus.dev/demo';

export const ORIGIN: OriginFacts = {
  node: 'node-lost', architecture: 'amd64', kernelVersion: '6.8.0-45-generic', criuVersion: 40101,
  runtime: 'cri-o://1.33.2', cgroup: 'v2', cpuFlags: ['fpu', 'sse4_2', 'avx2'],
};

export interface DemoNode extends FakeNodeSpec {
  /** What makes this node different, for the narration. */
  note: string;
}

const FLAGS = ['fpu', 'sse4_2', 'avx2', 'avx512f'];

/** Six nodes: two can restore the checkpoint (one better than the other), four cannot, each for one reason. */
export function demoNodes(prefix = ''): DemoNode[] {
  const common = { labels: { [DEMO_LABEL]: 'true' }, address: DEMO_NODE_ADDRESS };
  return [
    { name: 'node-exact', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'cri-o://1.33.2', cpuFlags: FLAGS, note: 'same kernel, CRIU and runtime as node-lost' },
    { name: 'node-newer', kernel: '6.8.0-50-generic', criu: '4.2.0', runtime: 'cri-o://1.34.1', cpuFlags: FLAGS, images: [IMAGE], note: 'newer kernel, CRIU and runtime; has web:1.4 pulled' },
    { name: 'node-arm64', arch: 'arm64', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'cri-o://1.33.2', cpuFlags: ['fp', 'asimd'], note: 'another architecture' },
    { name: 'node-old-criu', kernel: '6.8.0-45-generic', criu: '3.17.1', runtime: 'cri-o://1.33.2', cpuFlags: FLAGS, note: 'CRIU older than the checkpoint\'s' },
    { name: 'node-no-avx2', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'cri-o://1.33.2', cpuFlags: ['fpu', 'sse4_2'], note: 'older CPU, no avx2' },
    { name: 'node-containerd', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'containerd://2.1.4', cpuFlags: FLAGS, note: 'containerd instead of CRI-O' },
  ].map((n) => ({ ...n, ...common, name: `${prefix}${n.name}` }));
}

/** The taint every demo node carries (see DEMO_LABEL). */
export const DEMO_TAINT = { key: DEMO_LABEL, value: 'true', effect: 'NoSchedule' } as const;

/** `web-app-20261127t120000z`: the name the agent gives a checkpoint (DESIGN §3). */
export function checkpointName(container: string, at: number): string {
  return `${APP}-${container}-${new Date(at).toISOString().replace(/\.\d+Z$/, 'z').replace(/[-:]/g, '').toLowerCase()}`;
}

export interface DemoCheckpoint {
  checkpoint: Checkpoint;
  /** Status to set after creation (status is a subresource). */
  status: NonNullable<Checkpoint['status']>;
}

/**
 * Four checkpoints of the app container, of which exactly one is usable and newest: the
 * newest is Failed, one is older, and one was taken from the previous image (other spec hash).
 */
export function demoCheckpoints(now: number): DemoCheckpoint[] {
  const make = (agoMs: number, container: Container, sourcePod: string, status: DemoCheckpoint['status']): DemoCheckpoint => {
    const takenAt = now - agoMs;
    return {
      checkpoint: {
        apiVersion: K.API_VERSION, kind: 'Checkpoint',
        metadata: {
          name: checkpointName(container.name, takenAt), namespace: NAMESPACE,
          labels: { [K.CHECKPOINT_WORKLOAD]: APP, [K.CHECKPOINT_WORKLOAD_KIND]: 'Deployment', [K.CHECKPOINT_CONTAINER]: container.name },
        },
        spec: {
          workload: { kind: 'Deployment', name: APP }, container: container.name, sourcePod,
          image: `${CHECKPOINT_REGISTRY}/${NAMESPACE}/${APP}-${container.name}@sha256:${digest(takenAt)}`,
          baseImage: container.image ?? '', specHash: specHash(container), takenAt: new Date(takenAt).toISOString(), origin: ORIGIN,
        },
      },
      status,
    };
  };
  const ready = { phase: 'Ready', restores: 0 } as const;
  return [
    make(30_000, CONTAINER, 'web-5f7c9d-x2k4q', { phase: 'Failed', reason: 'image push failed: registry answered 503', restores: 0 }),
    make(150_000, CONTAINER, 'web-5f7c9d-x2k4q', ready),
    make(3_600_000, CONTAINER, 'web-5f7c9d-x2k4q', ready),
    make(5 * 3_600_000, { ...CONTAINER, image: PREVIOUS_IMAGE }, 'web-6b8f4a-m9z7t', ready),
  ];
}

/** A stable digest per checkpoint (there is no registry here: nothing is pulled). */
function digest(takenAt: number): string {
  return createHash('sha256').update(`${NAMESPACE}/${APP}@${takenAt}`).digest('hex');
}

/** The Deployment, annotated on its own metadata as `kubectl annotate deploy/web lazarus.dev/restore=enabled` does. */
export function demoDeployment(): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name: APP, namespace: NAMESPACE, labels: { app: APP }, annotations: { [K.RESTORE]: 'enabled' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: APP } },
      template: {
        metadata: { labels: { app: APP } },
        spec: {
          containers: [CONTAINER],
          nodeSelector: { [DEMO_LABEL]: 'true' },
          tolerations: [{ key: DEMO_TAINT.key, operator: 'Equal', value: DEMO_TAINT.value, effect: DEMO_TAINT.effect }],
        },
      },
    },
  };
}

/** The highest priority a RestorePolicy can have (int32): the demo's own policy wins in its namespace. */
export const DEMO_POLICY_PRIORITY = 2_147_483_647;

/**
 * The demo's RestorePolicy, for its namespace only: it trusts CHECKPOINT_REGISTRY (whatever the
 * installed webhook's --registry or the cluster's policies say), and keeps the installed
 * controller out of the demo: no checkpoint on drain (cordoning a demo node would ask an agent
 * that does not exist), and room for all of the demo's checkpoints.
 */
export function demoPolicy(): RestorePolicy {
  return {
    apiVersion: K.API_VERSION, kind: 'RestorePolicy',
    metadata: { name: POLICY, labels: { [DEMO_LABEL]: 'true' } },
    spec: {
      priority: DEMO_POLICY_PRIORITY,
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NAMESPACE } },
      checkpoint: { registry: CHECKPOINT_REGISTRY, onDrain: false, retain: 10 },
    },
  };
}
