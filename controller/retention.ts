/**
 * Retention (DESIGN §4, Controller): per namespace + workload + container, keep the `retain`
 * newest Ready checkpoints; older Ready ones are marked Expired, then deleted. Failed ones stay
 * for diagnosis for a while, then go. Pending ones belong to the agent and are left alone.
 * Pure: the caller supplies the clock and each group's `retain`.
 */
import type { Checkpoint, WorkloadRef } from '../api/types.js';

export interface RetentionInput {
  checkpoints: Iterable<Checkpoint>;
  /** `checkpoint.retain` of the policy that applies to this workload. */
  retain(namespace: string, workload: WorkloadRef): number;
  /** How long a Failed checkpoint is kept, in milliseconds. */
  failedRetentionMs: number;
  /** Milliseconds since the epoch. */
  now: number;
}

export interface RetentionPlan {
  /** Ready but beyond `retain`: set phase Expired, then delete. */
  expire: Checkpoint[];
  /** Already Expired (a previous delete did not happen), or Failed for longer than allowed. */
  remove: Checkpoint[];
}

export function groupKey(cp: Checkpoint): string {
  const { workload, container } = cp.spec;
  return `${cp.metadata.namespace ?? ''}/${workload.kind}/${workload.name}/${container}`;
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

/** When a checkpoint became Failed, as well as we can tell: its failed restore, else its creation. */
export function failedSince(cp: Checkpoint): number {
  const last = cp.status?.lastRestore;
  if (last?.outcome === 'Failed' && last.at) return time(last.at);
  return time(cp.metadata.creationTimestamp) || time(cp.spec.takenAt);
}

export function planRetention(input: RetentionInput): RetentionPlan {
  const ready = new Map<string, Checkpoint[]>();
  const remove: Checkpoint[] = [];
  for (const cp of input.checkpoints) {
    switch (cp.status?.phase) {
      case 'Ready': {
        const key = groupKey(cp);
        const list = ready.get(key);
        if (list) list.push(cp);
        else ready.set(key, [cp]);
        break;
      }
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
  for (const list of ready.values()) {
    const first = list[0];
    if (!first) continue;
    // A negative or fractional retain from a hand-edited object must not delete everything.
    const retain = Math.max(1, Math.floor(input.retain(first.metadata.namespace ?? '', first.spec.workload)));
    if (list.length <= retain) continue;
    expire.push(...[...list].sort(newestFirst).slice(retain));
  }
  return { expire, remove };
}
