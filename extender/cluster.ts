/**
 * With --kubeconfig: the caches behind NodeNames requests and policy selection — the same
 * ClusterCache the webhook uses (without Checkpoints), so both find a pod's policy the same
 * way: through its owner chain to the workload's labels.
 */
import type { Logger } from 'pino';
import type { NodeFacts } from '../api/compat.js';
import { selectPolicy } from '../api/policy.js';
import { resolveWorkload } from '../api/workload.js';
import type { EffectivePolicy, ObjectMeta } from '../api/types.js';
import type { KubeClient } from '../kube/client.js';
import { ClusterCache } from '../kube/cluster-cache.js';
import { NameIndex } from './name-index.js';
import type { WirePod } from './protocol.js';

export interface ClusterLookups {
  policyFor(pod: WirePod): EffectivePolicy;
  nodeByName(name: string): NodeFacts | undefined;
  /** The same nodes for NodeNames requests read in place; rebuilt when the nodes change. */
  nameIndex(): NameIndex;
  nodeCacheProblem(): string | undefined;
  notReadyReason(): string | undefined;
  /** Runs the informers until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
}

function metaOf(pod: WirePod): ObjectMeta {
  const meta = pod.metadata;
  return typeof meta === 'object' && meta !== null ? meta as ObjectMeta : {};
}

/** Policy selection over any ClusterCache-shaped view; exported for tests. */
export function policyForPod(cache: Pick<ClusterCache, 'policies' | 'namespaceLabels' | 'get'>, pod: WirePod): EffectivePolicy {
  const meta = metaOf(pod);
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : '';
  const name = typeof meta.name === 'string' ? meta.name : '';
  const workload = resolveWorkload({ metadata: meta }, name, namespace, cache);
  return selectPolicy(cache.policies(), { namespaceLabels: cache.namespaceLabels(namespace), workloadLabels: workload.labels });
}

export function clusterLookups(client: KubeClient, log: Logger): ClusterLookups {
  const cache = new ClusterCache(client, log, { kinds: ['policies', 'namespaces', 'replicasets', 'deployments', 'statefulsets', 'nodes'], nodeImages: true });
  let index: NameIndex | undefined;
  let indexedVersion = -1;
  return {
    nameIndex: () => {
      // Node updates that change no facts do not count (ClusterCache), so rebuilds are rare.
      if (!index || indexedVersion !== cache.nodeStore.version) {
        index = new NameIndex(cache.nodes());
        indexedVersion = cache.nodeStore.version;
      }
      return index;
    },
    policyFor: (pod) => policyForPod(cache, pod),
    nodeByName: (name) => cache.node(name),
    nodeCacheProblem: () => (cache.hasSynced('nodes') ? undefined : 'lazarus extender: node cache not synced yet'),
    notReadyReason: () => cache.notSynced(),
    run: (signal) => cache.start(signal),
  };
}
