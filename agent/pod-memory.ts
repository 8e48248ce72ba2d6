/**
 * The pods of this node, remembered for a while after they are deleted. A drain checkpoints a pod
 * and then evicts it; the archive may be read after the pod is gone, and its spec hash needs the
 * pod's container spec. List+watch with `fieldSelector=spec.nodeName=<node>`; only what the
 * agent reads is kept.
 */
import type { Pod } from '../api/types.js';
import type { KubeClient } from '../kube/client.js';
import { backoffDelay, type Backoff } from '../runtime/backoff.js';
import type { Logger } from '../runtime/log.js';

const RELIST_BACKOFF: Backoff = { baseMs: 500, maxMs: 30_000 };

interface Remembered { pod: Pod; deletedAt?: number }

/** Keeps metadata and containers only: what workload resolution and the spec hash read. */
export function slimPod(pod: Pod): Pod {
  const m = pod.metadata;
  return {
    metadata: {
      ...(m.name ? { name: m.name } : {}), ...(m.namespace ? { namespace: m.namespace } : {}),
      ...(m.uid ? { uid: m.uid } : {}), ...(m.creationTimestamp ? { creationTimestamp: m.creationTimestamp } : {}),
      ...(m.generation !== undefined ? { generation: m.generation } : {}), ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
      ...(m.labels ? { labels: m.labels } : {}), ...(m.annotations ? { annotations: m.annotations } : {}),
      ...(m.ownerReferences ? { ownerReferences: m.ownerReferences } : {}),
    },
    spec: { containers: pod.spec.containers },
  };
}

export class PodMemory {
  private readonly pods = new Map<string, Remembered>();
  private resourceVersion = '';
  synced = false;

  constructor(private readonly o: {
    kube: KubeClient; nodeName: string; log: Logger;
    now: () => number; retainMs: number;
    sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  }) {}

  /** Deleted pods by UID: a StatefulSet pod recreated under the same name replaces its entry above. */
  private readonly deleted = new Map<string, Remembered>();

  /** The pod of that name; with `uid`, the one of that UID if it was deleted and replaced since. */
  get(namespace: string, name: string, uid?: string): Pod | undefined {
    const byName = this.pods.get(`${namespace}/${name}`)?.pod;
    if (uid === undefined || byName?.metadata.uid === uid) return byName;
    const gone = this.deleted.get(uid)?.pod;
    return gone?.metadata.namespace === namespace && gone.metadata.name === name ? gone : byName;
  }

  private prune(): void {
    const cutoff = this.o.now() - this.o.retainMs;
    for (const [k, v] of this.pods) if (v.deletedAt !== undefined && v.deletedAt < cutoff) this.pods.delete(k);
    for (const [k, v] of this.deleted) if (v.deletedAt !== undefined && v.deletedAt < cutoff) this.deleted.delete(k);
  }

  private key(pod: Pod): string { return `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}`; }

  async run(signal: AbortSignal): Promise<void> {
    const fieldSelector = `spec.nodeName=${this.o.nodeName}`;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (!this.resourceVersion) {
          const list = await this.o.kube.request<{ items?: Pod[]; metadata?: { resourceVersion?: string } }>('GET', '/api/v1/pods', { query: { fieldSelector }, signal });
          const seen = new Set<string>();
          for (const p of list.items ?? []) { this.pods.set(this.key(p), { pod: slimPod(p) }); seen.add(this.key(p)); }
          // Pods that vanished while no watch was open count as deleted now.
          for (const [k, v] of this.pods) {
            if (seen.has(k) || v.deletedAt !== undefined) continue;
            v.deletedAt = this.o.now();
            if (v.pod.metadata.uid) this.deleted.set(v.pod.metadata.uid, v);
          }
          this.resourceVersion = list.metadata?.resourceVersion ?? '0';
          this.synced = true;
        }
        await this.o.kube.watch('/api/v1/pods', { fieldSelector, resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 240 }, (type, object) => {
          const pod = object as Pod & { code?: number };
          if (type === 'ERROR') { this.resourceVersion = ''; return; }
          if (pod.metadata?.resourceVersion) this.resourceVersion = pod.metadata.resourceVersion;
          if (type === 'BOOKMARK') return;
          if (type === 'DELETED') {
            const gone = { pod: slimPod(pod), deletedAt: this.o.now() };
            this.pods.set(this.key(pod), gone);
            if (pod.metadata.uid) this.deleted.set(pod.metadata.uid, gone);
          }
          else this.pods.set(this.key(pod), { pod: slimPod(pod) });
          this.prune();
        }, signal);
        failures = 0;
      } catch (err) {
        if (signal.aborted) return;
        this.resourceVersion = '';
        this.o.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'pod watch failed; relisting');
        await this.o.sleep(backoffDelay(++failures, RELIST_BACKOFF), signal);
      }
    }
  }
}
