/** Polling and Events for tests against the local control plane. */
import type { KubeClient } from '../../kube/client.js';
import { isNotFound } from '../../kube/client.js';

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  signal?: AbortSignal;
  /** Says what was awaited, in the timeout error. */
  description?: string;
}

/**
 * Calls `check` until it returns something other than undefined/false/null and returns that.
 * Errors thrown by `check` are retried; the last one is reported on timeout.
 */
export async function waitFor<T>(check: () => Promise<T | undefined | null | false> | T | undefined | null | false, options: WaitOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const value = await check();
      if (value !== undefined && value !== null && value !== false) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.description ?? 'a condition'}${why}`);
    }
    await new Promise<void>((resolve) => {
      // The listener goes with the timer: one per poll would pile up on a long-lived signal.
      const onAbort = (): void => { clearTimeout(timer); resolve(); };
      const timer = setTimeout(() => { options.signal?.removeEventListener('abort', onAbort); resolve(); }, intervalMs);
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

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

/** Creates a namespace and waits for its default ServiceAccount (pods are rejected before it exists). */
export async function createNamespace(client: KubeClient, name: string, labels: Record<string, string> = {}, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
  await client.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } } });
  await waitFor(async () => {
    try {
      await client.request('GET', `/api/v1/namespaces/${name}/serviceaccounts/default`);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }, { timeoutMs: options.timeoutMs ?? 30_000, ...(options.signal ? { signal: options.signal } : {}), description: `the default ServiceAccount of namespace ${name}` });
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
