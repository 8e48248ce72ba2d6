import { parseDuration } from './duration.js';
import type { EffectivePolicy, LabelSelector, PolicySpec, RestorePolicy } from './types.js';

/**
 * `checkpoint.maxParallelPerNode`: checkpoints one node takes at once. The default comes from
 * bench/checkpoint-parallel.ts (bench/RESULTS.md, "Checkpoints in parallel on one node").
 */
export const DEFAULT_MAX_PARALLEL_PER_NODE = 4;
/** The CRD's maximum: beyond it a node's disk and the frozen processes pay, and nothing is gained. */
export const MAX_PARALLEL_PER_NODE = 64;

/** Why a `checkpoint.maxParallelPerNode` value is refused (the CRD schema says the same); undefined when it is fine. */
export function parallelPerNodeProblem(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_PARALLEL_PER_NODE) return undefined;
  return `spec.checkpoint.maxParallelPerNode must be a whole number from 1 to ${MAX_PARALLEL_PER_NODE}, got ${JSON.stringify(value)}`;
}

/** DESIGN §3: what applies when no RestorePolicy exists or a field is left out. */
const DEFAULTS: PolicySpec = {
  priority: 0,
  namespaceSelector: {},
  workloadSelector: {},
  mode: 'OptIn',
  maxCheckpointAge: '24h',
  compatibility: { criu: 'AtLeastOrigin', cpu: 'Superset', runtime: 'SameName', kernel: 'Prefer' },
  placement: 'Prefer',
  schedulerName: '',
  imagePullSecret: '',
  checkpoint: { interval: '', onDrain: true, timeoutSeconds: 60, maxParallelPerNode: DEFAULT_MAX_PARALLEL_PER_NODE, retain: 3, registry: '', pushSecret: '', evictionTimeout: '60s' },
  restore: { failureAction: 'ColdStart', unschedulableTimeout: '60s', imagePullTimeout: '2m' },
};
export const DEFAULT_POLICY_SPEC: Readonly<PolicySpec> = Object.freeze(DEFAULTS);

const DEFAULT_MAX_AGE_MS = 24 * 3_600_000;

/** A stored policy with defaults filled in. The API server has validated it (CRD schema). */
export function effectivePolicy(policy: RestorePolicy): EffectivePolicy {
  const s = policy.spec ?? {};
  const d = DEFAULT_POLICY_SPEC;
  const spec: PolicySpec = {
    priority: s.priority ?? d.priority,
    namespaceSelector: s.namespaceSelector ?? d.namespaceSelector,
    workloadSelector: s.workloadSelector ?? d.workloadSelector,
    mode: s.mode ?? d.mode,
    maxCheckpointAge: s.maxCheckpointAge || d.maxCheckpointAge,
    compatibility: { ...d.compatibility, ...s.compatibility },
    placement: s.placement ?? d.placement,
    schedulerName: s.schedulerName ?? d.schedulerName,
    imagePullSecret: s.imagePullSecret ?? d.imagePullSecret,
    checkpoint: { ...d.checkpoint, ...s.checkpoint },
    restore: { ...d.restore, ...s.restore },
  };
  // A value the schema would refuse (a policy stored before the field's schema) takes the default.
  if (parallelPerNodeProblem(spec.checkpoint.maxParallelPerNode)) spec.checkpoint.maxParallelPerNode = d.checkpoint.maxParallelPerNode;
  return {
    name: policy.metadata.name ?? '',
    spec,
    maxCheckpointAgeMs: parseDuration(spec.maxCheckpointAge) ?? DEFAULT_MAX_AGE_MS,
  };
}

export const DEFAULT_POLICY: EffectivePolicy = Object.freeze(effectivePolicy({ metadata: { name: '' } }));

/** metav1.LabelSelector semantics: an empty selector matches everything. */
export function matchesSelector(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>> | undefined): boolean {
  if (!selector) return true;
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (have[key] !== value) return false;
  }
  for (const req of selector.matchExpressions ?? []) {
    const present = Object.hasOwn(have, req.key);
    const value = have[req.key];
    switch (req.operator) {
      case 'In':
        if (!present || !(req.values ?? []).includes(value ?? '')) return false;
        break;
      case 'NotIn':
        if (present && (req.values ?? []).includes(value ?? '')) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
      default:
        return false; // unknown operator: match nothing, like the API server would refuse it
    }
  }
  return true;
}

export interface PolicySubject {
  namespaceLabels: Readonly<Record<string, string>> | undefined;
  workloadLabels: Readonly<Record<string, string>> | undefined;
}

/**
 * The policy that applies to a workload: the highest `priority` among those whose selectors
 * match, ties broken by name order; the built-in defaults when none matches.
 */
export function selectPolicy(policies: readonly EffectivePolicy[], subject: PolicySubject): EffectivePolicy {
  let best: EffectivePolicy | undefined;
  for (const p of policies) {
    if (!matchesSelector(p.spec.namespaceSelector, subject.namespaceLabels)) continue;
    if (!matchesSelector(p.spec.workloadSelector, subject.workloadLabels)) continue;
    if (!best || p.spec.priority > best.spec.priority || (p.spec.priority === best.spec.priority && p.name < best.name)) {
      best = p;
    }
  }
  return best ?? DEFAULT_POLICY;
}
