/**
 * `lazarus explain pod NS/NAME`: the same pure functions the webhook and the extender use,
 * applied to one pod and a snapshot of the cluster, so an operator sees exactly why a pod was
 * (or would be) restored or started cold, and how every node scores.
 */
import * as K from '../api/keys.js';
import { ALWAYS_EXCLUDED_NAMESPACES } from '../api/keys.js';
import { compatibility, nodeFacts, parsePairs, podRestoreFacts, score, type NodeFacts } from '../api/compat.js';
import { selectPolicy } from '../api/policy.js';
import { podContainerSpecHash } from '../api/spec-hash.js';
import { criuString } from '../api/versions.js';
import { formatAge } from '../api/duration.js';
import { resolveOptIn, resolveWorkload } from '../api/workload.js';
import type { Checkpoint, EffectivePolicy, Node, OriginFacts, Pod } from '../api/types.js';
import { trustedPrefix } from '../api/image-trust.js';
import { chooseCheckpoints, decide, untrustedReason, type ClusterView, type Outcome } from '../webhook/decide.js';

export interface NodeVerdict { node: string; compatible: boolean; score: number; reasons: string[]; ready: boolean; unschedulable: boolean }

/** How a checkpoint line names the path that took it (status.trigger). */
const TRIGGER_WORDS: Readonly<Record<string, string>> = {
  interval: '(periodic)', drain: '(node cordoned)', demand: '(on demand)', eviction: '(eviction held for it)',
};

/** One checkpoint of the pod's workload and container, and why it is (not) the one. */
export interface CheckpointVerdict {
  container: string;
  name: string;
  phase: string;
  takenAt: string;
  /** e.g. `2m`, relative to when explain ran. */
  age: string;
  originNode: string;
  /** Which path took it, when the controller recorded it. */
  trigger?: string;
  specHash: string;
  /** Restored from (restored pod), or the one the webhook picks (cold pod). */
  chosen: boolean;
  /** Empty when the checkpoint is usable for this pod. */
  unusable: string;
}

export interface Explanation {
  pod: string;
  workload: string;
  policy: string;
  optIn: { enabled: boolean; because: string };
  specHashes: Record<string, string>;
  /** What the pod carries now. */
  restoredFrom: Record<string, string> | undefined;
  /** For a pod that was not restored: what the webhook would decide if the pod were created now. */
  wouldRestore: { outcome: Outcome; reason: string; checkpoints?: Record<string, string> } | undefined;
  /** Every checkpoint of the pod's workload and containers, newest first. */
  checkpoints: CheckpointVerdict[];
  /** The origin of the checkpoint restored from, or of the one the webhook picks. */
  origin: OriginFacts | undefined;
  /** Every node judged against `origin`; empty when there is no checkpoint to judge them against. */
  nodes: NodeVerdict[];
  boundTo: string | undefined;
}

/**
 * `now` in milliseconds since the epoch; `excludedNamespaces` and `defaultRegistry` as the
 * webhook has them (kube-system, Lazarus' own, its --exclude-namespace; its --registry).
 */
export function explainPod(pod: Pod & { spec: { nodeName?: string } }, namespace: string, view: ClusterView, nodes: readonly Node[], now: number,
  excludedNamespaces: ReadonlySet<string> = new Set(ALWAYS_EXCLUDED_NAMESPACES), defaultRegistry = ''): Explanation {
  const name = pod.metadata.name ?? '';
  const resolved = resolveWorkload(pod, name, namespace, view.owners);
  const policy: EffectivePolicy = selectPolicy(view.policies(), { namespaceLabels: view.namespaceLabels(namespace), workloadLabels: resolved.labels });
  const restored = podRestoreFacts(pod);
  const restoredFrom = restored ? Object.fromEntries(parsePairs(pod.metadata.annotations?.[K.RESTORED_FROM])) : undefined;
  // As the webhook stamped it at admission (webhooks after Lazarus may have changed the pod since);
  // else computed, a restored pod with its original image.
  const specHashes = Object.fromEntries(pod.spec.containers.map((c) => [c.name, podContainerSpecHash(pod, c).hash]));

  let origin: OriginFacts | undefined = restored?.origin;
  let chosen: Record<string, string> | undefined = restoredFrom;
  let wouldRestore: Explanation['wouldRestore'];
  if (!restored) {
    // The pod as it was created (before the scheduler bound it): what would the webhook do with it now?
    const { nodeName: _boundTo, ...created } = pod.spec;
    const d = decide({ pod: { ...pod, spec: created }, namespace, excludedNamespaces, defaultRegistry, now }, view);
    wouldRestore = { outcome: d.outcome, reason: d.reason, ...(d.checkpoints ? { checkpoints: d.checkpoints } : {}) };
    if (d.outcome === 'restored' || d.outcome === 'cold') {
      const choice = chooseCheckpoints(pod.spec.containers, namespace, resolved.workload, view, policy, now, defaultRegistry);
      if (choice.ok) {
        origin = choice.origin.spec.origin;
        chosen = Object.fromEntries([...choice.byContainer].map(([c, cp]) => [c, cp.metadata.name ?? '']));
      }
    }
  }

  const checkpoints = pod.spec.containers.flatMap((c) => view.checkpoints(namespace, resolved.workload, c.name)
    .map((cp) => checkpointVerdict(cp, c.name, specHashes[c.name] ?? '', chosen?.[c.name] === cp.metadata.name, policy, now, defaultRegistry)))
    .sort((a, b) => a.container.localeCompare(b.container) || Date.parse(b.takenAt) - Date.parse(a.takenAt) || a.name.localeCompare(b.name));

  const rules = { compatibility: policy.spec.compatibility, placement: policy.spec.placement };
  const baseImages = restored?.baseImages ?? pod.spec.containers.map((c) => c.image ?? '');
  const capableReasons = new Map(nodes.map((n) => [n.metadata.name ?? '', n.metadata.annotations?.[K.NODE_RESTORE_CAPABLE_REASON]]));
  const verdicts = origin === undefined ? [] : nodes.map((n) => nodeFacts(n)).map((n: NodeFacts): NodeVerdict => {
    const c = compatibility(origin, n, rules);
    // The agent says why its node cannot restore (DESIGN §2): more use to an operator than the label alone.
    const why = capableReasons.get(n.name);
    const reasons = typeof why === 'string' && why !== ''
      ? c.reasons.map((r, i) => (c.rules[i] === 'restoreCapable' ? `node is not restore-capable: ${why}` : r))
      : c.reasons;
    return { node: n.name, compatible: c.ok, score: c.ok ? score(origin, n, baseImages) : 0, reasons, ready: n.ready, unschedulable: n.unschedulable };
  }).sort((a, b) => Number(b.compatible) - Number(a.compatible) || b.score - a.score || a.node.localeCompare(b.node));

  return {
    pod: `${namespace}/${name}`,
    workload: `${resolved.workload.kind}/${resolved.workload.name}`,
    policy: policy.name || '(built-in defaults)',
    optIn: resolveOptIn(resolved.chain, policy),
    specHashes,
    restoredFrom,
    wouldRestore,
    checkpoints,
    origin,
    nodes: verdicts,
    boundTo: pod.spec.nodeName,
  };
}

/** The same tests, in the same order, as chooseCheckpoints applies. */
function checkpointVerdict(cp: Checkpoint, container: string, podHash: string, chosen: boolean, policy: EffectivePolicy, now: number, defaultRegistry: string): CheckpointVerdict {
  const phase = cp.status?.phase ?? 'Pending';
  const takenAt = Date.parse(cp.spec.takenAt);
  let unusable = '';
  if (phase !== 'Ready') unusable = `not Ready (${phase}${cp.status?.reason ? `: ${cp.status.reason}` : ''})`;
  else if (now - takenAt > policy.maxCheckpointAgeMs) unusable = `older than maxCheckpointAge ${policy.spec.maxCheckpointAge}`;
  else if (cp.spec.specHash !== podHash) unusable = `spec hash ${cp.spec.specHash} is not the pod's ${podHash}: the container changed since`;
  else {
    const untrusted = untrustedReason(cp.spec.image, trustedPrefix(policy.spec.checkpoint.registry, defaultRegistry));
    if (untrusted) unusable = `not trusted: ${untrusted}`;
  }
  return {
    container, name: cp.metadata.name ?? '', phase, takenAt: cp.spec.takenAt, age: formatAge(now - takenAt),
    originNode: cp.spec.origin.node, specHash: cp.spec.specHash, chosen, unusable,
    ...(cp.status?.trigger ? { trigger: cp.status.trigger } : {}),
  };
}

const WOULD: Record<Outcome, string> = { restored: 'restore it', cold: 'start it cold', skipped: 'leave it alone' };

export function formatExplanation(e: Explanation): string {
  const lines = [
    `pod ${e.pod} (${e.workload})${e.boundTo ? ` on ${e.boundTo}` : ', not scheduled yet'}`,
    `policy: ${e.policy}; ${e.optIn.enabled ? 'opted in' : e.optIn.because.startsWith(`${K.RESTORE}=disabled`) ? 'opted out' : 'not opted in'}: ${e.optIn.because}`,
    `spec hash: ${Object.entries(e.specHashes).map(([c, h]) => `${c}=${h}`).join(' ')}`,
  ];
  if (e.restoredFrom) {
    const known = new Set(e.checkpoints.map((c) => c.name));
    lines.push(`restored from: ${Object.entries(e.restoredFrom).map(([c, cp]) => `${c} ← ${cp}${known.has(cp) ? '' : ' (checkpoint no longer exists)'}`).join(', ')}`);
  } else if (e.wouldRestore) {
    lines.push(`started cold; created now, the webhook would ${WOULD[e.wouldRestore.outcome]}: ${e.wouldRestore.reason}`);
  }
  if (e.checkpoints.length > 0) {
    lines.push(`checkpoints of ${e.workload}:`);
    const width = Math.max(...e.checkpoints.map((c) => c.name.length));
    for (const c of e.checkpoints) {
      const mark = c.unusable ? '✘' : '✔';
      const what = `${c.phase}, taken ${c.age} ago on ${c.originNode}${c.trigger ? ` ${TRIGGER_WORDS[c.trigger] ?? `(${c.trigger})`}` : ''}`;
      const verdict = c.unusable || (c.chosen ? (e.restoredFrom ? 'restored from this' : 'the webhook picks this') : 'usable');
      lines.push(`  ${mark} ${c.container} ${c.name.padEnd(width)}  ${what}: ${verdict}`);
    }
  } else if (!e.restoredFrom) {
    lines.push(`checkpoints of ${e.workload}: none in this namespace`);
  }
  if (e.origin) {
    lines.push(`checkpoint origin: ${e.origin.node} (${e.origin.architecture}, kernel ${e.origin.kernelVersion}, criu ${criuString(e.origin.criuVersion)}, ${e.origin.runtime})`);
    lines.push('nodes:');
    const width = Math.max(24, ...e.nodes.map((n) => n.node.length));
    for (const n of e.nodes) {
      const state = [!n.ready && 'NotReady', n.unschedulable && 'cordoned'].filter(Boolean).join(', ');
      lines.push(n.compatible
        ? `  ✔ ${n.node.padEnd(width)} score ${String(n.score).padStart(2)}${state ? `  (${state})` : ''}${n.node === e.boundTo ? '  ← bound here' : ''}`
        : `  ✘ ${n.node.padEnd(width)} ${n.reasons.join('; ')}`);
    }
    if (!e.nodes.some((n) => n.compatible && n.ready && !n.unschedulable)) lines.push('  no Ready, schedulable node can restore this checkpoint');
  } else {
    lines.push('nodes: no checkpoint to restore, so any node can run it cold');
  }
  return lines.join('\n');
}
