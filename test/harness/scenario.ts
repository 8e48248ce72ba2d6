/**
 * The objects of a restore scenario, as a user and the agent would create them: a Ready
 * Checkpoint whose spec hash matches a container, an annotated Deployment, and its live pods.
 */
import * as K from '../../api/keys.js';
import { specHash } from '../../api/spec-hash.js';
import type { Checkpoint, Container, OriginFacts, Pod } from '../../api/types.js';
import type { KubeClient } from '../../kube/client.js';
import { waitFor } from './wait.js';

/** The node the checkpoints were taken on; it is gone, as after a drain or a lost node. */
export const ORIGIN: OriginFacts = { node: 'node-lost', architecture: 'amd64', kernelVersion: '6.8.0-45-generic', criuVersion: 40101, runtime: 'cri-o://1.33.2', cgroup: 'v2', cpuFlags: ['fpu', 'sse4_2', 'avx2'] };
export const IMAGE = 'registry.example/web:1.4';
export const CONTAINER: Container = { name: 'app', image: IMAGE, args: ['--serve'] };

export interface CheckpointOptions {
  workload?: string;
  container?: Container;
  takenAt?: Date;
  origin?: Partial<OriginFacts>;
  sourcePod?: string;
  /** spec.image instead of checkpointImage(): e.g. one the webhook must not trust. */
  image?: string;
}

/** The checkpoint image a scenario checkpoint names (by digest, as the agent records it). */
export function checkpointImage(ns: string, workload: string, container: string): string {
  return `registry.example/lazarus/${ns}/${workload}-${container}@sha256:${'b'.repeat(64)}`;
}

/** Created, then made Ready through the status subresource, as the agent does. */
export async function createReadyCheckpoint(client: KubeClient, ns: string, name: string, opts: CheckpointOptions = {}): Promise<Checkpoint> {
  const c = opts.container ?? CONTAINER;
  const workload = opts.workload ?? 'web';
  const body: Checkpoint = {
    apiVersion: K.API_VERSION, kind: 'Checkpoint',
    metadata: { name, namespace: ns, labels: { [K.CHECKPOINT_WORKLOAD]: workload, [K.CHECKPOINT_CONTAINER]: c.name } },
    spec: {
      workload: { kind: 'Deployment', name: workload }, container: c.name, sourcePod: opts.sourcePod ?? `${workload}-old-abcde`,
      image: opts.image ?? checkpointImage(ns, workload, c.name),
      baseImage: c.image ?? '', specHash: specHash(c), takenAt: (opts.takenAt ?? new Date(Date.now() - 120_000)).toISOString(),
      origin: { ...ORIGIN, ...opts.origin },
    },
  };
  await client.request('POST', `/apis/${K.API_VERSION}/namespaces/${ns}/checkpoints`, { body });
  return client.request<Checkpoint>('PATCH', `/apis/${K.API_VERSION}/namespaces/${ns}/checkpoints/${name}/status`, {
    body: { status: { phase: 'Ready', restores: 0 } }, contentType: 'application/merge-patch+json',
  });
}

export interface DeploymentOptions { annotations?: Record<string, string>; container?: Container; labels?: Record<string, string>; nodeSelector?: Record<string, string> }

/** One replica of `container`, pods labelled app=<name>. */
export async function createDeployment(client: KubeClient, ns: string, name: string, opts: DeploymentOptions = {}): Promise<void> {
  await client.request('POST', `/apis/apps/v1/namespaces/${ns}/deployments`, {
    body: {
      apiVersion: 'apps/v1', kind: 'Deployment',
      metadata: { name, namespace: ns, ...(opts.annotations ? { annotations: opts.annotations } : {}), labels: { app: name, ...opts.labels } },
      spec: { replicas: 1, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [opts.container ?? CONTAINER], ...(opts.nodeSelector ? { nodeSelector: opts.nodeSelector } : {}) } } },
    },
  });
}

export type LivePod = Pod & { spec: Pod['spec'] & { nodeName?: string }; metadata: Pod['metadata'] & { deletionTimestamp?: string } };

/** Pods of app=<app> that are not being deleted. */
export async function livePods(client: KubeClient, ns: string, app: string): Promise<LivePod[]> {
  const list = await client.request<{ items: LivePod[] }>('GET', `/api/v1/namespaces/${ns}/pods`, { query: { labelSelector: `app=${app}` } });
  return list.items.filter((p) => !p.metadata.deletionTimestamp);
}

/** Waits until exactly one live pod of `app` satisfies `pick`, and it is bound. */
export function boundPod(client: KubeClient, ns: string, app: string, pick: (p: LivePod) => boolean = () => true): Promise<LivePod> {
  return waitFor(async () => {
    const live = (await livePods(client, ns, app)).filter(pick);
    return live.length === 1 && live[0]?.spec.nodeName ? live[0] : undefined;
  }, { timeoutMs: 30_000, description: `a bound pod of ${ns}/${app}` });
}
