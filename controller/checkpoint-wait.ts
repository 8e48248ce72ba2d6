/**
 * `lazarus checkpoint pod … --wait`: is the request done? Pure: the pod's annotation, its
 * containers and the Checkpoint objects of its namespace come in as data.
 *
 * Done when the controller answered (`failed` ends it at once) and, after `taken`, every
 * container has a Checkpoint from this pod taken at or after the request that reached Ready or
 * Failed — the agent's part, which comes after the kubelet wrote the archive.
 */
import { parseAnswer } from '../api/checkpoint-request.js';
import { CHECKPOINT_REQUEST } from '../api/keys.js';
import type { Checkpoint } from '../api/types.js';

export interface WaitInput {
  pod: string;
  containers: readonly string[];
  /** The pod's `lazarus.dev/checkpoint` value now. */
  answer: string | undefined;
  /** When `now` was written (ms epoch); answers and checkpoints before its second are older requests'. */
  requestedAt: number;
  /** Checkpoints of the pod's namespace. */
  checkpoints: Iterable<Checkpoint>;
}

export type WaitVerdict =
  | { done: false; waiting: string }
  | { done: true; ok: boolean; reason: string; checkpoints: Checkpoint[] };

const time = (text: string): number => { const t = Date.parse(text); return Number.isFinite(t) ? t : Number.NaN; };

export function judgeWait(input: WaitInput): WaitVerdict {
  const since = Math.floor(input.requestedAt / 1000) * 1000;
  const answer = input.answer === undefined ? undefined : parseAnswer(input.answer);
  if (!answer || answer.state === 'now' || answer.state === 'requested' || answer.at < since) {
    return { done: false, waiting: `the controller to answer (${CHECKPOINT_REQUEST}: ${input.answer ?? '(none)'})` };
  }
  if (answer.state === 'failed') return { done: true, ok: false, reason: `the controller answered: failed: ${answer.reason}`, checkpoints: [] };
  const chosen: Checkpoint[] = [];
  const pending: string[] = [];
  for (const container of input.containers) {
    // The first checkpoint of this container since the request is the one it asked for.
    let first: Checkpoint | undefined;
    for (const cp of input.checkpoints) {
      if (cp.spec.sourcePod !== input.pod || cp.spec.container !== container) continue;
      const at = time(cp.spec.takenAt);
      if (!(at >= since)) continue;
      if (!first || at < time(first.spec.takenAt) || (at === time(first.spec.takenAt) && (cp.metadata.name ?? '') < (first.metadata.name ?? ''))) first = cp;
    }
    const phase = first?.status?.phase;
    if (!first || (phase !== 'Ready' && phase !== 'Failed')) {
      pending.push(first ? `${container} (${first.metadata.name ?? ''}: ${phase ?? 'no phase yet'})` : `${container} (no Checkpoint yet)`);
      continue;
    }
    chosen.push(first);
  }
  if (pending.length) return { done: false, waiting: `the agent's Checkpoint of ${pending.join(', ')}` };
  const failed = chosen.filter((c) => c.status?.phase === 'Failed');
  if (failed.length) {
    return { done: true, ok: false, reason: failed.map((c) => `Checkpoint ${c.metadata.name ?? ''} of container ${c.spec.container} Failed: ${c.status?.reason || 'no reason given'}`).join('; '), checkpoints: chosen };
  }
  return { done: true, ok: true, reason: `${chosen.length} checkpoint(s) Ready`, checkpoints: chosen };
}

/** One line per Checkpoint: name, container, image, phase — aligned. */
export function formatCheckpoints(checkpoints: readonly Checkpoint[]): string[] {
  const rows = [['NAME', 'CONTAINER', 'IMAGE', 'PHASE'], ...checkpoints.map((c) => [c.metadata.name ?? '', c.spec.container, c.spec.image || '-', c.status?.phase ?? '-'])];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i < 3 ? cell.padEnd((widths[i] ?? 0) + 2) : cell)).join('').trimEnd());
}
