/**
 * What ClusterCache does to keep 30,000 Checkpoints small: checkpoints with the same origin CPU
 * flags share one array (most of a stored Checkpoint), without changing what is stored; Nodes keep
 * their images only for the extender.
 */
import { ClusterCache } from '../../kube/cluster-cache.js';
import type { KubeClient } from '../../kube/client.js';
import { silentLogger } from '../../runtime/log.js';
import { checkpoint, node } from '../support/builders.js';

describe('checkpoint CPU flags are shared', () => {
  it('one array per distinct flag list, the values unchanged', () => {
    const cache = new ClusterCache({} as KubeClient, silentLogger());
    const other = checkpoint('c3', { origin: { cpuFlags: ['fpu', 'sse2'] } });
    cache.checkpointStore.replaceAll([checkpoint('c1'), checkpoint('c2'), other]);
    const flags = (name: string): string[] | undefined => cache.checkpointStore.get(`shop/${name}`)?.spec.origin.cpuFlags;
    expect(flags('c1')).toBe(flags('c2'));
    expect(flags('c1')).toEqual(checkpoint('c1').spec.origin.cpuFlags);
    expect(flags('c3')).not.toBe(flags('c1'));
    expect(flags('c3')).toEqual(['fpu', 'sse2']);
  });
});

describe('Node images are kept only where scores read them', () => {
  const withImages = node('n1', { images: ['registry.example/app:1'] });

  it('the webhook and controller cache (the default) keep no images: nothing they decide reads them', () => {
    const cache = new ClusterCache({} as KubeClient, silentLogger());
    cache.nodeStore.replaceAll([withImages]);
    expect(cache.node('n1')?.images.has('registry.example/app:1')).toBe(false);
    expect(cache.node('n1')?.ready).toBe(true);
  });

  it('the extender cache (nodeImages) keeps them', () => {
    const cache = new ClusterCache({} as KubeClient, silentLogger(), { kinds: ['nodes'], nodeImages: true });
    cache.nodeStore.replaceAll([withImages]);
    expect(cache.node('n1')?.images.has('registry.example/app:1')).toBe(true);
  });
});
