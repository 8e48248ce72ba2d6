/**
 * The eviction webhook's reads and writes over kube/client.ts: a GET of the pod (the webhook's
 * caches hold no pods), the hold's JSON patch, and Warning Events. RBAC: pods get + patch,
 * events create (manifests/base/rbac.yaml, lazarus-webhook-eviction).
 */
import type { Operation } from 'fast-json-patch';
import type { Pod, WorkloadKind } from '../api/types.js';
import { isNotFound, KubeError, type KubeClient } from '../kube/client.js';
import type { EvictionIO } from './eviction-handler.js';

const enc = encodeURIComponent;
/** Within the API server's timeoutSeconds (5 s for this webhook): a slow GET admits the eviction. */
const REQUEST_TIMEOUT_MS = 2_000;

const WORKLOAD_API: Readonly<Record<WorkloadKind, string>> = { Deployment: 'apps/v1', StatefulSet: 'apps/v1', ReplicaSet: 'apps/v1', Pod: 'v1' };

interface Subject { apiVersion: string; kind: string; name: string; namespace: string; uid?: string }

/** Kubernetes Event (core v1), as `kubectl describe` shows it. */
export function warningEvent(subject: Subject, reason: string, message: string, now: number, instance: string): Record<string, unknown> {
  const at = new Date(now).toISOString();
  return {
    apiVersion: 'v1', kind: 'Event',
    metadata: { generateName: `${subject.name}.`, namespace: subject.namespace },
    involvedObject: subject,
    type: 'Warning', reason, message: message.slice(0, 1024),
    source: { component: 'lazarus-webhook' },
    reportingComponent: 'lazarus.dev/webhook', reportingInstance: instance,
    firstTimestamp: at, lastTimestamp: at, count: 1,
  };
}

export function kubeEvictionIO(client: KubeClient, options: { instance: string; now: () => number }): EvictionIO {
  const podPath = (namespace: string, name: string): string => `/api/v1/namespaces/${enc(namespace)}/pods/${enc(name)}`;
  return {
    async getPod(namespace, name) {
      try {
        return await client.request<Pod>('GET', podPath(namespace, name), { timeoutMs: REQUEST_TIMEOUT_MS });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async patchPod(namespace, name, ops: readonly Operation[]) {
      try {
        await client.request('PATCH', podPath(namespace, name), { body: ops, contentType: 'application/json-patch+json', timeoutMs: REQUEST_TIMEOUT_MS });
        return true;
      } catch (err) {
        // 422: the resourceVersion `test` failed; 409: a write raced ours; 404: the pod is gone.
        if (err instanceof KubeError && [404, 409, 422].includes(err.status)) return false;
        throw err;
      }
    },
    async warn(namespace, podUid, warning) {
      const subjects: Subject[] = [{ apiVersion: 'v1', kind: 'Pod', name: warning.pod, namespace, ...(podUid ? { uid: podUid } : {}) }];
      if (warning.workload.kind !== 'Pod') subjects.push({ apiVersion: WORKLOAD_API[warning.workload.kind], kind: warning.workload.kind, name: warning.workload.name, namespace });
      await Promise.all(subjects.map((s) => client.request('POST', `/api/v1/namespaces/${enc(namespace)}/events`, {
        body: warningEvent(s, warning.reason, warning.message, options.now(), options.instance),
      })));
    },
  };
}
