/**
 * The controller's writes and calls, over kube/client.ts: the kubelet checkpoint API through the
 * API server's node proxy, Events, Checkpoint status (the /status subresource, with
 * resourceVersion preconditions), deletions, and the Lease the elector needs.
 */
import jsonPatch from 'fast-json-patch';
import { API_VERSION, CHECKPOINT_REQUEST } from '../api/keys.js';
import type { Checkpoint, CheckpointStatus } from '../api/types.js';
import { isConflict, isNotFound, KubeError, type KubeClient } from '../kube/client.js';
import type { DemandSubject } from './demand.js';
import type { LeaseRecord, LeaseStore, StoredLease } from './leader.js';

const enc = encodeURIComponent;

export interface EventSubject { apiVersion: string; kind: string; name: string; namespace: string; uid?: string }

export interface EventSpec {
  regarding: EventSubject;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export type StatusChange = (current: Checkpoint) => CheckpointStatus | undefined;

export interface ControllerIO {
  /** POST /checkpoint through the node proxy; the archive paths the kubelet wrote. */
  checkpoint(node: string, namespace: string, pod: string, container: string, timeoutSeconds: number, signal: AbortSignal): Promise<string[]>;
  event(event: EventSpec): Promise<void>;
  /** Reads the Checkpoint, applies `change`, writes status if it returned one; retries conflicts. False: nothing written. */
  updateCheckpointStatus(namespace: string, name: string, change: StatusChange): Promise<boolean>;
  deleteCheckpoint(namespace: string, name: string): Promise<void>;
  /** Deletes exactly this pod (uid precondition): never a namesake created since. */
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  /**
   * Sets the subject's `lazarus.dev/checkpoint` annotation to `value` if it still reads
   * `expected`. False (nothing written) when it changed meanwhile — a new `now` is never
   * overwritten — or the object is gone.
   */
  answer(subject: DemandSubject, expected: string, value: string): Promise<boolean>;
}

const WORKLOAD_RESOURCES: Readonly<Record<Exclude<DemandSubject['kind'], 'Pod'>, string>> = {
  Deployment: 'deployments', StatefulSet: 'statefulsets', ReplicaSet: 'replicasets',
};

export function subjectPath(s: DemandSubject): string {
  return s.kind === 'Pod'
    ? `/api/v1/namespaces/${enc(s.namespace)}/pods/${enc(s.name)}`
    : `/apis/apps/v1/namespaces/${enc(s.namespace)}/${WORKLOAD_RESOURCES[s.kind]}/${enc(s.name)}`;
}

/**
 * RFC 6902: `test` that the annotation still holds `expected`, then `replace` it. The replace is
 * a diff of the two annotation maps; the `test` reuses its path.
 */
export function answerPatch(expected: string, value: string): jsonPatch.Operation[] {
  const ops = jsonPatch.compare({ metadata: { annotations: { [CHECKPOINT_REQUEST]: expected } } }, { metadata: { annotations: { [CHECKPOINT_REQUEST]: value } } });
  const [first] = ops;
  if (!first) return [];
  return [{ op: 'test', path: first.path, value: expected }, ...ops];
}

export const checkpointPath = (namespace: string, name = ''): string =>
  `/apis/${API_VERSION}/namespaces/${enc(namespace)}/checkpoints${name ? `/${enc(name)}` : ''}`;

/** Kubernetes Event (core v1): what `kubectl describe` and `kubectl get events` show. */
export function eventObject(event: EventSpec, now: number, instance: string): Record<string, unknown> {
  const at = new Date(now).toISOString();
  return {
    apiVersion: 'v1', kind: 'Event',
    metadata: { generateName: `${event.regarding.name}.`, namespace: event.regarding.namespace },
    involvedObject: { ...event.regarding },
    type: event.type, reason: event.reason, message: event.message.slice(0, 1024),
    source: { component: 'lazarus-controller' },
    reportingComponent: 'lazarus.dev/controller', reportingInstance: instance,
    firstTimestamp: at, lastTimestamp: at, count: 1,
  };
}

export function kubeControllerIO(client: KubeClient, options: { instance: string; now: () => number }): ControllerIO {
  return {
    async checkpoint(node, namespace, pod, container, timeoutSeconds, signal) {
      const res = await client.request<{ items?: unknown }>('POST',
        `/api/v1/nodes/${enc(node)}/proxy/checkpoint/${enc(namespace)}/${enc(pod)}/${enc(container)}`,
        { query: { timeout: timeoutSeconds }, signal, timeoutMs: (timeoutSeconds + 15) * 1000 });
      const items = res && typeof res === 'object' && Array.isArray(res.items) ? res.items : [];
      return items.filter((x): x is string => typeof x === 'string');
    },
    async event(event) {
      await client.request('POST', `/api/v1/namespaces/${enc(event.regarding.namespace)}/events`, { body: eventObject(event, options.now(), options.instance) });
    },
    async updateCheckpointStatus(namespace, name, change) {
      for (let attempt = 0; ; attempt++) {
        const current = await client.request<Checkpoint>('GET', checkpointPath(namespace, name));
        const status = change(current);
        if (!status) return false;
        try {
          await client.request('PUT', `${checkpointPath(namespace, name)}/status`, { body: { ...current, status } });
          return true;
        } catch (err) {
          if (!isConflict(err) || attempt >= 4) throw err;
        }
      }
    },
    async deleteCheckpoint(namespace, name) {
      try {
        await client.request('DELETE', checkpointPath(namespace, name));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
    async answer(subject, expected, value) {
      const patch = answerPatch(expected, value);
      if (!patch.length) return false;
      try {
        await client.request('PATCH', subjectPath(subject), { contentType: 'application/json-patch+json', body: patch });
        return true;
      } catch (err) {
        // 422: the `test` failed (the value changed); 409: a write raced ours; 404: gone.
        if (err instanceof KubeError && [404, 409, 422].includes(err.status)) return false;
        throw err;
      }
    },
    async deletePod(namespace, name, uid) {
      try {
        await client.request('DELETE', `/api/v1/namespaces/${enc(namespace)}/pods/${enc(name)}`, {
          body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid } },
        });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
  };
}

interface LeaseObject {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: Partial<LeaseRecord>;
}

function toStored(lease: LeaseObject): StoredLease {
  const s = lease.spec ?? {};
  return {
    resourceVersion: lease.metadata.resourceVersion ?? '',
    record: {
      holderIdentity: s.holderIdentity ?? '',
      leaseDurationSeconds: s.leaseDurationSeconds ?? 0,
      acquireTime: s.acquireTime ?? '',
      renewTime: s.renewTime ?? '',
      leaseTransitions: s.leaseTransitions ?? 0,
    },
  };
}

/** A coordination.k8s.io/v1 Lease; writes carry resourceVersion, so a stale update gets 409. */
export function kubeLeaseStore(client: KubeClient, namespace: string, name: string): LeaseStore {
  const collection = `/apis/coordination.k8s.io/v1/namespaces/${enc(namespace)}/leases`;
  const spec = (r: LeaseRecord): Record<string, unknown> => ({
    holderIdentity: r.holderIdentity, leaseDurationSeconds: r.leaseDurationSeconds,
    acquireTime: r.acquireTime, renewTime: r.renewTime, leaseTransitions: r.leaseTransitions,
  });
  return {
    async get(signal) {
      try {
        return toStored(await client.request<LeaseObject>('GET', `${collection}/${enc(name)}`, { signal, timeoutMs: 10_000 }));
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async create(record, signal) {
      return toStored(await client.request<LeaseObject>('POST', collection, {
        body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: spec(record) }, signal, timeoutMs: 10_000,
      }));
    },
    async update(record, resourceVersion, signal) {
      return toStored(await client.request<LeaseObject>('PUT', `${collection}/${enc(name)}`, {
        body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace, resourceVersion }, spec: spec(record) }, signal, timeoutMs: 10_000,
      }));
    },
  };
}
