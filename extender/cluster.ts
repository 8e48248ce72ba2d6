/**
 * With --kubeconfig: the caches behind NodeNames requests and policy selection. Nodes are kept
 * as NodeFacts (transformed once per watch event, not per request), RestorePolicies as
 * EffectivePolicy, Namespaces as their labels only.
 */
import type { Logger } from 'pino';
import { nodeFacts, type NodeFacts } from '../api/compat.js';
import { effectivePolicy, selectPolicy } from '../api/policy.js';
import * as K from '../api/keys.js';
import type { EffectivePolicy, Node, RestorePolicy } from '../api/types.js';
import type { KubeClient } from '../kube/client.js';
import { Informer } from '../kube/informer.js';
import type { WirePod } from './protocol.js';

export interface ClusterLookups {
  policyFor(pod: WirePod): EffectivePolicy;
  nodeByName(name: string): NodeFacts | undefined;
  nodeCacheProblem(): string | undefined;
  notReadyReason(): string | undefined;
  /** Runs the informers until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
}

type Labels = Readonly<Record<string, string>>;

/**
 * The workload labels a policy's workloadSelector sees. The pod's own labels for now; the
 * owner-chain lookup the webhook uses (api/workload.ts resolveWorkload) can replace this one
 * function without touching the server.
 */
export function workloadLabelsOf(pod: WirePod): Labels | undefined {
  return pod.metadata?.labels ?? undefined;
}

export function clusterLookups(client: KubeClient, log: Logger): ClusterLookups {
  const nodes = new Informer<NodeFacts>(client, { path: '/api/v1/nodes', transform: (o) => nodeFacts(o as Node, { index: true }) }, log);
  let policyList: EffectivePolicy[] | undefined;
  const policies = new Informer<EffectivePolicy>(client, {
    path: `/apis/${K.GROUP}/${K.VERSION}/restorepolicies`,
    transform: (o) => effectivePolicy(o as RestorePolicy),
    onChange: () => { policyList = undefined; },
  }, log);
  const namespaces = new Informer<Labels>(client, {
    path: '/api/v1/namespaces',
    transform: (o) => (o as { metadata?: { labels?: Labels } }).metadata?.labels ?? {},
  }, log);

  return {
    policyFor(pod) {
      policyList ??= [...policies.values()];
      const namespace = pod.metadata?.namespace;
      return selectPolicy(policyList, {
        namespaceLabels: typeof namespace === 'string' ? namespaces.get(namespace) : undefined,
        workloadLabels: workloadLabelsOf(pod),
      });
    },
    nodeByName: (name) => nodes.get(name),
    nodeCacheProblem: () => (nodes.hasSynced ? undefined : 'lazarus extender: node cache not synced yet'),
    notReadyReason() {
      const waiting = [[nodes, 'nodes'], [policies, 'restorepolicies'], [namespaces, 'namespaces']] as const;
      const names = waiting.filter(([informer]) => !informer.hasSynced).map(([, name]) => name);
      return names.length > 0 ? `caches not synced: ${names.join(', ')}` : undefined;
    },
    async run(signal) {
      await Promise.all([nodes.run(signal), policies.run(signal), namespaces.run(signal)]);
    },
  };
}
