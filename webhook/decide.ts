/**
 * The admission decision (DESIGN §4, Webhook) as one pure function of the request, a snapshot
 * view of the cluster and the clock. No I/O, no Date.now(): the server feeds it, tests table it.
 */
import type { Operation } from 'fast-json-patch';
import * as K from '../api/keys.js';
import { compileCompatibility, formatPairs, type NodeFacts } from '../api/compat.js';
import { formatAge } from '../api/duration.js';
import { NOT_TRUSTED, trustedPrefix, untrustedImage } from '../api/image-trust.js';
import { podPlacement, withRequirements } from '../api/placement.js';
import { selectPolicy } from '../api/policy.js';
import { hashedFields, specHash } from '../api/spec-hash.js';
import { criuString, runtimeLabelValue } from '../api/versions.js';
import { PatchBuilder, sharedAnnotations, sharedValue, type Annotation } from './patch.js';
import { coldStartPatch, specHashesStamp } from './spec-hashes.js';
import { resolveOptIn, resolveWorkload, type OwnerLookup } from '../api/workload.js';
import type { Checkpoint, CompatibilityRules, Container, EffectivePolicy, NodeSelectorRequirement, NodeSelectorTerm, OriginFacts, Placement, Pod, WorkloadRef } from '../api/types.js';

/** What the decision may look up; implemented over informer caches in production. */
export interface ClusterView {
  policies(): readonly EffectivePolicy[];
  namespaceLabels(namespace: string): Record<string, string> | undefined;
  owners: OwnerLookup;
  /**
   * Checkpoints in `namespace` of that workload and container, any phase. A list handed out is
   * never changed afterwards (a change makes a new list): decisions remember facts per list.
   */
  checkpoints(namespace: string, workload: WorkloadRef, container: string): readonly Checkpoint[];
  nodes(): Iterable<NodeFacts>;
}

export interface AdmissionInput {
  pod: Pod;
  /** request.namespace: pods from controllers arrive without metadata.namespace. */
  namespace: string;
  excludedNamespaces: ReadonlySet<string>;
  /**
   * The webhook's `--registry`: the trusted prefix for checkpoint images when the pod's policy
   * sets no spec.checkpoint.registry (the agent's `--registry` means the same). Default none.
   */
  defaultRegistry?: string;
  /** Milliseconds since the epoch. */
  now: number;
}

export type Outcome = 'skipped' | 'cold' | 'restored';

export interface Decision {
  outcome: Outcome;
  patch: Operation[];
  /** JSON.stringify(patch), written with it. */
  patchJson: string;
  warnings: string[];
  /** One line for logs and metrics labels' neighbours. */
  reason: string;
  /**
   * Until when (ms since the epoch, exclusive) the same input gets the same decision, if the
   * cluster view does not change: a checkpoint ageing past maxCheckpointAge, or the age in a
   * warning, can change it before then.
   */
  validUntil: number;
  policy?: string;
  checkpoints?: Record<string, string>;
}

/** Warnings give checkpoint ages to the second. */
const AGE_RESOLUTION_MS = 1_000;

const skip = (reason: string): Decision => ({ outcome: 'skipped', patch: [], patchJson: '[]', warnings: [], reason, validUntil: Infinity });
/**
 * A cold start still stamps the pod's spec hashes, so its later checkpoints match its siblings,
 * and says why it is cold, for the controller's Event.
 */
function cold(reason: string, policy: EffectivePolicy, validUntil: number, pod: Pod, hashes: readonly string[]): Decision {
  const patch = coldStartPatch(pod, reason, hashes);
  return { outcome: 'cold', patch: patch.ops, patchJson: patch.json, warnings: [`lazarus: ${reason}; starting cold`], reason, policy: policy.name, validUntil };
}

/**
 * The pod reduced to what decide() reads: its identity and owners, annotations and labels, each
 * container's name and spec-hash fields, the scheduling fields a restore patches and those that
 * say where the pod may run (nodeSelector, tolerations, nodeName). Sibling
 * pods of one ReplicaSet reduce to the same value (the injected token mount, whose name differs
 * per pod, is left out as specHash leaves it out), so it can key a cache of decisions.
 */
export function decisionInputs(pod: Pod): Pod {
  const { name, generateName, annotations, labels, ownerReferences } = pod.metadata;
  const { affinity, schedulerName, imagePullSecrets, nodeSelector, tolerations, nodeName } = pod.spec;
  const metadata: Pod['metadata'] = {};
  if (name !== undefined) metadata.name = name;
  if (generateName !== undefined) metadata.generateName = generateName;
  if (annotations !== undefined) metadata.annotations = annotations;
  if (labels !== undefined) metadata.labels = labels;
  if (ownerReferences !== undefined) metadata.ownerReferences = ownerReferences;
  const spec: Pod['spec'] = { containers: pod.spec.containers.map((c) => ({ name: c.name, ...hashedFields(c) })) };
  if (affinity !== undefined) spec.affinity = affinity;
  if (schedulerName !== undefined) spec.schedulerName = schedulerName;
  if (imagePullSecrets !== undefined) spec.imagePullSecrets = imagePullSecrets;
  if (nodeSelector !== undefined) spec.nodeSelector = nodeSelector;
  if (tolerations !== undefined) spec.tolerations = tolerations;
  if (nodeName !== undefined) spec.nodeName = nodeName;
  return { metadata, spec };
}

export function decide(input: AdmissionInput, view: ClusterView): Decision {
  const { pod, namespace } = input;
  if (input.excludedNamespaces.has(namespace)) return skip(`namespace ${namespace} is excluded`);
  if (pod.metadata.annotations?.[K.RESTORED_FROM]) return skip('pod is already restored');
  if (!Array.isArray(pod.spec?.containers) || pod.spec.containers.length === 0) return skip('pod has no containers');

  const podName = pod.metadata.name || pod.metadata.generateName || '';
  const resolved = resolveWorkload(pod, podName, namespace, view.owners);
  const policy = selectPolicy(view.policies(), {
    namespaceLabels: view.namespaceLabels(namespace),
    workloadLabels: resolved.labels,
  });
  const optIn = resolveOptIn(resolved.chain, policy);
  if (!optIn.enabled) return { ...skip(optIn.because), policy: policy.name };

  // Each container's spec hash, once: checkpoints are matched by it and the pod is stamped with it.
  const hashes = pod.spec.containers.map((c) => specHash(c));
  const choice = chooseCheckpoints(pod.spec.containers, namespace, resolved.workload, view, policy, input.now, input.defaultRegistry ?? '', hashes);
  if (!choice.ok) return cold(choice.reason, policy, choice.freshUntil, pod, hashes);

  // "Can any node restore this" asks exactly what the restored pod will require: its own
  // placement rules with the restore's requirements ANDed in, and the hard filters.
  const origin = choice.origin.spec.origin;
  const facts = restoreFacts(origin, policy);
  const compatible = facts.compatible;
  const placement = podPlacement(pod, facts.requirements);
  let restorable = false;
  let capable = 0;
  let excluded: string | undefined;
  for (const node of view.nodes()) {
    if (!node.ready || node.unschedulable || !compatible(node)) continue;
    capable++;
    const why = placement.excludes(node);
    if (why === undefined) { restorable = true; break; }
    excluded ??= `${node.name}: ${why}`;
  }
  if (!restorable) {
    const from = `checkpoints from ${origin.node} (${origin.architecture}, criu ${criuString(origin.criuVersion)})`;
    return cold(capable === 0
      ? `no Ready node can restore ${from}`
      : `no node both can restore ${from} and may run the pod: ${capable} can restore, none passes the pod's placement (${excluded ?? ''})`, policy, choice.freshUntil, pod, hashes);
  }

  const patch = restorePatch(pod, choice.byContainer, placement.terms, policy, specHashesStamp(pod.spec.containers, hashes), facts);
  const warnings = [...choice.byContainer].map(([container, cp]) =>
    `lazarus: container ${container} restored from checkpoint ${cp.metadata.name ?? ''} taken ${formatAge(input.now - takenAt(cp))} ago on ${cp.spec.origin.node}`);
  return {
    outcome: 'restored',
    patch: patch.ops,
    patchJson: patch.json,
    warnings,
    reason: `restored from ${choice.sourcePod}`,
    policy: policy.name,
    checkpoints: Object.fromEntries([...choice.byContainer].map(([c, cp]) => [c, cp.metadata.name ?? ''])),
    validUntil: Math.min(choice.freshUntil, input.now + AGE_RESOLUTION_MS),
  };
}

/** `freshUntil`: when the first checkpoint that counted as fresh stops being fresh. */
type Choice =
  | { ok: true; byContainer: Map<string, Checkpoint>; sourcePod: string; origin: Checkpoint; freshUntil: number }
  | { ok: false; reason: string; freshUntil: number };

/** Parsed once per checkpoint object: the cache hands out the same objects on every request. */
const takenAtMs = new WeakMap<Checkpoint, number>();
function takenAt(cp: Checkpoint): number {
  let ms = takenAtMs.get(cp);
  if (ms === undefined) takenAtMs.set(cp, (ms = Date.parse(cp.spec.takenAt)));
  return ms;
}

/**
 * A list of checkpoints (ClusterView.checkpoints(): one workload's container) newest first, with
 * each one's time parsed, worked out once per list: the cache hands out the same list until one
 * of them changes, and then a new list (ClusterView.checkpoints). Checkpoints without a valid
 * time are left out: they are never fresh. Each entry remembers whether its image is trusted
 * under the last prefix asked about.
 */
interface Timed { cp: Checkpoint; ms: number; trust?: { image: string; prefix: string; trusted: boolean } }
const newestFirstMemo = new WeakMap<readonly Checkpoint[], { length: number; entries: Timed[] }>();
function timedNewestFirst(all: readonly Checkpoint[]): Timed[] {
  const known = newestFirstMemo.get(all);
  if (known !== undefined && known.length === all.length) return known.entries;
  const entries: Timed[] = [];
  for (const cp of all) {
    const ms = takenAt(cp);
    if (!Number.isNaN(ms)) entries.push({ cp, ms });
  }
  entries.sort((a, b) => newerFirst(a.cp, b.cp));
  newestFirstMemo.set(all, { length: all.length, entries });
  return entries;
}

/** untrustedImage() === undefined, remembered in the entry for its image and the prefix. */
function isTrusted(entry: Timed, prefix: string): boolean {
  const image = entry.cp.spec.image;
  const known = entry.trust;
  if (known !== undefined && known.image === image && known.prefix === prefix) return known.trusted;
  const trusted = untrustedImage(image, prefix) === undefined;
  entry.trust = { image, prefix, trusted };
  return trusted;
}

/**
 * What a restore from one origin under one policy's rules asks of nodes, worked out once per
 * origin (a checkpoint's, the same object on every admission while the cache holds it) instead
 * of per admission: canRestoreOn()'s compatibility verdict compiled (a node costs a few
 * comparisons, no reason strings for the nodes that fail), the node requirements, and the
 * affinity a pod with none of its own gets, its JSON remembered for the answer (patch.ts), and
 * the origin's annotations on the restored pod, their JSON remembered too.
 */
interface RestoreFacts {
  compatibility: CompatibilityRules;
  placement: Placement;
  compatible: (node: NodeFacts) => boolean;
  requirements: readonly NodeSelectorRequirement[];
  bareAffinity: NonNullable<Pod['spec']['affinity']>;
  originAnnotations: readonly Annotation[];
}
const restoreFactsMemo = new WeakMap<OriginFacts, RestoreFacts>();
function restoreFacts(origin: OriginFacts, policy: EffectivePolicy): RestoreFacts {
  const { compatibility, placement } = policy.spec;
  const known = restoreFactsMemo.get(origin);
  if (known !== undefined && known.compatibility === compatibility && known.placement === placement) return known;
  const requirements = restoreRequirements(origin, compatibility);
  const facts: RestoreFacts = {
    compatibility, placement,
    compatible: compileCompatibility(origin, { compatibility, placement }),
    requirements: sharedValue(requirements),
    bareAffinity: sharedValue({ nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: withRequirements(undefined, requirements) } } }),
    originAnnotations: originAnnotations(origin),
  };
  restoreFactsMemo.set(origin, facts);
  return facts;
}

/** The annotations that stamp the origin node's facts on a restored pod (DESIGN §4). */
function originAnnotations(origin: OriginFacts): readonly Annotation[] {
  return sharedAnnotations({
    [K.ORIGIN_NODE]: origin.node,
    [K.ORIGIN_ARCH]: origin.architecture,
    [K.ORIGIN_KERNEL]: origin.kernelVersion,
    [K.ORIGIN_CRIU]: criuString(origin.criuVersion),
    [K.ORIGIN_RUNTIME]: origin.runtime,
    [K.ORIGIN_CPU_FLAGS]: origin.cpuFlags.join(' '),
  });
}

/** Newer first; equal timestamps fall back to name order so the choice is deterministic. */
function newerFirst(a: Checkpoint, b: Checkpoint): number {
  const d = takenAt(b) - takenAt(a);
  if (d !== 0) return d;
  const an = a.metadata.name ?? '';
  const bn = b.metadata.name ?? '';
  return an < bn ? 1 : an > bn ? -1 : 0;
}

/**
 * Usable checkpoints per container (same namespace, workload and container; Ready; not older
 * than maxCheckpointAge; same spec hash), then the newest source pod that covers every
 * container: all containers restore from one pod's checkpoints, or none do.
 */
export function chooseCheckpoints(containers: readonly Container[], namespace: string, workload: WorkloadRef,
  view: Pick<ClusterView, 'checkpoints'>, policy: EffectivePolicy, now: number, defaultRegistry = '',
  hashes: readonly string[] = containers.map((c) => specHash(c))): Choice {
  const prefix = trustedPrefix(policy.spec.checkpoint.registry, defaultRegistry);
  const usable = new Map<string, Checkpoint[]>();
  let freshUntil = Infinity;
  for (const [i, container] of containers.entries()) {
    const all = view.checkpoints(namespace, workload, container.name);
    const hash = hashes[i] ?? specHash(container);
    // One pass, newest first, in the order of the rules: Ready, fresh, the pod's spec hash, a
    // trusted image. Anybody who can write a Checkpoint names an image to run in this pod: only
    // images the agents push (by digest, under the policy's registry) are trusted.
    let fresh = 0;
    let newestMatching: Checkpoint | undefined;
    const trusted: Checkpoint[] = [];
    for (const entry of timedNewestFirst(all)) {
      const { cp, ms } = entry;
      if (cp.status?.phase !== 'Ready' || !(now - ms <= policy.maxCheckpointAgeMs)) continue;
      fresh++;
      freshUntil = Math.min(freshUntil, ms + policy.maxCheckpointAgeMs + 1);
      if (cp.spec.specHash !== hash) continue;
      newestMatching ??= cp;
      if (isTrusted(entry, prefix)) trusted.push(cp);
    }
    if (trusted.length === 0) {
      const what = `${workload.kind} ${workload.name} container ${container.name}`;
      const no = (reason: string): Choice => ({ ok: false, reason, freshUntil });
      if (all.length === 0) return no(`no checkpoint of ${what}`);
      if (!all.some((cp) => cp.status?.phase === 'Ready')) return no(`no Ready checkpoint of ${what}`);
      if (fresh === 0) return no(`every Ready checkpoint of ${what} is older than maxCheckpointAge ${policy.spec.maxCheckpointAge}`);
      if (newestMatching === undefined) return no(`no Ready checkpoint of ${what} has the pod's spec hash ${hash} (the container changed since)`);
      return no(`checkpoint ${newestMatching.metadata.name ?? ''} of ${what} ${NOT_TRUSTED}: ${untrustedReason(newestMatching.spec.image, prefix)}`);
    }
    usable.set(container.name, trusted);
  }

  // Candidate source pods, newest first: those whose checkpoints cover every container.
  const first = usable.get(containers[0]?.name ?? '') ?? [];
  for (const candidate of first) {
    const byContainer = new Map<string, Checkpoint>();
    for (const container of containers) {
      const cp = usable.get(container.name)?.find((c) => c.spec.sourcePod === candidate.spec.sourcePod);
      if (!cp) break;
      byContainer.set(container.name, cp);
    }
    if (byContainer.size === containers.length) {
      return { ok: true, byContainer, sourcePod: candidate.spec.sourcePod, origin: candidate, freshUntil };
    }
  }
  return { ok: false, reason: 'no single source pod has usable checkpoints of every container', freshUntil };
}

/** Why a checkpoint image is not used, naming the image and the trusted prefix; '' when it is trusted. */
export function untrustedReason(image: string, prefix: string): string {
  const why = untrustedImage(image, prefix);
  if (why === undefined) return '';
  return prefix ? `${why} (Lazarus restores only digest references under ${prefix}/)` : `image ${image}: ${why}`;
}

/**
 * What a restored pod requires of its node, besides its own rules: the architecture, a CRIU
 * that can read the checkpoint, `restore-capable`, and under `runtime: SameName` the runtime
 * by name. Required node affinity is all that protects the pod while the (ignorable) extender
 * is down, so it carries every hard filter a node label can express.
 */
export function restoreRequirements(origin: OriginFacts, compatibility: CompatibilityRules): NodeSelectorRequirement[] {
  const required: NodeSelectorRequirement[] = [{ key: K.LABEL_ARCH, operator: 'In', values: [origin.architecture] }];
  switch (compatibility.criu) {
    case 'AtLeastOrigin':
      required.push({ key: K.NODE_CRIU_VERSION, operator: 'Gt', values: [String(origin.criuVersion - 1)] });
      break;
    case 'Exact':
      required.push({ key: K.NODE_CRIU_VERSION, operator: 'In', values: [String(origin.criuVersion)] });
      break;
  }
  required.push({ key: K.NODE_RESTORE_CAPABLE, operator: 'In', values: ['true'] });
  const runtime = runtimeLabelValue(origin.runtime);
  if (compatibility.runtime === 'SameName' && runtime !== undefined) required.push({ key: K.NODE_RUNTIME, operator: 'In', values: [runtime] });
  return required;
}

/**
 * The restore as a patch of the admitted pod: each checkpointed container's image, the required
 * node affinity with `terms` (the pod's own terms with the restore's requirements ANDed in, as the
 * placement check judged nodes by them), the policy's scheduler and pull secret, and the
 * annotations: which checkpoints, the original images, the origin's facts and `stamp` (the
 * spec-hashes annotation). unit/webhook-patch holds it to the pod restored field by field.
 */
function restorePatch(pod: Pod, byContainer: ReadonlyMap<string, Checkpoint>, terms: readonly NodeSelectorTerm[], policy: EffectivePolicy, stamp: string,
  facts: Pick<RestoreFacts, 'bareAffinity' | 'originAnnotations'>): PatchBuilder {
  const patch = new PatchBuilder();
  const originals: [string, string][] = [];
  const restoredFrom: [string, string][] = [];
  pod.spec.containers.forEach((container, i) => {
    const cp = byContainer.get(container.name);
    if (!cp) return;
    originals.push([container.name, container.image ?? '']);
    restoredFrom.push([container.name, cp.metadata.name ?? '']);
    if (cp.spec.image !== container.image) patch.set(`/spec/containers/${i}/image`, container.image !== undefined, cp.spec.image);
  });

  const { affinity, schedulerName, imagePullSecrets } = pod.spec;
  if (affinity === undefined) {
    patch.set('/spec/affinity', false, facts.bareAffinity);
  } else {
    const nodeAffinity = affinity?.nodeAffinity ?? {};
    const selector = nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution ?? { nodeSelectorTerms: [] };
    patch.set('/spec/affinity', true, { ...affinity, nodeAffinity: { ...nodeAffinity, requiredDuringSchedulingIgnoredDuringExecution: { ...selector, nodeSelectorTerms: [...terms] } } });
  }
  const scheduler = policy.spec.schedulerName;
  if (scheduler && scheduler !== schedulerName) patch.set('/spec/schedulerName', schedulerName !== undefined, scheduler);
  const secret = policy.spec.imagePullSecret;
  if (secret && !(Array.isArray(imagePullSecrets) && imagePullSecrets.some((s) => s.name === secret))) {
    if (Array.isArray(imagePullSecrets)) patch.append('/spec/imagePullSecrets', { name: secret });
    else patch.set('/spec/imagePullSecrets', imagePullSecrets !== undefined, [{ name: secret }]);
  }

  patch.annotate(pod.metadata.annotations, [
    { key: K.RESTORED_FROM, value: formatPairs(restoredFrom) },
    { key: K.ORIGINAL_IMAGES, value: formatPairs(originals) },
    ...facts.originAnnotations,
    { key: K.SPEC_HASHES, value: stamp },
  ]);
  return patch;
}
