/**
 * Fake Nodes for the local control plane (demo/fake-nodes.ts says what they are): created through
 * the API, status through the status subresource.
 */
import type { KubeClient } from '../../kube/client.js';
import type { Node } from '../../api/types.js';
import { fakeNode, type FakeNodeSpec } from '../../demo/fake-nodes.js';

// What a fake node is lives with the demo, which makes them from the image too.
export { fakeNode, FAKE_KUBELET_VERSION, FAKE_NODE_ADDRESS, type FakeImage, type FakeNodeSpec } from '../../demo/fake-nodes.js';

/** Creates the Node, then sets its status (the main resource ignores status on create). */
export async function createNode(client: KubeClient, spec: FakeNodeSpec): Promise<Node> {
  const { node, status } = fakeNode(spec);
  await client.request('POST', '/api/v1/nodes', { body: node });
  return client.request<Node>('PATCH', `/api/v1/nodes/${spec.name}/status`, {
    body: { status }, contentType: 'application/merge-patch+json',
  });
}

/** Cordons or uncordons a node (spec.unschedulable), as `kubectl cordon` does. */
export async function setUnschedulable(client: KubeClient, name: string, unschedulable: boolean): Promise<Node> {
  return client.request<Node>('PATCH', `/api/v1/nodes/${name}`, {
    body: { spec: { unschedulable: unschedulable || null } }, contentType: 'application/merge-patch+json',
  });
}
