/**
 * Did a restored pod come back? (DESIGN §4, Controller, restore outcome.) Pure: reads the pod's
 * container statuses and the clock.
 *
 * - A restored container running for at least `settleMs` → succeeded. Waiting that long means a
 *   restore that dies at once (bad CPU flags, missing files) is not counted as a success.
 * - Waiting with CreateContainerError (or another runtime error reason), a message that speaks
 *   of restore/CRIU/checkpoint, or an image that cannot be pulled → failed, with the runtime's text.
 * - Terminated (now or as last state) with a non-zero code within `earlyExitMs` of starting → failed.
 * - Anything else (Pending, ContainerCreating, running for less than settleMs) → pending.
 */
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

export interface RestoredPodView {
  annotations?: Record<string, string>;
  phase?: string;
  containerStatuses?: ContainerStatusView[];
}

export type Verdict = 'succeeded' | 'failed' | 'pending';

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
}

export interface OutcomeOptions {
  now: number;
  settleMs: number;
  earlyExitMs: number;
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
  // The checkpoint image itself cannot be had: a cold start from the original image can.
  'ImagePullBackOff', 'ErrImagePull', 'InvalidImageName', 'ErrImageNeverPull',
]);
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

function classifyContainer(status: ContainerStatusView | undefined, options: OutcomeOptions): { verdict: Verdict; message: string; recheckAt?: number } {
  if (!status) return { verdict: 'pending', message: '' };
  const waiting = status.state?.waiting;
  if (waiting) {
    const reason = waiting.reason ?? '';
    const message = waiting.message ?? '';
    if (RUNTIME_ERROR_REASONS.has(reason) || RESTORE_WORDS.test(message)) {
      return { verdict: 'failed', message: [reason, message].filter(Boolean).join(': ') };
    }
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
  const byName = new Map((pod.containerStatuses ?? []).map((s) => [s.name, s]));
  const containers: ContainerOutcome[] = [];
  let recheckAt: number | undefined;
  for (const [container, checkpoint] of restored) {
    const c = classifyContainer(byName.get(container), options);
    containers.push({ container, checkpoint, verdict: c.verdict, message: c.message });
    if (c.recheckAt !== undefined) recheckAt = Math.max(recheckAt ?? 0, c.recheckAt);
  }
  const verdict: Verdict = containers.some((c) => c.verdict === 'failed')
    ? 'failed'
    : containers.every((c) => c.verdict === 'succeeded') ? 'succeeded' : 'pending';
  return verdict === 'pending' && recheckAt !== undefined ? { verdict, containers, recheckAt } : { verdict, containers };
}
