/**
 * The `lazarus.dev/checkpoint` annotation (DESIGN §2, checkpoint on demand): a user writes `now`,
 * the controller answers in the same annotation. Only `now` asks for work, so an answer never
 * asks again; writing `now` again (kubectl annotate --overwrite) asks again.
 *
 *   now                          a request (set by the user or `lazarus checkpoint`)
 *   requested <time>             the controller accepted it at <time> and is checkpointing
 *   taken <time>: <detail>       the kubelet wrote an archive of every container; the agent on
 *                                the node turns each into an image and a Checkpoint (Ready later)
 *   failed <time>: <reason>      nothing, or not everything, was taken; <reason> says why
 *
 * <time> is RFC 3339 UTC with whole seconds (`2026-12-06T03:40:02Z`). Pure.
 */

export const REQUEST_NOW = 'now';

export type CheckpointAnswer =
  | { state: 'now' }
  | { state: 'requested'; at: number }
  | { state: 'taken'; at: number; detail: string }
  | { state: 'failed'; at: number; reason: string };

/** RFC 3339, UTC, whole seconds: what Kubernetes timestamps look like. */
export function formatTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
}

const TIME = '(\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(?:\\.\\d+)?Z)';
const REQUESTED = new RegExp(`^requested ${TIME}$`);
const ANSWERED = new RegExp(`^(taken|failed) ${TIME}: ([\\s\\S]*)$`);

/** Undefined when the value is not in the grammar (a typo such as `Now`). */
export function parseAnswer(value: string): CheckpointAnswer | undefined {
  if (value === REQUEST_NOW) return { state: 'now' };
  const requested = REQUESTED.exec(value);
  if (requested) {
    const at = Date.parse(requested[1] ?? '');
    return Number.isFinite(at) ? { state: 'requested', at } : undefined;
  }
  const answered = ANSWERED.exec(value);
  if (!answered) return undefined;
  const at = Date.parse(answered[2] ?? '');
  if (!Number.isFinite(at)) return undefined;
  const text = answered[3] ?? '';
  return answered[1] === 'taken' ? { state: 'taken', at, detail: text } : { state: 'failed', at, reason: text };
}

export function formatAnswer(answer: CheckpointAnswer): string {
  switch (answer.state) {
    case 'now': return REQUEST_NOW;
    case 'requested': return `requested ${formatTime(answer.at)}`;
    case 'taken': return `taken ${formatTime(answer.at)}: ${oneLine(answer.detail)}`;
    case 'failed': return `failed ${formatTime(answer.at)}: ${oneLine(answer.reason)}`;
  }
}

/** Annotations are read in `kubectl describe` and `get -o yaml`: one line, bounded. */
function oneLine(text: string): string {
  const flat = text.replace(/\s*\n\s*/g, ' ').trim();
  return flat.length > 1000 ? `${flat.slice(0, 997)}...` : flat;
}
