/**
 * From cached pods to checkpoint targets: the running containers of opted-in, running pods, each
 * with its policy's checkpoint settings (DESIGN §2 opt-in, §3 RestorePolicy). Pure.
 */
import { parseDuration } from '../api/duration.js';
import { selectPolicy } from '../api/policy.js';
import { resolveOptIn, resolveWorkload, type OwnerLookup } from '../api/workload.js';
import type { EffectivePolicy, OwnerReference, WorkloadRef } from '../api/types.js';
import type { ContainerStatusView, UnschedulableView } from './outcome.js';
import type { Target } from './schedule.js';

/** What the controller keeps of a pod. */
export interface PodView {
  namespace: string;
  name: string;
  uid: string;
  nodeName?: string;
  phase?: string;
  /** metadata.creationTimestamp */
  createdAt?: string;
  /** status.startTime */
  startTime?: string;
  deleting: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  containers: string[];
  containerStatuses?: ContainerStatusView[];
  /** While PodScheduled is False with reason Unschedulable. */
  unschedulable?: UnschedulableView;
}

export interface PolicyView {
  policies(): readonly EffectivePolicy[];
  namespaceLabels(namespace: string): Record<string, string> | undefined;
  owners: OwnerLookup;
}

export interface PodPolicy {
  workload: WorkloadRef;
  policy: EffectivePolicy;
  enabled: boolean;
  /** Why (opted in or not), in words: `lazarus.dev/restore=enabled on Deployment web`. */
  because: string;
}

export function podPolicy(pod: PodView, view: PolicyView): PodPolicy {
  const resolved = resolveWorkload({ metadata: { labels: pod.labels ?? {}, annotations: pod.annotations ?? {}, ownerReferences: pod.ownerReferences ?? [] } }, pod.name, pod.namespace, view.owners);
  const policy = selectPolicy(view.policies(), { namespaceLabels: view.namespaceLabels(pod.namespace), workloadLabels: resolved.labels });
  const optIn = resolveOptIn(resolved.chain, policy);
  return { workload: resolved.workload, policy, enabled: optIn.enabled, because: optIn.because };
}

/** The policy of a workload named by a Checkpoint (for `retain`), when its pod may be gone. */
export function workloadPolicy(namespace: string, workload: WorkloadRef, view: PolicyView, podLabels: Record<string, string> | undefined): EffectivePolicy {
  const labels = workload.kind === 'Pod' ? podLabels : view.owners.get(workload.kind, namespace, workload.name)?.labels;
  return selectPolicy(view.policies(), { namespaceLabels: view.namespaceLabels(namespace), workloadLabels: labels });
}

function time(text: string | undefined): number | undefined {
  const t = text ? Date.parse(text) : Number.NaN;
  return Number.isFinite(t) ? t : undefined;
}

export function checkpointTargets(pods: Iterable<PodView>, view: PolicyView, now: number): Target[] {
  const targets: Target[] = [];
  for (const pod of pods) {
    if (pod.phase !== 'Running' || !pod.nodeName || pod.deleting) continue;
    const { policy, enabled } = podPolicy(pod, view);
    if (!enabled) continue;
    const cp = policy.spec.checkpoint;
    const intervalMs = cp.interval ? parseDuration(cp.interval) ?? 0 : 0;
    if (intervalMs <= 0 && !cp.onDrain) continue;
    const running = new Set((pod.containerStatuses ?? []).filter((s) => s.state?.running).map((s) => s.name));
    for (const container of pod.containers) {
      if (!running.has(container)) continue;
      targets.push({
        key: `${pod.namespace}/${pod.name}/${container}`,
        namespace: pod.namespace, pod: pod.name, podUid: pod.uid, node: pod.nodeName, container,
        startedAt: time(pod.startTime) ?? now, intervalMs, onDrain: cp.onDrain, timeoutSeconds: cp.timeoutSeconds, maxParallelPerNode: cp.maxParallelPerNode,
      });
    }
  }
  return targets;
}
