/** Polling and Events for tests against the local control plane. */
import type { KubeClient } from '../../kube/client.js';
import { waitFor } from '../../kube/wait.js';

// The demo waits with these too (it runs from the image, without test/).
export { waitFor, createNamespace, type WaitOptions } from '../../kube/wait.js';

export interface KubeEvent {
  type?: string;
  reason?: string;
  message?: string;
  involvedObject?: { kind?: string; name?: string; namespace?: string; uid?: string };
  source?: { component?: string };
  reportingComponent?: string;
  count?: number;
}

/** Events of a namespace (core/v1 view, which includes events.k8s.io events from the scheduler). */
export async function listEvents(client: KubeClient, namespace: string, filter: { kind?: string; name?: string; reason?: string } = {}): Promise<KubeEvent[]> {
  const selectors = [
    filter.kind ? `involvedObject.kind=${filter.kind}` : '',
    filter.name ? `involvedObject.name=${filter.name}` : '',
    filter.reason ? `reason=${filter.reason}` : '',
  ].filter(Boolean);
  const list = await client.request<{ items: KubeEvent[] }>('GET', `/api/v1/namespaces/${namespace}/events`, {
    query: selectors.length ? { fieldSelector: selectors.join(',') } : {},
  });
  return list.items;
}

export interface PodLike { metadata?: { name?: string; labels?: Record<string, string> }; spec?: { nodeName?: string; schedulerName?: string } }

/** Pods of a namespace matching a label selector (e.g. "app=web"). */
export async function listPods<P extends PodLike = PodLike>(client: KubeClient, namespace: string, labelSelector?: string): Promise<P[]> {
  const list = await client.request<{ items: P[] }>('GET', `/api/v1/namespaces/${namespace}/pods`, { query: labelSelector ? { labelSelector } : {} });
  return list.items;
}

/** Waits until `count` pods matching the selector are bound (spec.nodeName set) and returns them. */
export function waitForBoundPods<P extends PodLike = PodLike>(client: KubeClient, namespace: string, labelSelector: string, count = 1, timeoutMs = 30_000): Promise<P[]> {
  return waitFor(async () => {
    const pods = (await listPods<P>(client, namespace, labelSelector)).filter((p) => p.spec?.nodeName);
    return pods.length >= count ? pods : undefined;
  }, { timeoutMs, description: `${count} bound pod(s) with ${labelSelector} in ${namespace}` });
}
