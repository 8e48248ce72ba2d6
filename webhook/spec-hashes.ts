/**
 * The `lazarus.dev/spec-hashes` stamp (api/keys.ts SPEC_HASHES) on pods the webhook admits. It
 * records each container's hash on the pod as Lazarus sees it; webhooks ordered after Lazarus may
 * still add env or mounts, and the agent must hash what the webhook hashed, not what runs.
 */
import * as K from '../api/keys.js';
import { formatPairs } from '../api/compat.js';
import type { Container, Pod } from '../api/types.js';
import { PatchBuilder } from './patch.js';

/**
 * The stamp's value (api/spec-hash.ts specHashesAnnotation) for the admitted pod's containers,
 * before any image swap, from their hashes (`hashes[i]` is `containers[i]`'s), computed once per
 * admission.
 */
export function specHashesStamp(containers: readonly Container[], hashes: readonly string[]): string {
  return formatPairs(containers.map((c, i) => [c.name, hashes[i] ?? ''] as const));
}

/** Annotation values stay short: the reason is for people, and the full text is in the warning. */
const MAX_REASON = 1024;

/**
 * The patch of a cold start: the spec-hash stamp, and why no checkpoint was used (K.COLD_START),
 * which the controller turns into an Event on the pod.
 */
export function coldStartPatch(pod: Pod, reason: string, hashes: readonly string[]): PatchBuilder {
  const patch = new PatchBuilder();
  patch.annotate(pod.metadata.annotations, [
    { key: K.SPEC_HASHES, value: specHashesStamp(pod.spec.containers, hashes) },
    { key: K.COLD_START, value: reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 1)}…` : reason },
  ]);
  return patch;
}
