/**
 * The `lazarus.dev/spec-hashes` stamp (api/keys.ts SPEC_HASHES) on pods the webhook admits. It
 * records each container's hash on the pod as Lazarus sees it; webhooks ordered after Lazarus may
 * still add env or mounts, and the agent must hash what the webhook hashed, not what runs.
 */
import jsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import * as K from '../api/keys.js';
import { specHashesAnnotation } from '../api/spec-hash.js';
import type { Pod } from '../api/types.js';

/** Sets the stamp on `target` (a copy being patched) from `admitted`'s containers, before any image swap. */
export function stampSpecHashes(target: Pod, admitted: Pod): void {
  target.metadata.annotations = { ...target.metadata.annotations, [K.SPEC_HASHES]: specHashesAnnotation(admitted.spec.containers) };
}

/** Annotation values stay short: the reason is for people, and the full text is in the warning. */
const MAX_REASON = 1024;

/**
 * The patch of a cold start, diffed like every other patch: the spec-hash stamp, and why no
 * checkpoint was used (K.COLD_START), which the controller turns into an Event on the pod.
 */
export function coldStartPatch(pod: Pod, reason: string): Operation[] {
  const { annotations } = pod.metadata;
  const before: Pod = { metadata: annotations === undefined ? {} : { annotations }, spec: { containers: [] } };
  const after = structuredClone(before);
  stampSpecHashes(after, pod);
  after.metadata.annotations = { ...after.metadata.annotations, [K.COLD_START]: reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 1)}…` : reason };
  return jsonPatch.compare(before, after);
}
