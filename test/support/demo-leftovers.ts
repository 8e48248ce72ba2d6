/**
 * What `lazarus demo --kubeconfig` left in a cluster, looked up independently of the demo's own
 * cleanup: its namespace, its RestorePolicy, nodes labelled lazarus.dev/demo=true, their Leases,
 * and any pod still bound to a node named lazarus-demo-*. Empty when it left nothing.
 */
import { isNotFound, type KubeClient } from '../../kube/client.js';

export async function demoLeftovers(client: KubeClient): Promise<string[]> {
  type List = { items: Array<{ metadata: { name: string; namespace?: string }; spec?: { nodeName?: string } }> };
  const exists = (path: string): Promise<boolean> => client.request('GET', path).then(() => true, (err: unknown) => {
    if (isNotFound(err)) return false;
    throw err;
  });
  const left: string[] = [];
  if (await exists('/api/v1/namespaces/lazarus-demo')) left.push('namespace lazarus-demo');
  if (await exists('/apis/lazarus.dev/v1alpha1/restorepolicies/lazarus-demo')) left.push('restorepolicy lazarus-demo');
  const nodes = await client.request<List>('GET', '/api/v1/nodes', { query: { labelSelector: 'lazarus.dev/demo=true' } });
  left.push(...nodes.items.map((n) => `node ${n.metadata.name}`));
  const leases = await client.request<List>('GET', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases');
  left.push(...leases.items.filter((l) => l.metadata.name.startsWith('lazarus-demo-')).map((l) => `lease ${l.metadata.name}`));
  const pods = await client.request<List>('GET', '/api/v1/pods');
  left.push(...pods.items.filter((p) => p.spec?.nodeName?.startsWith('lazarus-demo-')).map((p) => `pod ${p.metadata.namespace ?? ''}/${p.metadata.name} on ${p.spec?.nodeName ?? ''}`));
  return left;
}
