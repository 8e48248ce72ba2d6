/**
 * Which containers to checkpoint now (DESIGN §4, Controller). Pure: the clock, the jitter and
 * everything remembered about earlier attempts come in as data.
 *
 * - Interval: due `interval × (1 + jitterFactor × jitter)` after the last checkpoint (or after
 *   the pod started), so pods started together do not all hit their nodes together.
 * - Drain: with `onDrain`, due as soon as the pod's node is cordoned, unless a checkpoint was
 *   taken since the cordon. Drain checkpoints go first: the pod is about to leave.
 * - On demand (`lazarus.dev/checkpoint: now`, controller/demand.ts): due at the request, with no
 *   backoff (a person asked, once); after drain checkpoints, before periodic ones.
 * - After a failure, nothing is due before an exponential backoff has passed — never a tight
 *   loop against a kubelet that says 404 or 500.
 * - Per node, checkpoints run in parallel up to the RestorePolicy's `checkpoint.maxParallelPerNode`
 *   (a drain evicts many pods at once: 20 pods with bound 4 take ≈5 rounds, not 20). Where pods of
 *   several policies share a node, the smallest bound among the job about to start and the jobs
 *   already in flight there applies: the bound protects the node (CRIU freezes the process and
 *   writes its memory to the node's disk), so no checkpoint ever runs beside more others than its
 *   own policy allows. A node's due jobs start in order: once the first one that waits cannot
 *   start, none behind it does (a strict policy's pod is not starved by looser ones).
 * - A container with a checkpoint in flight is not started again until it ends (its state, and so
 *   its next due time, is known only then).
 * - At most `maxConcurrent` in flight in the cluster.
 */
import { backoffDelay, type Backoff } from '../runtime/backoff.js';

export interface Target {
  /** `namespace/pod/container`, unique. */
  key: string;
  namespace: string;
  pod: string;
  podUid: string;
  node: string;
  container: string;
  /** When the pod started (ms epoch): the base of its first interval. */
  startedAt: number;
  /** 0: no periodic checkpoints. */
  intervalMs: number;
  onDrain: boolean;
  timeoutSeconds: number;
  /** The policy's `checkpoint.maxParallelPerNode` (≥ 1). */
  maxParallelPerNode: number;
}

/** Checkpoints in flight on one node. */
export interface NodeLoad {
  inFlight: number;
  /** The smallest `maxParallelPerNode` among the checkpoints in flight there. */
  bound: number;
}

export interface TargetState {
  /** Newest known checkpoint of this container (ms epoch): an object's takenAt or our own success. */
  lastCheckpointAt?: number;
  /** Consecutive failures; 0 after a success. */
  failures: number;
  lastFailureAt?: number;
}

export type JobReason = 'drain' | 'demand' | 'interval';

/** Order among due jobs: the pod about to leave, then the person waiting, then the schedule. */
const RANK: Readonly<Record<JobReason, number>> = { drain: 0, demand: 1, interval: 2 };

export interface Job { target: Target; reason: JobReason; dueAt: number }

export interface ScheduleInput {
  targets: Iterable<Target>;
  state(key: string): TargetState | undefined;
  /** When the controller first saw the node cordoned (ms epoch); undefined while schedulable. */
  cordonedAt(node: string): number | undefined;
  /** When an open on-demand request for this key was made (ms epoch); undefined when none. */
  demanded?(key: string): number | undefined;
  /** Nodes with checkpoints in flight; a node missing here has none. */
  nodeLoad: ReadonlyMap<string, NodeLoad>;
  /** Target keys with a checkpoint in flight: never started a second time meanwhile. */
  running: ReadonlySet<string>;
  /** Checkpoints in flight in the cluster. */
  inFlight: number;
  maxConcurrent: number;
  now: number;
  /** In [0, 1), stable per key. */
  jitter(key: string): number;
  /** Largest stretch of an interval, e.g. 0.1 = up to 10 % later. */
  jitterFactor: number;
  backoff: Backoff;
}

/** When this target is next due, and why; undefined when never (no interval, no cordon). */
export function dueAt(target: Target, state: TargetState | undefined, cordonedAt: number | undefined, input: Pick<ScheduleInput, 'jitter' | 'jitterFactor' | 'backoff'>, demandedAt?: number): Job | undefined {
  if (demandedAt !== undefined) return { target, reason: 'demand', dueAt: demandedAt };
  const last = state?.lastCheckpointAt;
  const notBefore = state?.failures && state.lastFailureAt !== undefined
    ? state.lastFailureAt + backoffDelay(state.failures, input.backoff)
    : Number.NEGATIVE_INFINITY;
  if (target.onDrain && cordonedAt !== undefined && (last === undefined || last < cordonedAt)) {
    return { target, reason: 'drain', dueAt: Math.max(cordonedAt, notBefore) };
  }
  if (target.intervalMs > 0) {
    const stretch = 1 + input.jitterFactor * Math.min(Math.max(input.jitter(target.key), 0), 1);
    const base = last ?? target.startedAt;
    return { target, reason: 'interval', dueAt: Math.max(base + target.intervalMs * stretch, notBefore) };
  }
  return undefined;
}

export function planCheckpoints(input: ScheduleInput): Job[] {
  const due: Job[] = [];
  for (const target of input.targets) {
    if (input.running.has(target.key)) continue;
    const job = dueAt(target, input.state(target.key), input.cordonedAt(target.node), input, input.demanded?.(target.key));
    if (job && job.dueAt <= input.now) due.push(job);
  }
  due.sort((a, b) => {
    if (a.reason !== b.reason) return RANK[a.reason] - RANK[b.reason];
    if (a.dueAt !== b.dueAt) return a.dueAt - b.dueAt;
    return a.target.key < b.target.key ? -1 : a.target.key > b.target.key ? 1 : 0;
  });
  const chosen: Job[] = [];
  const load = new Map<string, NodeLoad>();
  const blocked = new Set<string>();
  let room = input.maxConcurrent - input.inFlight;
  for (const job of due) {
    if (room <= 0) break;
    const node = job.target.node;
    if (blocked.has(node)) continue;
    const current = load.get(node) ?? input.nodeLoad.get(node) ?? { inFlight: 0, bound: Number.POSITIVE_INFINITY };
    const bound = Math.min(current.bound, perNodeBound(job.target));
    if (current.inFlight >= bound) { blocked.add(node); continue; }
    load.set(node, { inFlight: current.inFlight + 1, bound });
    chosen.push(job);
    room--;
  }
  return chosen;
}

/** A target's own per-node bound; anything but a whole number ≥ 1 counts as 1 (never unbounded). */
export function perNodeBound(target: Pick<Target, 'maxParallelPerNode'>): number {
  const n = target.maxParallelPerNode;
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

/** A stable pseudo-random fraction in [0, 1) from a key (FNV-1a): jitter without randomness. */
export function hashJitter(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 2 ** 32;
}
