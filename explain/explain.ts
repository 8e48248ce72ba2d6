/**
 * `lazarus explain pod NS/NAME`: the same pure functions the webhook and the extender use,
 * applied to one pod and a snapshot of the cluster, so an operator sees exactly why a pod was
 * (or would be) restored or started cold, and how every node scores.
 */
import * as K from '../api/keys.js';
import { compatibility, nodeFacts, parsePairs, podRestoreFacts, score, type NodeFacts } from '../api/compat.js';
import { selectPolicy } from '../api/policy.js';
import { specHash } from '../api/spec-hash.js';
import { criuString } from '../api/versions.js';
import { resolveOptIn, resolveWorkload } from '../api/workload.js';
import type { Checkpoint, EffectivePolicy, Node, OriginFacts, Pod } from '../api/types.js';
import { chooseCheckpoints, decide, type ClusterView } from '../webhook/decide.js';

export interface NodeVerdict { node: string; compatible: boolean; score: number; reasons: string[]; ready: boolean; unschedulable: boolean }

export interface Explanation {
  pod: string;
  workload: string;
  policy: string;
  optIn: { enabled: boolean; because: string };
  specHashes: Record<string, string>;
  /** What the pod carries now. */
  restoredFrom: Record<string, string> | undefined;
  /** For a cold pod: what the webhook would decide if the pod were created now. */
  wouldRestore: { outcome: string; reason: string; checkpoints?: Record<string, string> } | undefined;
  origin: OriginFacts | undefined;
  nodes: NodeVerdict[];
  boundTo: string | undefined;
}

export function explainPod(pod: Pod & { spec: { nodeName?: string } }, namespace: string, view: ClusterView, nodes: readonly Node[], now: number): Explanation {
  const name = pod.metadata.name ?? '';
  const resolved = resolveWorkload(pod, name, namespace, view.owners);
  const policy: EffectivePolicy = selectPolicy(view.policies(), { namespaceLabels: view.namespaceLabels(namespace), workloadLabels: resolved.labels });
  const restored = podRestoreFacts(pod);
  const originals = parsePairs(pod.metadata.annotations?.[K.ORIGINAL_IMAGES]);
  const specHashes = Object.fromEntries(pod.spec.containers.map((c) => [c.name, specHash(c, originals.get(c.name))]));

  let origin: OriginFacts | undefined = restored?.origin;
  let wouldRestore: Explanation['wouldRestore'];
  if (!restored) {
    // The pod as it was before any restore: what would the webhook do with it now?
    const d = decide({ pod, namespace, excludedNamespaces: new Set(), now }, view);
    wouldRestore = { outcome: d.outcome, reason: d.reason, ...(d.checkpoints ? { checkpoints: d.checkpoints } : {}) };
    if (d.outcome === 'restored' || d.outcome === 'cold') {
      const choice = chooseCheckpoints(pod.spec.containers, namespace, resolved.workload, view, policy, now);
      if (choice.ok) origin = choice.origin.spec.origin;
    }
  }
  const rules = { compatibility: policy.spec.compatibility, placement: policy.spec.placement };
  const baseImages = restored?.baseImages ?? pod.spec.containers.map((c) => c.image ?? '');
  const verdicts = nodes.map((n) => nodeFacts(n)).map((n: NodeFacts): NodeVerdict => {
    if (!origin) return { node: n.name, compatible: true, score: 0, reasons: [], ready: n.ready, unschedulable: n.unschedulable };
    const c = compatibility(origin, n, rules);
    return { node: n.name, compatible: c.ok, score: c.ok ? score(origin, n, baseImages) : 0, reasons: c.reasons, ready: n.ready, unschedulable: n.unschedulable };
  }).sort((a, b) => Number(b.compatible) - Number(a.compatible) || b.score - a.score || a.node.localeCompare(b.node));

  return {
    pod: `${namespace}/${name}`,
    workload: `${resolved.workload.kind}/${resolved.workload.name}`,
    policy: policy.name || '(built-in defaults)',
    optIn: resolveOptIn(resolved.chain, policy),
    specHashes,
    restoredFrom: restored ? Object.fromEntries(parsePairs(pod.metadata.annotations?.[K.RESTORED_FROM])) : undefined,
    wouldRestore,
    origin,
    nodes: verdicts,
    boundTo: pod.spec.nodeName,
  };
}

export function formatExplanation(e: Explanation): string {
  const lines = [
    `pod ${e.pod} (${e.workload})${e.boundTo ? ` on ${e.boundTo}` : ', not scheduled yet'}`,
    `policy: ${e.policy}; ${e.optIn.enabled ? 'opted in' : 'not opted in'}: ${e.optIn.because}`,
    `spec hash: ${Object.entries(e.specHashes).map(([c, h]) => `${c}=${h}`).join(' ')}`,
  ];
  if (e.restoredFrom) {
    lines.push(`restored from: ${Object.entries(e.restoredFrom).map(([c, cp]) => `${c} ← ${cp}`).join(', ')}`);
  } else if (e.wouldRestore) {
    lines.push(`started cold; created now it would be ${e.wouldRestore.outcome}: ${e.wouldRestore.reason}`);
  }
  if (e.origin) {
    lines.push(`checkpoint origin: ${e.origin.node} (${e.origin.architecture}, kernel ${e.origin.kernelVersion}, criu ${criuString(e.origin.criuVersion)}, ${e.origin.runtime})`);
    lines.push('nodes:');
    for (const n of e.nodes) {
      const state = [!n.ready && 'NotReady', n.unschedulable && 'cordoned'].filter(Boolean).join(', ');
      lines.push(n.compatible
        ? `  ✔ ${n.node.padEnd(24)} score ${String(n.score).padStart(2)}${state ? `  (${state})` : ''}${n.node === e.boundTo ? '  ← bound here' : ''}`
        : `  ✘ ${n.node.padEnd(24)} ${n.reasons.join('; ')}`);
    }
    if (!e.nodes.some((n) => n.compatible && n.ready && !n.unschedulable)) lines.push('  no Ready, schedulable node can restore this checkpoint');
  }
  return lines.join('\n');
}

export type { Checkpoint };
