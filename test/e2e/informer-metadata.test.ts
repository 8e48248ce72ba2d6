/**
 * Against a real kube-apiserver: the owner informers list and watch PartialObjectMetadata (a
 * ReplicaSet's pod template never arrives), and what they store is the same owner view as
 * before: labels, annotations, owner references. Empty metadata lists (`items: null`) sync too.
 */
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { createNamespace, waitFor } from '../harness/wait.js';
import type { KubeClient } from '../../kube/client.js';
import { ClusterCache } from '../../kube/cluster-cache.js';
import { silentLogger } from '../../runtime/log.js';

const NS = 'meta';
let cp: ControlPlane;

beforeAll(async () => {
  // Only what namespaces need: nothing else touches the objects made here.
  cp = await startControlPlane({ controllers: ['serviceaccount-controller', 'namespace-controller'], log: () => undefined });
  await createNamespace(cp.client, NS);
}, 120_000);
afterAll(async () => { await cp?.stop(); });

/** The client, noting the `kind` of every list answer and watch event, by path. */
function recording(client: KubeClient): { client: KubeClient; kinds: Map<string, Set<string>> } {
  const kinds = new Map<string, Set<string>>();
  const note = (path: string, kind: unknown): void => {
    const set = kinds.get(path) ?? new Set<string>();
    set.add(String(kind));
    kinds.set(path, set);
  };
  return {
    kinds,
    client: {
      server: client.server,
      async request<T>(...args: Parameters<KubeClient['request']>): Promise<T> {
        const answer = await client.request<T>(...args);
        note(`list ${args[1]}`, (answer as { kind?: string }).kind);
        return answer;
      },
      watch(path, query, onEvent, signal, options) {
        return client.watch(path, query, (type, object) => { note(`watch ${path}`, (object as { kind?: string }).kind); onEvent(type, object); }, signal, options);
      },
    },
  };
}

it('lists and watches ReplicaSets as PartialObjectMetadata and keeps the same owner view', async () => {
  const template = { metadata: { labels: { app: 'web', 'pod-template-hash': 'abc12' } }, spec: { containers: [{ name: 'app', image: 'registry.example/web:1.4', env: [{ name: 'A', value: 'x'.repeat(2000) }] }] } };
  const rs = await cp.client.request<{ metadata: { uid: string } }>('POST', `/apis/apps/v1/namespaces/${NS}/replicasets`, {
    body: {
      apiVersion: 'apps/v1', kind: 'ReplicaSet',
      metadata: { name: 'web-abc12', labels: { app: 'web' }, annotations: { 'deployment.kubernetes.io/revision': '2' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: '00000000-0000-4000-8000-000000000001', controller: true }] },
      spec: { replicas: 0, selector: { matchLabels: template.metadata.labels }, template },
    },
  });
  expect(rs.metadata.uid).toBeTruthy();

  const { client, kinds } = recording(cp.client);
  const cache = new ClusterCache(client, silentLogger(), { kinds: ['replicasets', 'statefulsets', 'namespaces'] });
  const stop = new AbortController();
  const running = cache.start(stop.signal);
  try {
    await waitFor(() => cache.notSynced() === undefined, { timeoutMs: 20_000, description: 'caches to sync' });
    expect(cache.get('ReplicaSet', NS, 'web-abc12')).toEqual({
      labels: { app: 'web' },
      annotations: { 'deployment.kubernetes.io/revision': '2' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }],
    });
    expect(cache.namespaceLabels(NS)).toEqual({ 'kubernetes.io/metadata.name': NS });
    // No StatefulSet exists: its metadata list is `items: null`, and the cache synced all the same.
    expect(cache.statefulSetStore.size).toBe(0);

    await cp.client.request('PATCH', `/apis/apps/v1/namespaces/${NS}/replicasets/web-abc12`, {
      body: { metadata: { annotations: { 'lazarus.dev/restore': 'enabled' } } }, contentType: 'application/merge-patch+json',
    });
    await waitFor(() => cache.get('ReplicaSet', NS, 'web-abc12')?.annotations?.['lazarus.dev/restore'] === 'enabled', { timeoutMs: 20_000, description: 'the watched annotation' });

    expect(kinds.get('list /apis/apps/v1/replicasets')).toEqual(new Set(['PartialObjectMetadataList']));
    expect(kinds.get('list /api/v1/namespaces')).toEqual(new Set(['PartialObjectMetadataList']));
    expect(kinds.get('watch /apis/apps/v1/replicasets')).toEqual(new Set(['PartialObjectMetadata']));
  } finally {
    stop.abort();
    await running;
  }
}, 60_000);
