/**
 * Where a pod may run by its own rules, as kube-scheduler's NodeAffinity, NodeName and
 * TaintToleration filters judge it: the pod's nodeSelector, its required node affinity (terms
 * ORed, expressions ANDed, matchFields on metadata.name) and NoSchedule/NoExecute taints. The
 * webhook asks it before promising a restore, so a pod is never rewritten into one that no node
 * can take (issue 13, "Pending forever"). Pure.
 */
import type { NodeSelectorRequirement, NodeSelectorTerm, Pod } from './types.js';

export interface Taint { key: string; value?: string; effect: string }
export interface Toleration { key?: string; operator?: string; value?: string; effect?: string }

/** What placement reads of a node; NodeFacts carries it. */
export interface PlacementFacts {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** NoSchedule and NoExecute taints only: PreferNoSchedule never keeps a pod off a node. */
  taints: readonly Taint[];
}

/** The effects that keep a pod off a node (kube-scheduler's TaintToleration filter). */
export function isHardTaint(effect: unknown): boolean {
  return effect === 'NoSchedule' || effect === 'NoExecute';
}

/** An empty term (no matchExpressions, no matchFields) matches no node, as in Kubernetes. */
export function isEmptyTerm(term: NodeSelectorTerm): boolean {
  return (term.matchExpressions?.length ?? 0) === 0 && (term.matchFields?.length ?? 0) === 0;
}

/**
 * The required terms with `added` ANDed into each (terms are ORed): a new lone term when the pod
 * has none. An empty term stays empty: it matches nothing, and adding requirements would widen
 * it into "any node that can restore". Never changes its input.
 */
export function withRequirements(terms: readonly NodeSelectorTerm[] | undefined, added: readonly NodeSelectorRequirement[]): NodeSelectorTerm[] {
  if (!terms || terms.length === 0) return [{ matchExpressions: [...added] }];
  return terms.map((term) => (isEmptyTerm(term) ? term : { ...term, matchExpressions: [...(term.matchExpressions ?? []), ...added] }));
}

function matchesRequirement(value: string | undefined, r: NodeSelectorRequirement): boolean {
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In': return value !== undefined && values.includes(value);
    case 'NotIn': return value === undefined || !values.includes(value);
    case 'Exists': return value !== undefined;
    case 'DoesNotExist': return value === undefined;
    case 'Gt':
    case 'Lt': {
      // Both sides must be integers, as the API server's own comparison requires.
      const have = value !== undefined && /^-?\d+$/.test(value) ? Number(value) : Number.NaN;
      const want = values.length === 1 && /^-?\d+$/.test(values[0] ?? '') ? Number(values[0]) : Number.NaN;
      if (Number.isNaN(have) || Number.isNaN(want)) return false;
      return r.operator === 'Gt' ? have > want : have < want;
    }
    default: return false;
  }
}

/** matchFields supports only metadata.name (In/NotIn), as the API server validates. */
function fieldValue(node: PlacementFacts, key: string): string | undefined {
  return key === 'metadata.name' ? node.name : undefined;
}

export function matchesTerm(node: PlacementFacts, term: NodeSelectorTerm): boolean {
  if (isEmptyTerm(term)) return false;
  return (term.matchExpressions ?? []).every((r) => matchesRequirement(Object.hasOwn(node.labels, r.key) ? node.labels[r.key] : undefined, r))
    && (term.matchFields ?? []).every((r) => matchesRequirement(fieldValue(node, r.key), r));
}

function tolerates(t: Toleration, taint: Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.operator === 'Exists') return !t.key || t.key === taint.key;
  return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
}

function formatRequirement(r: NodeSelectorRequirement): string {
  return `${r.key} ${r.operator}${r.values?.length ? ` [${r.values.join(',')}]` : ''}`;
}

/** The pod's own placement rules, plus the requirements a restore adds, compiled once per decision. */
export interface PodPlacement {
  /** The required node-selector terms the restored pod carries (the pod's own with the restore's ANDed in). */
  terms: NodeSelectorTerm[];
  /** Undefined when the pod may run on `node`; otherwise why not, for the first rule it breaks. */
  excludes(node: PlacementFacts): string | undefined;
}

export function podPlacement(pod: Pod, added: readonly NodeSelectorRequirement[]): PodPlacement {
  const spec = pod.spec;
  const nodeName = typeof spec.nodeName === 'string' && spec.nodeName !== '' ? spec.nodeName : undefined;
  const selector = isStringRecord(spec.nodeSelector) ? Object.entries(spec.nodeSelector) : [];
  const own = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  const terms = withRequirements(own, added);
  const tolerations = Array.isArray(spec.tolerations) ? (spec.tolerations as Toleration[]) : [];
  return {
    terms,
    excludes(node) {
      if (nodeName !== undefined && node.name !== nodeName) return `the pod's nodeName is ${nodeName}`;
      for (const [key, value] of selector) {
        if (node.labels[key] !== value) return `nodeSelector ${key}=${value} (node has ${Object.hasOwn(node.labels, key) ? `${key}=${node.labels[key] ?? ''}` : `no ${key}`})`;
      }
      if (!terms.some((term) => matchesTerm(node, term))) {
        // Name what the restore added when the pod's own terms would have matched: that is the
        // node the agent has not labelled (yet).
        const missing = added.filter((r) => !matchesRequirement(Object.hasOwn(node.labels, r.key) ? node.labels[r.key] : undefined, r));
        const ownMatch = !own || own.length === 0 || own.some((term) => matchesTerm(node, term));
        return ownMatch && missing.length > 0
          ? `node lacks what the restore requires: ${missing.map(formatRequirement).join(', ')}`
          : 'the pod\'s required node affinity';
      }
      for (const taint of node.taints) {
        if (!tolerations.some((t) => tolerates(t, taint))) return `taint ${taint.key}${taint.value ? `=${taint.value}` : ''}:${taint.effect} not tolerated`;
      }
      return undefined;
    },
  };
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    && Object.values(value).every((v) => typeof v === 'string');
}
