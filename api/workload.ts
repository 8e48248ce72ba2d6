/**
 * Which workload a pod belongs to, and whether it opted in (DESIGN §2): the pod's own
 * annotation, else its owners' (Pod → ReplicaSet → Deployment, Pod → StatefulSet), else the
 * policy's mode. A Deployment speaks for its ReplicaSets: the Deployment controller copies its
 * annotations onto them and never removes one, so a ReplicaSet's copy counts only while its
 * Deployment is not known.
 */
import * as K from './keys.js';
import type { EffectivePolicy, ObjectMeta, OwnerReference, WorkloadKind, WorkloadRef } from './types.js';

/** What a cache keeps of an owning object: just what opt-in and policy selection read. */
export interface OwnerView {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export type OwnerKind = 'ReplicaSet' | 'Deployment' | 'StatefulSet';

export interface OwnerLookup {
  get(kind: OwnerKind, namespace: string, name: string): OwnerView | undefined;
}

export interface ChainLink {
  kind: WorkloadKind;
  name: string;
  annotations: Record<string, string> | undefined;
  /** The owner is named by a reference but not in the cache: its annotations are unknown, not absent. */
  missing?: true;
}

export interface ResolvedWorkload {
  workload: WorkloadRef;
  /** The workload's own labels (the pod's for a bare pod), for policy workloadSelector. */
  labels: Record<string, string> | undefined;
  /** Pod first, then each owner up to the workload. */
  chain: ChainLink[];
}

function controllerOf(refs: OwnerReference[] | undefined): OwnerReference | undefined {
  return refs?.find((r) => r.controller) ?? refs?.[0];
}

/**
 * Follows controller owner references from a pod to its top-level workload. A ReplicaSet not
 * yet in the cache still names its Deployment: `<deployment>-<pod-template-hash>`.
 */
export function resolveWorkload(pod: { metadata: ObjectMeta }, podName: string, namespace: string, owners: OwnerLookup): ResolvedWorkload {
  const meta = pod.metadata;
  const chain: ChainLink[] = [{ kind: 'Pod', name: podName, annotations: meta.annotations }];
  const owner = controllerOf(meta.ownerReferences);

  if (owner?.kind === 'StatefulSet' && owner.apiVersion.startsWith('apps/')) {
    const sts = owners.get('StatefulSet', namespace, owner.name);
    chain.push({ kind: 'StatefulSet', name: owner.name, annotations: sts?.annotations, ...(sts ? {} : { missing: true as const }) });
    return { workload: { kind: 'StatefulSet', name: owner.name }, labels: sts?.labels, chain };
  }
  if (owner?.kind === 'ReplicaSet' && owner.apiVersion.startsWith('apps/')) {
    const rs = owners.get('ReplicaSet', namespace, owner.name);
    chain.push({ kind: 'ReplicaSet', name: owner.name, annotations: rs?.annotations, ...(rs ? {} : { missing: true as const }) });
    const rsOwner = controllerOf(rs?.ownerReferences);
    const hash = meta.labels?.['pod-template-hash'];
    const deploymentName = rsOwner?.kind === 'Deployment'
      ? rsOwner.name
      : !rs && hash && owner.name.endsWith(`-${hash}`) ? owner.name.slice(0, -(hash.length + 1)) : undefined;
    if (deploymentName) {
      const deployment = owners.get('Deployment', namespace, deploymentName);
      if (deployment || rsOwner) {
        chain.push({ kind: 'Deployment', name: deploymentName, annotations: deployment?.annotations, ...(deployment ? {} : { missing: true as const }) });
        return { workload: { kind: 'Deployment', name: deploymentName }, labels: deployment?.labels, chain };
      }
    }
    return { workload: { kind: 'ReplicaSet', name: owner.name }, labels: rs?.labels, chain };
  }
  return { workload: { kind: 'Pod', name: podName }, labels: meta.labels, chain };
}

export interface OptIn { enabled: boolean; because: string }

/**
 * The nearest explicit `lazarus.dev/restore` wins; otherwise the policy's mode decides. A
 * ReplicaSet under a known Deployment is skipped: its annotation is the Deployment controller's
 * copy, stale once the user removes or changes the Deployment's.
 */
export function resolveOptIn(chain: readonly ChainLink[], policy: EffectivePolicy): OptIn {
  for (const [i, link] of chain.entries()) {
    const up = chain[i + 1];
    if (link.kind === 'ReplicaSet' && up?.kind === 'Deployment' && !up.missing) continue;
    const value = link.annotations?.[K.RESTORE];
    if (value === 'enabled' || value === 'disabled') {
      return { enabled: value === 'enabled', because: `${K.RESTORE}=${value} on ${link.kind} ${link.name}` };
    }
  }
  const source = policy.name ? `RestorePolicy ${policy.name}` : 'the default policy';
  return policy.spec.mode === 'All'
    ? { enabled: true, because: `${source} has mode All` }
    : { enabled: false, because: `not opted in (${K.RESTORE} not set and ${source} has mode OptIn)` };
}
