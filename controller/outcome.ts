/**
 * Did a restored pod come back? (DESIGN §4, Controller, restore outcome.) Pure: reads the pod's
 * status and the clock.
 *
 * - A restored container running for at least `settleMs` → succeeded. Waiting that long means a
 *   restore that dies at once (bad CPU flags, missing files) is not counted as a success.
 * - Waiting with CreateContainerError (or another runtime error reason), a message that speaks
 *   of restore/CRIU/checkpoint, or a checkpoint image that is gone from the registry (not found,
 *   manifest/blob unknown) → failed, with the runtime's text: the checkpoint is at fault.
 * - Terminated (now or as last state) with a non-zero code within `earlyExitMs` of starting → failed.
 * - Unavailable — the pod must start cold, but through no fault of the checkpoint, which stays
 *   usable for later pods: the pod stayed Unschedulable for `unschedulableTimeoutMs`, or an image
 *   pull kept failing in a way that may clear (connection refused, timeouts, 5xx, a back-off)
 *   for `imagePullTimeoutMs` after the kubelet took the pod. Until then → pending.
 * - Anything else (Pending, ContainerCreating, running for less than settleMs) → pending.
 */
import { formatAge } from '../api/duration.js';
import * as K from '../api/keys.js';

export interface ContainerStateView {
  running?: { startedAt?: string };
  waiting?: { reason?: string; message?: string };
  terminated?: { exitCode?: number; reason?: string; message?: string; startedAt?: string; finishedAt?: string };
}

export interface ContainerStatusView {
  name: string;
  state?: ContainerStateView;
  lastState?: ContainerStateView;
  restartCount?: number;
}

/** The pod's PodScheduled condition while it is False with reason Unschedulable. */
export interface UnschedulableView {
  /** lastTransitionTime: since when the scheduler has found no node. */
  since?: string;
  /** The scheduler's words, e.g. `0/3 nodes are available: 3 Insufficient cpu.` */
  message?: string;
}

export interface RestoredPodView {
  annotations?: Record<string, string>;
  phase?: string;
  /** status.startTime: when the kubelet took the pod (image pulls start then). */
  startTime?: string;
  /** Set while the scheduler cannot place the pod. */
  unschedulable?: UnschedulableView;
  /**
   * The last ErrImagePull message seen per container: the kubelet's ImagePullBackOff that follows
   * says only `Back-off pulling image "…"`, so the cause must be remembered from before.
   */
  lastPullErrors?: Readonly<Record<string, string>>;
  containerStatuses?: ContainerStatusView[];
}

/** unavailable: the pod must go cold, but the checkpoint is not at fault (it stays usable). */
export type Verdict = 'succeeded' | 'failed' | 'unavailable' | 'pending';

export interface ContainerOutcome {
  container: string;
  checkpoint: string;
  verdict: Verdict;
  /** The runtime's words for a failure; empty otherwise. */
  message: string;
}

export interface RestoreOutcome {
  /** failed if any container failed; succeeded only if all did. */
  verdict: Verdict;
  containers: ContainerOutcome[];
  /** When pending only because a running container has not settled yet: when to look again (ms epoch). */
  recheckAt?: number;
  /** Unavailable because the pod never got a node: the scheduler's words. */
  unschedulable?: string;
}

export interface OutcomeOptions {
  now: number;
  settleMs: number;
  earlyExitMs: number;
  /** The policy's `restore.unschedulableTimeout`. */
  unschedulableTimeoutMs: number;
  /** The policy's `restore.imagePullTimeout`. */
  imagePullTimeoutMs: number;
}

/** `container=checkpoint` pairs, comma-separated (DESIGN §2). Malformed pairs are skipped. */
export function parseRestoredFrom(value: string | undefined): Map<string, string> {
  const pairs = new Map<string, string>();
  for (const part of (value ?? '').split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const container = part.slice(0, eq).trim();
    const checkpoint = part.slice(eq + 1).trim();
    if (container && checkpoint) pairs.set(container, checkpoint);
  }
  return pairs;
}

/** Waiting reasons the kubelet uses when the runtime refused to create or start the container. */
const RUNTIME_ERROR_REASONS: ReadonlySet<string> = new Set([
  'CreateContainerError', 'RunContainerError', 'StartError', 'ContainerCannotRun',
  // The image reference itself is unusable: no retry can help.
  'InvalidImageName', 'ErrImageNeverPull',
]);
/** Waiting reasons of a pull that failed and will be retried by the kubelet. */
const PULL_ERROR_REASONS: ReadonlySet<string> = new Set(['ErrImagePull', 'ImagePullBackOff']);
/**
 * The registry says the image is gone: containerd `…/blobs/sha256:… not found: not found`,
 * `failed to resolve reference …: not found`; CRI-O (containers/image) `manifest unknown`,
 * `blob unknown to registry`, `name unknown`. A later pull gets the same answer.
 */
const IMAGE_GONE = /not found|manifest unknown|blob unknown|name unknown|\b404\b/i;
const RESTORE_WORDS = /restor|criu|checkpoint/i;

function time(text: string | undefined): number | undefined {
  const t = text ? Date.parse(text) : Number.NaN;
  return Number.isFinite(t) ? t : undefined;
}

function earlyExit(state: ContainerStateView | undefined, earlyExitMs: number): string | undefined {
  const t = state?.terminated;
  if (!t || t.exitCode === 0) return undefined;
  const started = time(t.startedAt);
  const finished = time(t.finishedAt);
  // A container that failed to start at all has no (or a zero) startedAt: that is early too.
  const lived = started !== undefined && finished !== undefined && started > 0 ? finished - started : 0;
  if (lived >= earlyExitMs) return undefined;
  const words = [t.reason, t.message].filter(Boolean).join(': ');
  return `exited with code ${t.exitCode ?? 'unknown'} after ${Math.round(lived / 1000)}s${words ? ` (${words})` : ''}`;
}

interface ContainerVerdict { verdict: Verdict; message: string; recheckAt?: number }

function classifyContainer(status: ContainerStatusView | undefined, pod: RestoredPodView, options: OutcomeOptions): ContainerVerdict {
  if (!status) return { verdict: 'pending', message: '' };
  const waiting = status.state?.waiting;
  if (waiting) {
    const reason = waiting.reason ?? '';
    const message = waiting.message ?? '';
    const words = [reason, message].filter(Boolean).join(': ');
    // Pull errors first: the checkpoint image's name may well contain "checkpoint".
    if (PULL_ERROR_REASONS.has(reason)) {
      if (IMAGE_GONE.test(message)) return { verdict: 'failed', message: words };
      const before = pod.lastPullErrors?.[status.name];
      if (before && IMAGE_GONE.test(before)) return { verdict: 'failed', message: `${words} (after ErrImagePull: ${before})` };
      // Connection refused, a timeout, a 5xx, a bare back-off: the kubelet retries, and a pull
      // that clears restores. Wait, from when the kubelet took the pod, then give up on this pod only.
      const giveUpAt = (time(pod.startTime) ?? options.now) + options.imagePullTimeoutMs;
      return options.now >= giveUpAt
        ? { verdict: 'unavailable', message: `the checkpoint image could not be pulled for ${formatAge(options.imagePullTimeoutMs)} (${words})` }
        : { verdict: 'pending', message: '', recheckAt: giveUpAt };
    }
    if (RUNTIME_ERROR_REASONS.has(reason) || RESTORE_WORDS.test(message)) return { verdict: 'failed', message: words };
  }
  const crashed = earlyExit(status.state, options.earlyExitMs) ?? earlyExit(status.lastState, options.earlyExitMs);
  if (crashed) return { verdict: 'failed', message: crashed };
  const running = status.state?.running;
  if (running) {
    const started = time(running.startedAt) ?? options.now;
    const settledAt = started + options.settleMs;
    return options.now >= settledAt ? { verdict: 'succeeded', message: '' } : { verdict: 'pending', message: '', recheckAt: settledAt };
  }
  return { verdict: 'pending', message: '' };
}

/** Undefined when the pod was not restored (no or empty `lazarus.dev/restored-from`). */
export function classifyRestore(pod: RestoredPodView, options: OutcomeOptions): RestoreOutcome | undefined {
  const restored = parseRestoredFrom(pod.annotations?.[K.RESTORED_FROM]);
  if (restored.size === 0) return undefined;
  if (pod.unschedulable) {
    // No node took the pod, so no container has a status: the whole pod waits, or goes cold.
    const since = time(pod.unschedulable.since) ?? options.now;
    const giveUpAt = since + options.unschedulableTimeoutMs;
    const stuck = options.now >= giveUpAt;
    const why = `stayed Unschedulable for ${formatAge(options.now - since)}${pod.unschedulable.message ? ` (${pod.unschedulable.message.trim()})` : ''}`;
    const containers = [...restored].map(([container, checkpoint]): ContainerOutcome => ({ container, checkpoint, verdict: stuck ? 'unavailable' : 'pending', message: stuck ? why : '' }));
    return stuck ? { verdict: 'unavailable', containers, unschedulable: why } : { verdict: 'pending', containers, recheckAt: giveUpAt };
  }
  const byName = new Map((pod.containerStatuses ?? []).map((s) => [s.name, s]));
  const containers: ContainerOutcome[] = [];
  let recheckAt: number | undefined;
  for (const [container, checkpoint] of restored) {
    const c = classifyContainer(byName.get(container), pod, options);
    containers.push({ container, checkpoint, verdict: c.verdict, message: c.message });
    if (c.recheckAt !== undefined) recheckAt = Math.max(recheckAt ?? 0, c.recheckAt);
  }
  // A checkpoint at fault outweighs one that is merely unavailable: both make the pod go cold.
  const verdict: Verdict = containers.some((c) => c.verdict === 'failed')
    ? 'failed'
    : containers.some((c) => c.verdict === 'unavailable') ? 'unavailable'
      : containers.every((c) => c.verdict === 'succeeded') ? 'succeeded' : 'pending';
  return verdict === 'pending' && recheckAt !== undefined ? { verdict, containers, recheckAt } : { verdict, containers };
}
