/**
 * Can a node restore a checkpoint, and how well does it match the checkpoint's origin?
 * DESIGN §4 (Extender). Pure: the extender, the webhook's pre-check and `lazarus explain`
 * all call these.
 */
import * as K from './keys.js';
import { criuCode, criuString, parseCriuLabel, parseKernel, parseRuntime } from './versions.js';
import type { CompatibilityRules, Node, OriginFacts, Placement, Pod } from './types.js';

/** Image names present on a node; `has` is all scoring needs. */
export interface ImageIndex { has(name: string): boolean }

/** What Lazarus knows about a node, extracted once from its object. */
export interface NodeFacts {
  name: string;
  architecture: string | undefined;
  kernelVersion: string | undefined;
  criuVersion: number | undefined;
  /** containerRuntimeVersion, e.g. `cri-o://1.33.2` */
  runtime: string | undefined;
  restoreCapable: boolean;
  /** Undefined when the agent has not published them (or published an empty list). */
  cpuFlags: ReadonlySet<string> | undefined;
  ready: boolean;
  unschedulable: boolean;
  /** Every name of every image present on the node (`status.images[].names`). */
  images: ImageIndex;
}

function splitFlags(text: string | undefined): string[] {
  return text ? text.split(/\s+/).filter(Boolean) : [];
}

// Node objects reach nodeFacts straight from the wire (full-Nodes extender requests), so every
// field is checked for its type: a malformed node yields unknown facts, never an exception.
type Loose = Record<string, unknown>;
function record(value: unknown): Loose | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Loose : undefined;
}
function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * Scans `status.images` on demand instead of building a Set per node: a full-Nodes request
 * carries thousands of nodes with dozens of image names each, and only scoring (for the few
 * base images of one pod) ever looks.
 */
class ScannedImages implements ImageIndex {
  constructor(private readonly images: readonly unknown[]) {}
  has(name: string): boolean {
    for (const image of this.images) {
      const names = record(image)?.names;
      if (Array.isArray(names) && names.includes(name)) return true;
    }
    return false;
  }
}
const NO_IMAGES: ImageIndex = Object.freeze({ has: () => false });

export function nodeFacts(node: Node): NodeFacts {
  const n = record(node);
  const metadata = record(n?.metadata);
  const labels = record(metadata?.labels);
  const annotations = record(metadata?.annotations);
  const status = record(n?.status);
  const info = record(status?.nodeInfo);
  const flags = text(annotations?.[K.NODE_CPU_FLAGS]);
  const conditions = status?.conditions;
  const images = status?.images;
  const criuLabel = labels?.[K.NODE_CRIU_VERSION];
  return {
    name: text(metadata?.name) ?? '',
    architecture: text(info?.architecture) ?? text(labels?.[K.LABEL_ARCH]),
    kernelVersion: text(info?.kernelVersion),
    criuVersion: typeof criuLabel === 'string' ? parseCriuLabel(criuLabel) : undefined,
    runtime: text(info?.containerRuntimeVersion),
    restoreCapable: labels?.[K.NODE_RESTORE_CAPABLE] === 'true',
    cpuFlags: flags?.trim() ? new Set(splitFlags(flags)) : undefined,
    ready: Array.isArray(conditions) && conditions.some((c) => record(c)?.type === 'Ready' && record(c)?.status === 'True'),
    unschedulable: record(n?.spec)?.unschedulable === true,
    images: Array.isArray(images) && images.length > 0 ? new ScannedImages(images) : NO_IMAGES,
  };
}

/** What a restored pod says about its checkpoint's origin, from the webhook's annotations. */
export interface PodRestoreFacts {
  origin: OriginFacts;
  /** The images the pod ran before the swap; the base images the checkpoints need. */
  baseImages: string[];
}

/** Parses `a=x,b=y` annotation values. */
export function parsePairs(value: string | undefined): Map<string, string> {
  const pairs = new Map<string, string>();
  for (const part of (value ?? '').split(',')) {
    const i = part.indexOf('=');
    if (i > 0) pairs.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return pairs;
}

export function formatPairs(pairs: Iterable<readonly [string, string]>): string {
  return [...pairs].map(([k, v]) => `${k}=${v}`).join(',');
}

/** Undefined for a pod that was not restored by Lazarus. Non-string annotation values count as absent. */
export function podRestoreFacts(pod: Pick<Pod, 'metadata'>): PodRestoreFacts | undefined {
  const a = record(record(record(pod)?.metadata)?.annotations);
  if (!text(a?.[K.RESTORED_FROM])) return undefined;
  const get = (key: string): string => text(a?.[key]) ?? '';
  return {
    origin: {
      node: get(K.ORIGIN_NODE),
      architecture: get(K.ORIGIN_ARCH),
      kernelVersion: get(K.ORIGIN_KERNEL),
      criuVersion: criuCode(get(K.ORIGIN_CRIU)) ?? 0,
      runtime: get(K.ORIGIN_RUNTIME),
      cpuFlags: splitFlags(get(K.ORIGIN_CPU_FLAGS)),
    },
    baseImages: [...parsePairs(get(K.ORIGINAL_IMAGES)).values()],
  };
}

export interface Rules { compatibility: CompatibilityRules; placement: Placement }

/** Which rule a node failed: a small fixed set, for metrics and for grouping reasons. */
export type CompatRule = 'architecture' | 'restoreCapable' | 'criu' | 'cpu' | 'runtime' | 'kernel';
export const COMPAT_RULES: readonly CompatRule[] = ['architecture', 'restoreCapable', 'criu', 'cpu', 'runtime', 'kernel'];

export interface Compatibility {
  ok: boolean;
  reasons: string[];
  /** `rules[i]` is the rule `reasons[i]` explains. */
  rules: CompatRule[];
}

/** Every hard filter of DESIGN §4; each failed rule adds a reason a person can act on. */
export function compatibility(origin: OriginFacts, node: NodeFacts, rules: Rules): Compatibility {
  const reasons: string[] = [];
  const failed: CompatRule[] = [];
  const fail = (rule: CompatRule, reason: string): void => { failed.push(rule); reasons.push(reason); };
  const { compatibility: c, placement } = rules;

  if (node.architecture !== origin.architecture) {
    fail('architecture', `architecture ${node.architecture ?? 'unknown'} differs from the checkpoint's ${origin.architecture || 'unknown'}`);
  }
  if (!node.restoreCapable) {
    fail('restoreCapable', `node is not restore-capable (label ${K.NODE_RESTORE_CAPABLE} is not "true": no working CRIU or the runtime cannot restore from an image)`);
  }
  if (node.criuVersion === undefined) {
    fail('criu', `criu version unknown (no ${K.NODE_CRIU_VERSION} label; is the Lazarus agent running on this node?)`);
  } else if (c.criu === 'AtLeastOrigin' && node.criuVersion < origin.criuVersion) {
    fail('criu', `criu ${criuString(node.criuVersion)} is older than the checkpoint's ${criuString(origin.criuVersion)}`);
  } else if (c.criu === 'Exact' && node.criuVersion !== origin.criuVersion) {
    fail('criu', `criu ${criuString(node.criuVersion)} differs from the checkpoint's ${criuString(origin.criuVersion)} (policy criu: Exact)`);
  }
  if (c.cpu === 'Superset' && node.cpuFlags && origin.cpuFlags.length > 0) {
    const missing = origin.cpuFlags.filter((f) => !node.cpuFlags?.has(f));
    if (missing.length > 0) {
      const shown = missing.slice(0, 8).join(', ') + (missing.length > 8 ? `, … (${missing.length} in all)` : '');
      fail('cpu', `CPU lacks flags the checkpointed process may use: ${shown}`);
    }
  }
  if (c.runtime === 'SameName') {
    const want = parseRuntime(origin.runtime)?.name;
    const have = parseRuntime(node.runtime)?.name;
    if (want && have !== want) fail('runtime', `runtime ${have ?? 'unknown'} differs from the checkpoint's ${want}`);
  }
  if (placement === 'Require') {
    const reason = kernelMismatch(origin.kernelVersion, node.kernelVersion, c.kernel);
    if (reason) fail('kernel', reason);
  }
  return { ok: reasons.length === 0, reasons, rules: failed };
}

function kernelMismatch(originKernel: string, nodeKernel: string | undefined, rule: CompatibilityRules['kernel']): string | undefined {
  switch (rule) {
    case 'Prefer':
      return undefined;
    case 'Exact':
      return nodeKernel === originKernel ? undefined : `kernel ${nodeKernel ?? 'unknown'} is not the checkpoint's ${originKernel} (policy kernel: Exact)`;
    case 'SameMajorMinor': {
      const o = parseKernel(originKernel);
      const n = parseKernel(nodeKernel);
      if (o && n && o.major === n.major && o.minor === n.minor) return undefined;
      return `kernel ${nodeKernel ?? 'unknown'} is not ${o ? `${o.major}.${o.minor}.x` : originKernel} like the checkpoint's ${originKernel} (policy kernel: SameMajorMinor)`;
    }
  }
}

/** DESIGN §4 score weights; the sum of the best case is MAX_SCORE. */
export const SCORE = Object.freeze({
  kernelExact: 4, kernelMajorMinor: 2, kernelMajor: 1,
  criuExact: 3, criuNewer: 1,
  runtimeExactVersion: 1,
  baseImagePresent: 2,
});
export const MAX_SCORE = 10;

/** How well a (compatible) node matches the origin, 0..10. */
export function score(origin: OriginFacts, node: NodeFacts, baseImages: readonly string[]): number {
  let total = 0;
  const o = parseKernel(origin.kernelVersion);
  const n = parseKernel(node.kernelVersion);
  if (o && n) {
    if (o.full === n.full) total += SCORE.kernelExact;
    else if (o.major === n.major && o.minor === n.minor) total += SCORE.kernelMajorMinor;
    else if (o.major === n.major) total += SCORE.kernelMajor;
  }
  if (node.criuVersion !== undefined) {
    if (node.criuVersion === origin.criuVersion) total += SCORE.criuExact;
    else if (node.criuVersion > origin.criuVersion) total += SCORE.criuNewer;
  }
  if (origin.runtime && node.runtime === origin.runtime) total += SCORE.runtimeExactVersion;
  if (baseImages.length > 0 && baseImages.every((image) => node.images.has(image))) total += SCORE.baseImagePresent;
  return Math.min(MAX_SCORE, total);
}

/** Ready, schedulable and compatible: a node the webhook may count on for a restore. */
export function canRestoreOn(origin: OriginFacts, node: NodeFacts, rules: Rules): boolean {
  return node.ready && !node.unschedulable && compatibility(origin, node, rules).ok;
}
