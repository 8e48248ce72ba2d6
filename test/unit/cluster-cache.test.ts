import type { KubeClient, WatchEventType } from '../../kube/client.js';
import { ClusterCache } from '../../kube/cluster-cache.js';
import { silentLogger } from '../../runtime/log.js';
import { checkpoint, node } from '../support/builders.js';

type Event = [WatchEventType, object];

/**
 * A client whose lists are empty and whose watches of `path` deliver one event each, calling
 * `after` once it is applied; then they wait for the stop signal, as a quiet API server's would.
 */
function scriptedClient(path: string, events: Event[], after: () => void): KubeClient {
  let next = 0;
  return {
    server: 'https://127.0.0.1:1',
    request: async <T>() => ({ items: [], metadata: { resourceVersion: '1' } }) as T,
    watch: async (watched, _query, onEvent, signal) => {
      const event = watched === path ? events[next++] : undefined;
      if (event) { onEvent(...event); after(); return; }
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    },
  };
}

const replicaSet = (annotations: Record<string, string>, status: object) => ({
  metadata: { name: 'web-7d9c', namespace: 'shop', resourceVersion: String(Math.random()), annotations, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] },
  status,
});

const heartbeat = (time: string) => {
  const n = node('n1');
  return { ...n, metadata: { ...n.metadata, resourceVersion: time }, status: { ...n.status, conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: `2026-11-27T${time}Z` }] } };
};

/** The cache's generation after each event, delivered through its informers' watches. */
async function generationsAfter(path: string, events: Event[]): Promise<number[]> {
  const generations: number[] = [];
  const stop = new AbortController();
  const cache: ClusterCache = new ClusterCache(scriptedClient(path, events, () => {
    generations.push(cache.generation());
    if (generations.length === events.length) stop.abort();
  }), silentLogger(), { kinds: ['replicasets', 'nodes', 'checkpoints'], nodeImages: true });
  await cache.start(stop.signal);
  return generations;
}

const RS = '/apis/apps/v1/replicasets';
const NODES = '/api/v1/nodes';
const CHECKPOINTS = '/apis/lazarus.dev/v1alpha1/checkpoints';

describe('ClusterCache.generation: changes only when something a decision reads does', () => {
  it.each<[string, boolean, string, object, object]>([
    ['a ReplicaSet status update', false, RS, replicaSet({ a: '1' }, { replicas: 1 }), replicaSet({ a: '1' }, { replicas: 2 })],
    ['a ReplicaSet annotation change', true, RS, replicaSet({ a: '1' }, {}), replicaSet({ a: '2' }, {})],
    ['a Node status heartbeat', false, NODES, heartbeat('12:00:00'), heartbeat('12:00:10')],
    ['a Node with a new CRIU', true, NODES, node('n1'), node('n1', { criu: 40200 })],
    ['a Node with a new image (only scores read images)', false, NODES, node('n1', { images: ['a'] }), node('n1', { images: ['a', 'b'] })],
    ['a Node going NotReady', true, NODES, node('n1'), node('n1', { ready: false })],
    ['a Node cordoned', true, NODES, node('n1'), node('n1', { unschedulable: true })],
    ['a Node with other CPU flags', true, NODES, node('n1'), node('n1', { cpuFlags: 'fpu' })],
    ['a Node with another kernel', true, NODES, node('n1'), node('n1', { kernel: '6.9.0-1-generic' })],
    ['a Checkpoint becoming Failed', true, CHECKPOINTS, checkpoint('c1'), checkpoint('c1', { phase: 'Failed' })],
    ['a Checkpoint updated with nothing new', false, CHECKPOINTS, checkpoint('c1'), checkpoint('c1')],
  ])('%s changes it: %s', async (_what, changes, path, before, after) => {
    const [first, second] = await generationsAfter(path, [['ADDED', before], ['MODIFIED', after]]);
    expect(first).toBeGreaterThan(0);
    expect(second !== first).toBe(changes);
  });

  it('a Checkpoint changes the view of its own namespace only', () => {
    const cache = new ClusterCache(scriptedClient('', [], () => undefined), silentLogger());
    cache.checkpointStore.replaceAll([checkpoint('c1', { namespace: 'shop' })]);
    const [shop, other, all] = [cache.generation('shop'), cache.generation('other'), cache.generation()];
    cache.checkpointStore.replaceAll([checkpoint('c1', { namespace: 'shop' }), checkpoint('c2', { namespace: 'other' })]);
    expect(cache.generation('shop')).toBe(shop);
    expect(cache.generation('other')).toBeGreaterThan(other);
    expect(cache.generation()).toBeGreaterThan(all);
    cache.nodeStore.replaceAll([node('n1')]); // anything else counts everywhere
    expect(cache.generation('shop')).toBeGreaterThan(shop);
  });

  it('a Node with a new image gets new facts (the extender scores images) but leaves generation() still', () => {
    const cache = new ClusterCache(scriptedClient('', [], () => undefined), silentLogger(), { nodeImages: true });
    cache.nodeStore.replaceAll([node('n1', { images: ['a'] })]);
    const [facts, generation] = [cache.node('n1'), cache.generation()];
    cache.nodeStore.replaceAll([node('n1', { images: ['a', 'b'] })]);
    expect(cache.node('n1')).not.toBe(facts);
    expect(cache.node('n1')?.images.has('b')).toBe(true);
    expect(cache.generation()).toBe(generation);
  });

  it('keeps the stored value of an unchanged update, so its identity (and what is memoised on it) survives', () => {
    const cache = new ClusterCache(scriptedClient('', [], () => undefined), silentLogger());
    cache.checkpointStore.replaceAll([checkpoint('c1')]);
    const stored = cache.checkpointStore.get('shop/c1');
    const generation = cache.generation();
    cache.checkpointStore.replaceAll([checkpoint('c1')]); // a relist
    expect(cache.checkpointStore.get('shop/c1')).toBe(stored);
    expect(cache.generation()).toBe(generation);
    cache.checkpointStore.replaceAll([]);
    expect(cache.generation()).toBe(generation + 1);
    expect(cache.checkpoints('shop', { kind: 'Deployment', name: 'web' }, 'app')).toEqual([]);
  });
});
