/**
 * Can a node restore a checkpoint, and how well does it match the checkpoint's origin?
 * DESIGN §4 (Extender). Pure: the extender, the webhook's pre-check and `lazarus explain`
 * all call these.
 */
import * as K from './keys.js';
import { isHardTaint, type PlacementFacts, type Taint } from './placement.js';
import { criuCode, criuString, parseCriuLabel, parseKernel, parseRuntime } from './versions.js';
import type { CompatibilityRules, Node, OriginFacts, Placement, Pod } from './types.js';

/** Image names present on a node; `has` is all scoring needs. */
export interface ImageIndex { has(name: string): boolean }
/** CPU flags of a node; a Set qualifies. */
export interface FlagSet { has(flag: string): boolean }

/** What Lazarus knows about a node, extracted once from its object. */
export interface NodeFacts extends PlacementFacts {
  name: string;
  architecture: string | undefined;
  kernelVersion: string | undefined;
  criuVersion: number | undefined;
  /** containerRuntimeVersion, e.g. `cri-o://1.33.2` */
  runtime: string | undefined;
  restoreCapable: boolean;
  /** Undefined when the agent has not published them (or published an empty list). */
  cpuFlags: FlagSet | undefined;
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
    const images = this.images;
    for (let i = 0; i < images.length; i++) {
      const image = images[i];
      if (typeof image !== 'object' || image === null) continue;
      const names = (image as { names?: unknown }).names;
      if (!Array.isArray(names)) continue;
      for (let j = 0; j < names.length; j++) if (names[j] === name) return true;
    }
    return false;
  }
}
const NO_IMAGES: ImageIndex = Object.freeze({ has: () => false });
const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});
const NO_TAINTS: readonly Taint[] = Object.freeze([]);

/** The taints that keep pods off (NoSchedule, NoExecute), as small plain objects; most nodes have none. */
function hardTaints(taints: unknown): readonly Taint[] {
  if (!Array.isArray(taints) || taints.length === 0) return NO_TAINTS;
  const out: Taint[] = [];
  for (const t of taints) {
    const taint = record(t);
    const key = taint?.key;
    if (!taint || typeof key !== 'string' || !isHardTaint(taint.effect)) continue;
    const value = text(taint.value);
    out.push({ key, effect: taint.effect as string, ...(value === undefined ? {} : { value }) });
  }
  return out.length > 0 ? out : NO_TAINTS;
}

function isSpace(code: number): boolean {
  return code === 32 || (code >= 9 && code <= 13);
}

/**
 * A node's CPU flags straight from the annotation text (~70 flags): split into a Set only if
 * asked, and compileCompatibility() memoises verdicts by the text, so the thousands of nodes
 * of one instance type in a full-Nodes request cost one Set, not thousands.
 */
class FlagText implements FlagSet {
  private set: Set<string> | undefined;
  constructor(readonly text: string) {}
  has(flag: string): boolean {
    this.set ??= new Set(splitFlags(this.text));
    return this.set.has(flag);
  }
}

export interface NodeFactsOptions {
  /**
   * Build a Set of image names: worth it for a cache that answers many requests; not for a
   * node object read once from a request.
   */
  index?: boolean;
  /** Keep the node's images at all; default true. A cache whose readers never score can drop them. */
  images?: boolean;
}

export function nodeFacts(node: Node, options: NodeFactsOptions = {}): NodeFacts {
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
  let cpuFlags: FlagSet | undefined;
  if (flags?.trim()) cpuFlags = new FlagText(flags);
  let imageIndex = NO_IMAGES;
  if (options.images !== false && Array.isArray(images) && images.length > 0) imageIndex = options.index ? indexImages(images) : new ScannedImages(images);
  const spec = record(n?.spec);
  return {
    name: text(metadata?.name) ?? '',
    // The object's own label record, not a copy: placement reads it, nothing changes it.
    labels: (labels as Record<string, string> | undefined) ?? NO_LABELS,
    taints: hardTaints(spec?.taints),
    architecture: text(info?.architecture) ?? text(labels?.[K.LABEL_ARCH]),
    kernelVersion: text(info?.kernelVersion),
    criuVersion: typeof criuLabel === 'string' ? parseCriuLabel(criuLabel) : undefined,
    runtime: text(info?.containerRuntimeVersion),
    restoreCapable: labels?.[K.NODE_RESTORE_CAPABLE] === 'true',
    cpuFlags,
    ready: isReady(conditions),
    unschedulable: spec?.unschedulable === true,
    images: imageIndex,
  };
}

/**
 * Whether two facts say the same about a node: what a cache compares to skip a Node update
 * that changed nothing Lazarus reads (a kubelet status update, a heartbeat).
 */
export function sameNodeFacts(a: NodeFacts, b: NodeFacts): boolean {
  return sameRestoreFacts(a, b) && sameImages(a.images, b.images);
}

/**
 * Whether two facts agree on everything an admission decision reads (canRestoreOn() and the
 * pod's placement): all but the images, which only scores read (a node pulling an image
 * changes no admission decision).
 */
export function sameRestoreFacts(a: NodeFacts, b: NodeFacts): boolean {
  return a.name === b.name && a.architecture === b.architecture && a.kernelVersion === b.kernelVersion
    && a.criuVersion === b.criuVersion && a.runtime === b.runtime && a.restoreCapable === b.restoreCapable
    && a.ready === b.ready && a.unschedulable === b.unschedulable
    && sameFlags(a.cpuFlags, b.cpuFlags) && sameLabels(a.labels, b.labels) && sameTaints(a.taints, b.taints);
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  if (a === b) return true;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

function sameTaints(a: readonly Taint[], b: readonly Taint[]): boolean {
  return a.length === b.length && a.every((t, i) => t.key === b[i]?.key && t.value === b[i]?.value && t.effect === b[i]?.effect);
}

function sameFlags(a: FlagSet | undefined, b: FlagSet | undefined): boolean {
  if (a === b) return true;
  return a instanceof FlagText && b instanceof FlagText && a.text === b.text;
}

function sameImages(a: ImageIndex, b: ImageIndex): boolean {
  if (a === b) return true;
  if (!(a instanceof Set) || !(b instanceof Set) || a.size !== b.size) return false;
  for (const name of a as Set<unknown>) if (!b.has(name as string)) return false;
  return true;
}

function isReady(conditions: unknown): boolean {
  if (!Array.isArray(conditions)) return false;
  for (const c of conditions) {
    const condition = record(c);
    if (condition?.type === 'Ready') return condition.status === 'True';
  }
  return false;
}

function indexImages(images: readonly unknown[]): ImageIndex {
  const set = new Set<string>();
  for (const image of images) {
    const names = record(image)?.names;
    if (Array.isArray(names)) for (const name of names) if (typeof name === 'string') set.add(name);
  }
  return set;
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
  return explain(origin, node, rules, undefined);
}

/** compatibility() for many nodes and one origin: the CPU-flag reason is memoised by flag text. */
export function compileExplain(origin: OriginFacts, rules: Rules): (node: NodeFacts) => Compatibility {
  const cpuReasons = new Map<string, string>();
  return (node) => explain(origin, node, rules, cpuReasons);
}

function cpuReason(originFlags: readonly string[], nodeFlags: FlagSet): string {
  const missing = originFlags.filter((f) => !nodeFlags.has(f));
  if (missing.length === 0) return '';
  const shown = missing.slice(0, 8).join(', ') + (missing.length > 8 ? `, … (${missing.length} in all)` : '');
  return `CPU lacks flags the checkpointed process may use: ${shown}`;
}

function explain(origin: OriginFacts, node: NodeFacts, rules: Rules, cpuReasons: Map<string, string> | undefined): Compatibility {
  const reasons: string[] = [];
  const failed: CompatRule[] = [];
  const fail = (rule: CompatRule, reason: string): void => { failed.push(rule); reasons.push(reason); };
  const { compatibility: c, placement } = rules;

  if (node.architecture !== origin.architecture) {
    fail('architecture', `architecture ${node.architecture ?? 'unknown'} differs from the checkpoint's ${origin.architecture || 'unknown'}`);
  }
  if (!node.restoreCapable) {
    fail('restoreCapable', `node is not restore-capable (${K.NODE_RESTORE_CAPABLE} is not "true": no working CRIU, or the runtime cannot restore)`);
  }
  if (node.criuVersion === undefined) {
    fail('criu', `criu version unknown (no ${K.NODE_CRIU_VERSION} label: is the Lazarus agent running?)`);
  } else if (c.criu === 'AtLeastOrigin' && node.criuVersion < origin.criuVersion) {
    fail('criu', `criu ${criuString(node.criuVersion)} is older than the checkpoint's ${criuString(origin.criuVersion)}`);
  } else if (c.criu === 'Exact' && node.criuVersion !== origin.criuVersion) {
    fail('criu', `criu ${criuString(node.criuVersion)} differs from the checkpoint's ${criuString(origin.criuVersion)} (policy criu: Exact)`);
  }
  // Flags of another architecture are not comparable: that node fails on architecture alone.
  if (c.cpu === 'Superset' && node.cpuFlags && origin.cpuFlags.length > 0 && node.architecture === origin.architecture) {
    const text = node.cpuFlags instanceof FlagText ? node.cpuFlags.text : undefined;
    let reason = text === undefined ? undefined : cpuReasons?.get(text);
    if (reason === undefined) {
      reason = cpuReason(origin.cpuFlags, node.cpuFlags);
      if (text !== undefined) cpuReasons?.set(text, reason);
    }
    if (reason) fail('cpu', reason);
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
  return compileScore(origin, baseImages)(node);
}

// ---- compiled forms, for thousands of nodes per request ----------------------------------
// The origin's side is parsed once; per node, a passing node costs comparisons only (no regex,
// no allocation). compatibility() above stays the one that explains; tests hold both to the
// same verdict on every rule.

/** `6.8.0-45-generic` → major 6, minor 8, like parseKernel, without a regex. */
function kernelParts(version: string | undefined): { major: number; minor: number } | undefined {
  if (!version) return undefined;
  let i = 0;
  while (i < version.length && isSpace(version.charCodeAt(i))) i++;
  const major = digitsAt(version, i);
  if (major.end === i || version.charCodeAt(major.end) !== 46) return undefined;
  const minor = digitsAt(version, major.end + 1);
  if (minor.end === major.end + 1) return undefined;
  return { major: major.value, minor: minor.value };
}

function digitsAt(text: string, start: number): { value: number; end: number } {
  let i = start;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) break;
    i++;
  }
  return { value: Number(text.slice(start, i)), end: i };
}

/** parseRuntime(have)?.name === want, without slicing. */
function runtimeNameIs(have: string | undefined, want: string): boolean {
  if (!have) return false;
  const i = have.indexOf('://');
  return i <= 0 ? have === want : i === want.length && have.startsWith(want);
}

/** The verdict of compatibility(origin, node, rules).ok, compiled for one origin and policy. */
export function compileCompatibility(origin: OriginFacts, rules: Rules): (node: NodeFacts) => boolean {
  const { compatibility: c, placement } = rules;
  const arch = origin.architecture;
  const criu = origin.criuVersion;
  const flags = c.cpu === 'Superset' ? origin.cpuFlags : [];
  const runtime = c.runtime === 'SameName' ? parseRuntime(origin.runtime)?.name : undefined;
  const kernelRule = placement === 'Require' ? c.kernel : 'Prefer';
  const originKernel = parseKernel(origin.kernelVersion);
  const exactCriu = c.criu === 'Exact';
  const byText = new Map<string, boolean>();
  const hasAll = (nodeFlags: FlagSet): boolean => {
    const text = nodeFlags instanceof FlagText ? nodeFlags.text : undefined;
    const known = text === undefined ? undefined : byText.get(text);
    if (known !== undefined) return known;
    let all = true;
    for (const f of flags) if (!nodeFlags.has(f)) { all = false; break; }
    if (text !== undefined) byText.set(text, all);
    return all;
  };
  return (node) => {
    if (node.architecture !== arch || !node.restoreCapable) return false;
    const v = node.criuVersion;
    if (v === undefined || (exactCriu ? v !== criu : v < criu)) return false;
    const nodeFlags = node.cpuFlags;
    if (nodeFlags && flags.length > 0 && !hasAll(nodeFlags)) return false;
    if (runtime && !runtimeNameIs(node.runtime, runtime)) return false;
    switch (kernelRule) {
      case 'Prefer': return true;
      case 'Exact': return node.kernelVersion === origin.kernelVersion;
      case 'SameMajorMinor': {
        const n = kernelParts(node.kernelVersion);
        return originKernel !== undefined && n !== undefined && n.major === originKernel.major && n.minor === originKernel.minor;
      }
    }
  };
}

/** score(origin, node, baseImages), compiled for one origin. */
export function compileScore(origin: OriginFacts, baseImages: readonly string[]): (node: NodeFacts) => number {
  const o = parseKernel(origin.kernelVersion);
  const criu = origin.criuVersion;
  const runtime = origin.runtime;
  // A cluster runs a handful of kernel versions: score each once per request.
  const kernelMemo = new Map<string, number>();
  const kernelPoints = (version: string | undefined): number => {
    if (!o || !version) return 0;
    let points = kernelMemo.get(version);
    if (points === undefined) {
      const n = kernelParts(version);
      points = 0;
      if (n) {
        if (version.trim() === o.full) points = SCORE.kernelExact;
        else if (o.major === n.major && o.minor === n.minor) points = SCORE.kernelMajorMinor;
        else if (o.major === n.major) points = SCORE.kernelMajor;
      }
      kernelMemo.set(version, points);
    }
    return points;
  };
  return (node) => {
    let total = kernelPoints(node.kernelVersion);
    const v = node.criuVersion;
    if (v !== undefined) {
      if (v === criu) total += SCORE.criuExact;
      else if (v > criu) total += SCORE.criuNewer;
    }
    if (runtime && node.runtime === runtime) total += SCORE.runtimeExactVersion;
    if (baseImages.length > 0) {
      let all = true;
      for (const image of baseImages) if (!node.images.has(image)) { all = false; break; }
      if (all) total += SCORE.baseImagePresent;
    }
    return Math.min(MAX_SCORE, total);
  };
}

/** Ready, schedulable and compatible: a node the webhook may count on for a restore. */
export function canRestoreOn(origin: OriginFacts, node: NodeFacts, rules: Rules): boolean {
  return node.ready && !node.unschedulable && compatibility(origin, node, rules).ok;
}
