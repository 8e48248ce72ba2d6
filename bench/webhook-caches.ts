/**
 * The webhook benches' cluster: a ClusterCache loaded (never started) with 30,000 Checkpoints,
 * 50,001 ReplicaSets, 5,001 Deployments, 101 Namespaces and 5,000 Nodes, around the recorded
 * AdmissionReview of a ReplicaSet pod (test/fixtures/admission-review-replicaset.json) whose
 * Deployment opted in and has 10 Ready checkpoints: that pod is restored.
 */
import { readFileSync } from 'node:fs';
import { ClusterCache } from '../kube/cluster-cache.js';
import type { KubeClient } from '../kube/client.js';
import type { Logger } from 'pino';
import { checkpoint, container, node } from '../test/support/builders.js';
import type { Pod } from '../api/types.js';

export const BENCH_REVIEW = 'test/fixtures/admission-review-replicaset.json';

export function benchCaches(log: Logger): ClusterCache {
  const cache = new ClusterCache({} as KubeClient, log); // never started: loaded below
  const objects = (n: number, make: (i: number) => object): object[] => Array.from({ length: n }, (_, i) => make(i));

  // 50,000 ReplicaSets over 100 namespaces, each owned by a Deployment; 'shop/web-7d9c5b8f6' is the bench pod's.
  const replicaSets = objects(50_000, (i) => ({
    metadata: {
      name: `app${i}-5d8f7c9b${i % 10}`, namespace: `ns-${i % 100}`, resourceVersion: String(i),
      labels: { app: `app${i}`, 'pod-template-hash': `5d8f7c9b${i % 10}` },
      annotations: { 'deployment.kubernetes.io/revision': '3', 'deployment.kubernetes.io/desired-replicas': '2' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: `app${i}`, uid: `u${i}`, controller: true }],
    },
  }));
  // The bench pod is the recorded AdmissionReview's: its ReplicaSet, Deployment and container.
  const review = JSON.parse(readFileSync(BENCH_REVIEW, 'utf8')) as { request: { namespace: string; object: Pod } };
  const benchPod = review.request.object;
  const benchNs = review.request.namespace;
  const benchRs = benchPod.metadata.ownerReferences?.[0]?.name ?? '';
  const benchDeployment = benchRs.replace(/-[^-]+$/, '');
  replicaSets.push({ metadata: { name: benchRs, namespace: benchNs, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: benchDeployment, controller: true }] } });
  cache.replicaSetStore.replaceAll(replicaSets);
  cache.deploymentStore.replaceAll([
    { metadata: { name: benchDeployment, namespace: benchNs, annotations: { 'lazarus.dev/restore': 'enabled' } } },
    ...objects(5_000, (i) => ({ metadata: { name: `app${i}`, namespace: `ns-${i % 100}`, labels: { app: `app${i}` } } })),
  ]);
  cache.statefulSetStore.replaceAll([]);
  cache.policyStore.replaceAll([]);
  cache.namespaceStore.replaceAll(objects(101, (i) => ({ metadata: { name: i === 100 ? 'shop' : `ns-${i}`, labels: { team: `t${i % 7}` } } })));

  // 30,000 Checkpoints: 10 per workload+container for 2,999 other workloads, 10 for the bench pod's.
  const app = benchPod.spec.containers[0] ?? container();
  const checkpoints: object[] = [];
  for (let i = 0; i < 2_999; i++) {
    for (let k = 0; k < 10; k++) {
      checkpoints.push(checkpoint(`app${i}-app-${k}`, { namespace: `ns-${i % 100}`, workload: { kind: 'Deployment', name: `app${i}` }, takenAt: new Date(Date.now() - k * 600_000).toISOString(), sourcePod: `p${k}` }));
    }
  }
  for (let k = 0; k < 10; k++) {
    checkpoints.push(checkpoint(`${benchDeployment}-app-${k}`, { container: app, namespace: benchNs, workload: { kind: 'Deployment', name: benchDeployment }, takenAt: new Date(Date.now() - k * 600_000).toISOString(), sourcePod: `web-p${k}` }));
  }
  cache.checkpointStore.replaceAll(checkpoints);

  // 5,000 Nodes with realistic weight: labels, conditions, 20 images each; one in ten has an old CRIU.
  cache.nodeStore.replaceAll(objects(5_000, (i) => {
    const n = node(`node-${i}`, { criu: i % 10 === 0 ? 31701 : 40101, images: Array.from({ length: 20 }, (_, j) => `registry.example/img${j}:v${i % 3}`) });
    n.metadata.labels = { ...n.metadata.labels, 'kubernetes.io/hostname': `node-${i}`, 'topology.kubernetes.io/zone': `zone-${i % 3}` };
    return n;
  }));
  return cache;
}
