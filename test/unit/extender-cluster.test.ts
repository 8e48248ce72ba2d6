/**
 * The --kubeconfig mode's caches, fed by a fake KubeClient (lists, then a watch stream the test
 * drives): NodeNames requests judged from the node cache, the pod's RestorePolicy chosen by
 * namespace labels and the workload's labels (the pod's own for a bare pod), readiness until every cache has synced.
 */
import http from 'node:http';
import * as K from '../../api/keys.js';
import type { KubeClient, WatchEventType } from '../../kube/client.js';
import { silentLogger } from '../../runtime/log.js';
import { createRegistry } from '../../runtime/metrics.js';
import { clusterLookups } from '../../extender/cluster.js';
import { startExtender } from '../../extender/server.js';
import type { ExtenderFilterResult } from '../../extender/protocol.js';
import { goodNode, namesArgs, wirePod } from './extender-fixtures.js';
import { postJson } from './extender-http.js';

type Emit = (type: WatchEventType, object: unknown) => void;

/** Serves fixed lists; each watch stays open until aborted, and `emit` pushes events into it. */
function fakeClient(lists: Record<string, unknown[]>): { client: KubeClient; emit: (path: string, type: WatchEventType, object: unknown) => void; listed: Set<string> } {
  const watchers = new Map<string, Emit>();
  const listed = new Set<string>();
  const client: KubeClient = {
    server: 'https://fake',
    async request<T>(method: string, path: string): Promise<T> {
      if (method !== 'GET') throw new Error(`unexpected ${method} ${path}`);
      listed.add(path);
      return { items: lists[path] ?? [], metadata: { resourceVersion: '1' } } as T;
    },
    watch(path, _query, onEvent, signal) {
      watchers.set(path, onEvent);
      return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    },
  };
  return { client, emit: (path, type, object) => watchers.get(path)?.(type, object), listed };
}

const POLICIES = '/apis/lazarus.dev/v1alpha1/restorepolicies';

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!condition()) throw new Error('condition not met in time');
}

describe('extender with a cluster (informer caches)', () => {
  const stop = new AbortController();
  const fake = fakeClient({
    '/api/v1/nodes': [goodNode('good'), goodNode('newer', { criu: '40200' }), goodNode('arm', { arch: 'arm64' })],
    '/api/v1/namespaces': [{ metadata: { name: 'shop', labels: { tier: 'prod' } } }, { metadata: { name: 'dev' } }],
    // The pod's owner chain in `dev`: the Deployment's labels are what workloadSelector sees.
    '/apis/apps/v1/replicasets': [{ metadata: { name: 'web-7d9c', namespace: 'dev', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } }],
    '/apis/apps/v1/deployments': [{ metadata: { name: 'web', namespace: 'dev', labels: { app: 'web' } } }],
    [POLICIES]: [
      { metadata: { name: 'strict-prod' }, spec: { priority: 10, namespaceSelector: { matchLabels: { tier: 'prod' } }, compatibility: { criu: 'Exact' } } },
      { metadata: { name: 'web-only' }, spec: { priority: 5, workloadSelector: { matchLabels: { app: 'web' } } } },
    ],
  });
  const lookups = clusterLookups(fake.client, silentLogger());
  let running: Promise<void> | undefined;

  beforeAll(async () => {
    expect(lookups.notReadyReason()).toBe('caches not synced: policies, namespaces, replicasets, deployments, statefulsets, nodes');
    expect(lookups.nodeCacheProblem()).toBe('lazarus extender: node cache not synced yet');
    running = lookups.run(stop.signal);
    await until(() => lookups.notReadyReason() === undefined);
  });
  afterAll(async () => { stop.abort(); await running; });

  it('lists what policy selection and NodeNames requests need (no Checkpoints)', () => {
    expect([...fake.listed].sort()).toEqual(['/api/v1/namespaces', '/api/v1/nodes', '/apis/apps/v1/deployments', '/apis/apps/v1/replicasets', '/apis/apps/v1/statefulsets', POLICIES]);
  });

  it('chooses the policy by namespace labels and priority', () => {
    expect(lookups.policyFor(wirePod(true) as never).name).toBe('strict-prod');
  });

  it('chooses by the workload\'s labels (through the owner chain) where the namespace does not match', () => {
    const pod = wirePod(true) as { metadata: { namespace: string } };
    pod.metadata.namespace = 'dev';
    expect(lookups.policyFor(pod as never).name).toBe('web-only');
  });

  it('falls back to the built-in defaults when nothing matches', () => {
    // a bare pod (no owner) in `dev`: its own labels are the workload's, and they match nothing
    const pod = wirePod(true) as { metadata: { namespace: string; labels: Record<string, string>; ownerReferences?: unknown } };
    pod.metadata.namespace = 'dev';
    pod.metadata.labels = { app: 'other' };
    delete pod.metadata.ownerReferences;
    expect(lookups.policyFor(pod as never).name).toBe('');
  });

  it('serves NodeNames filters from the cache with the chosen policy, and follows watch events', async () => {
    const ext = await startExtender({ ...lookups, logger: silentLogger(), registry: createRegistry('c', false) });
    const agent = new http.Agent({ keepAlive: true });
    try {
      const ask = async (): Promise<ExtenderFilterResult> =>
        JSON.parse((await postJson(agent, ext.port, '/filter', namesArgs(wirePod(true), ['good', 'newer', 'arm', 'late']))).text) as ExtenderFilterResult;
      const first = await ask();
      // strict-prod says criu: Exact, so "newer" fails too; "late" is not in the cache yet.
      expect(first.NodeNames).toEqual(['good', 'late']);
      expect(Object.keys(first.FailedAndUnresolvableNodes).sort()).toEqual(['arm', 'newer']);

      fake.emit('/api/v1/nodes', 'ADDED', goodNode('late', { restoreCapable: false }));
      fake.emit(POLICIES, 'DELETED', { metadata: { name: 'strict-prod' } });
      const second = await ask();
      expect(second.NodeNames).toEqual(['good', 'newer']);
      expect(second.FailedAndUnresolvableNodes.late).toContain(`${K.NODE_RESTORE_CAPABLE} is not "true"`);
      const ready = await new Promise<number>((resolve) => http.get({ host: '127.0.0.1', port: ext.port, path: '/readyz', agent }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }));
      expect(ready).toBe(200);
    } finally {
      agent.destroy();
      await ext.close();
    }
  });
});
