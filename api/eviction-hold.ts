/**
 * An eviction Lazarus holds (webhook/eviction.ts) is recorded on the pod as
 * `lazarus.dev/eviction-held-since: <time>`. The webhook measures the hold from it; the
 * controller's retention keeps the Checkpoints such a pod waits for. Pure.
 */
import * as K from './keys.js';

/** How long past its timeout a hold is still the current eviction's (drain retries every 5 s). */
export const STALE_HOLD_MS = 5 * 60_000;

/**
 * When the pod's current hold began (ms since the epoch), or undefined when there is none or it
 * is older than `timeoutMs` + STALE_HOLD_MS: an eviction that never happened (a PDB refused it,
 * the drain was stopped), so the next one starts afresh.
 */
export function liveHoldSince(annotations: Readonly<Record<string, string>> | undefined, timeoutMs: number, now: number): number | undefined {
  const recorded = Date.parse(annotations?.[K.EVICTION_HELD_SINCE] ?? '');
  return Number.isFinite(recorded) && now < recorded + timeoutMs + STALE_HOLD_MS ? recorded : undefined;
}
