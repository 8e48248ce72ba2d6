/**
 * Retention (DESIGN §4, Controller): per namespace + workload, keep the `retain` newest
 * restorable sets; the other Ready checkpoints are marked Expired, then deleted. Failed ones stay
 * for diagnosis for a while, then go. Unavailable ones (set aside after a restore that could not
 * start through no fault of theirs) become Ready again after a while. Pending ones belong to the
 * agent and are left alone. Pure: the caller supplies the clock, each workload's `retain` and the
 * containers of source pods that still exist.
 *
 * Why sets: a restore needs one checkpoint of every container, all from one source pod (the
 * webhook's chooseCheckpoints). Keeping `retain` per container could keep container A's newest
 * from pods 1–3 and B's from pods 4–6, and nothing restores. So checkpoints are grouped per source
 * pod and round: a source pod's checkpoints of each container, newest first, and round k is the
 * k-th newest of every container. (Containers of one pod are checkpointed one after another, with
 * per-container jitter, so their takenAt differ within a round; the rank does not depend on it,
 * nor on Checkpoint names.) A set is complete when it holds every container of its source pod.
 */
import type { Checkpoint, WorkloadRef } from '../api/types.js';

export interface RetentionInput {
  checkpoints: Iterable<Checkpoint>;
  /** `checkpoint.retain` of the policy that applies to this workload. */
  retain(namespace: string, workload: WorkloadRef): number;
  /**
   * The containers of a source pod that still exists; undefined once it is gone (then the
   * containers its Checkpoints name, in any phase, are taken as all of them).
   */
  podContainers?(namespace: string, pod: string): readonly string[] | undefined;
  /**
   * Whether a source pod's eviction is being held for a fresh checkpoint (webhook/eviction.ts):
   * its Checkpoints are what the eviction waits for, so they stay, on top of `retain`, until the
   * pod is gone. Otherwise 5 replicas and `retain: 3` would expire two of them and hold those
   * evictions until `evictionTimeout`.
   */
  held?(namespace: string, pod: string): boolean;
  /** How long a Failed checkpoint is kept, in milliseconds. */
  failedRetentionMs: number;
  /** How long an Unavailable checkpoint is set aside before it is Ready again, in milliseconds. */
  unavailableMs: number;
  /** Milliseconds since the epoch. */
  now: number;
}

export interface RetentionPlan {
  /** Ready (or Unavailable) but in no kept set: set phase Expired, then delete. */
  expire: Checkpoint[];
  /** Already Expired (a previous delete did not happen), or Failed for longer than allowed. */
  remove: Checkpoint[];
  /** Unavailable for `unavailableMs`: Ready again. */
  revive: Checkpoint[];
}

/** One source pod's checkpoints from one round: at most one per container. */
export interface CheckpointSet {
  sourcePod: string;
  members: Checkpoint[];
  complete: boolean;
  /**
   * The oldest member's takenAt: a set is restorable only while every member is younger than
   * maxCheckpointAge, so it is as old as its oldest checkpoint.
   */
  takenAt: number;
}

export function groupKey(cp: Checkpoint): string {
  const { workload } = cp.spec;
  return `${cp.metadata.namespace ?? ''}/${workload.kind}/${workload.name}`;
}

function time(text: string | undefined): number {
  const t = text ? Date.parse(text) : Number.NaN;
  return Number.isFinite(t) ? t : 0;
}

/** Newest first; same takenAt → name order, so the plan is stable. */
export function newestFirst(a: Checkpoint, b: Checkpoint): number {
  const d = time(b.spec.takenAt) - time(a.spec.takenAt);
  if (d !== 0) return d;
  const an = a.metadata.name ?? '';
  const bn = b.metadata.name ?? '';
  return an < bn ? -1 : an > bn ? 1 : 0;
}

/** When a checkpoint became Failed (or Unavailable), as well as we can tell: its failed restore, else its creation. */
export function failedSince(cp: Checkpoint): number {
  const last = cp.status?.lastRestore;
  if (last?.outcome === 'Failed' && last.at) return time(last.at);
  return time(cp.metadata.creationTimestamp) || time(cp.spec.takenAt);
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * The sets of one workload's usable (Ready or Unavailable) checkpoints. `expected` names every
 * container of a source pod.
 */
export function checkpointSets(usable: readonly Checkpoint[], expected: (sourcePod: string) => ReadonlySet<string>): CheckpointSet[] {
  const byPod = new Map<string, Map<string, Checkpoint[]>>();
  for (const cp of usable) {
    let containers = byPod.get(cp.spec.sourcePod);
    if (!containers) byPod.set(cp.spec.sourcePod, (containers = new Map()));
    push(containers, cp.spec.container, cp);
  }
  const sets: CheckpointSet[] = [];
  for (const [sourcePod, containers] of byPod) {
    for (const list of containers.values()) list.sort(newestFirst);
    const want = expected(sourcePod);
    const rounds = Math.max(...[...containers.values()].map((l) => l.length));
    for (let k = 0; k < rounds; k++) {
      const members = [...containers.values()].flatMap((l) => l.slice(k, k + 1));
      const have = new Set(members.map((m) => m.spec.container));
      sets.push({
        sourcePod, members,
        complete: [...want].every((c) => have.has(c)),
        takenAt: Math.min(...members.map((m) => time(m.spec.takenAt))),
      });
    }
  }
  return sets.sort((a, b) => b.takenAt - a.takenAt || (a.sourcePod < b.sourcePod ? -1 : a.sourcePod > b.sourcePod ? 1 : 0));
}

/**
 * Keeps the `retain` newest complete sets. Incomplete sets newer than the oldest kept one may be
 * a round still in progress (the other container's checkpoint is Pending or not taken yet), so
 * they stay too, at most `retain` of them: a round in progress never pushes out a restorable set,
 * and sets that can never complete do not pile up.
 */
export function keptSets(sets: readonly CheckpointSet[], retain: number): CheckpointSet[] {
  const complete = sets.filter((s) => s.complete).slice(0, retain);
  const oldestKept = complete.length === retain ? complete.at(-1)?.takenAt ?? Number.NEGATIVE_INFINITY : Number.NEGATIVE_INFINITY;
  const inProgress = sets.filter((s) => !s.complete && s.takenAt > oldestKept).slice(0, retain);
  return [...complete, ...inProgress];
}

export function planRetention(input: RetentionInput): RetentionPlan {
  const usable = new Map<string, Checkpoint[]>();
  /** Containers named by each source pod's Checkpoints in any phase: namespace/kind/workload → pod → containers. */
  const named = new Map<string, Map<string, Set<string>>>();
  const remove: Checkpoint[] = [];
  const revive: Checkpoint[] = [];
  for (const cp of input.checkpoints) {
    const key = groupKey(cp);
    let pods = named.get(key);
    if (!pods) named.set(key, (pods = new Map()));
    let containers = pods.get(cp.spec.sourcePod);
    if (!containers) pods.set(cp.spec.sourcePod, (containers = new Set()));
    containers.add(cp.spec.container);
    switch (cp.status?.phase) {
      case 'Unavailable':
        if (input.now - failedSince(cp) >= input.unavailableMs) revive.push(cp);
        push(usable, key, cp);
        break;
      case 'Ready':
        push(usable, key, cp);
        break;
      case 'Expired':
        remove.push(cp);
        break;
      case 'Failed':
        if (input.now - failedSince(cp) >= input.failedRetentionMs) remove.push(cp);
        break;
      case 'Pending':
      case undefined:
        break;
    }
  }
  const expire: Checkpoint[] = [];
  for (const [key, list] of usable) {
    const first = list[0];
    if (!first) continue;
    const namespace = first.metadata.namespace ?? '';
    // A negative or fractional retain from a hand-edited object must not delete everything.
    const retain = Math.max(1, Math.floor(input.retain(namespace, first.spec.workload)));
    const expected = (pod: string): ReadonlySet<string> => {
      const live = input.podContainers?.(namespace, pod);
      return live ? new Set(live) : named.get(key)?.get(pod) ?? new Set();
    };
    const kept = new Set(keptSets(checkpointSets(list, expected), retain).flatMap((s) => s.members));
    expire.push(...list.filter((cp) => !kept.has(cp) && !input.held?.(namespace, cp.spec.sourcePod)).sort(newestFirst));
  }
  const expiring = new Set(expire);
  return { expire, remove, revive: revive.filter((cp) => !expiring.has(cp)) };
}
