import crypto from 'node:crypto';
import { formatPairs, parsePairs } from './compat.js';
import * as K from './keys.js';
import type { Container, Pod } from './types.js';

/** The container fields that define "the same program": a checkpoint never crosses a change in them. */
const HASHED_FIELDS = ['image', 'command', 'args', 'workingDir', 'env', 'envFrom', 'volumeMounts'] as const;

/** JSON with object keys sorted at every level, arrays in order, no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  // Built in one pass (no entries, no intermediate arrays): it runs for every container of
  // every admission. Keys sort as strings do by default, by UTF-16 code units.
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      if (i in value) out += canonicalJson(value[i]);
    }
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  let out = '{';
  for (const key of Object.keys(record).sort()) {
    const v = record[key];
    if (v === undefined) continue;
    if (out.length > 1) out += ',';
    out += `${JSON.stringify(key)}:${canonicalJson(v)}`;
  }
  return `${out}}`;
}

/** One-shot crypto.hash where Node has it (20.12+): no Hash object per call. */
const sha256Hex: (text: string) => string = typeof crypto.hash === 'function'
  ? (text) => crypto.hash('sha256', text, 'hex')
  : (text) => crypto.createHash('sha256').update(text).digest('hex');

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  return false;
}

/**
 * The API server's ServiceAccount admission plugin runs before mutating webhooks and adds a
 * token volume named `kube-api-access-<random>` to every pod: a different name per pod. Left
 * in, it would give every pod its own hash and no checkpoint would ever match.
 */
function isInjectedTokenMount(mount: unknown): boolean {
  const name = (mount as { name?: unknown } | null)?.name;
  return typeof name === 'string' && name.startsWith('kube-api-access-');
}

type HashedField = typeof HASHED_FIELDS[number];

/** What `field` contributes to the hash: undefined when empty, without the injected token mount. */
function hashedValue(container: Container, field: HashedField, originalImage: string | undefined): unknown {
  let value: unknown = field === 'image' ? (originalImage ?? container.image) : container[field];
  if (field === 'volumeMounts' && Array.isArray(value)) value = value.filter((m) => !isInjectedTokenMount(m));
  return isEmpty(value) ? undefined : value;
}

/**
 * The container fields specHash covers, each present only when non-empty, with the injected
 * token mount left out: "the same program" as data. A restored pod's original image goes in
 * `originalImage`.
 */
export function hashedFields(container: Container, originalImage?: string): Partial<Container> {
  const subject: Record<string, unknown> = {};
  for (const field of HASHED_FIELDS) {
    const value = hashedValue(container, field, originalImage);
    if (value !== undefined) subject[field] = value;
  }
  return subject as Partial<Container>;
}

/** HASHED_FIELDS in the order canonicalJson sorts them. */
const SORTED_HASHED_FIELDS = [...HASHED_FIELDS].sort();

/**
 * DESIGN §3: first 16 hex chars of SHA-256 over the canonical JSON of the container's image
 * (the original, pre-restore one — pass it as `originalImage` for a restored pod), command,
 * args, workingDir, env, envFrom and volumeMounts, each present only when non-empty. That is
 * canonicalJson(hashedFields(container, originalImage)), written without building the subject:
 * this runs for every container of every admission.
 */
export function specHash(container: Container, originalImage?: string): string {
  let json = '{';
  for (const field of SORTED_HASHED_FIELDS) {
    const value = hashedValue(container, field, originalImage);
    if (value === undefined) continue;
    if (json.length > 1) json += ',';
    json += `"${field}":${canonicalJson(value)}`;
  }
  return sha256Hex(`${json}}`).slice(0, 16);
}

/** The `lazarus.dev/spec-hashes` value for these containers, as admitted: `app=3f2a…,side=…`. */
export function specHashesAnnotation(containers: readonly Container[]): string {
  return formatPairs(containers.map((c) => [c.name, specHash(c)] as const));
}

const SPEC_HASH_FORMAT = /^[0-9a-f]{16}$/;

export type SpecHashSource = 'admission' | 'running pod';

/**
 * A container's image may be changed in place on a running pod (the only hashed field that may):
 * the stamp would then name the old version. The API server counts spec changes in
 * metadata.generation (1 at creation, since Kubernetes 1.33), and graceful deletion adds one more
 * (measured on 1.35: create 1, image change 2, delete 3). After any other change the stamp is not
 * trusted; resizes and ephemeral containers count too, which costs at most a cold start, never
 * the wrong memory.
 */
function changedSinceAdmission(pod: Pick<Pod, 'metadata'>): boolean {
  const { generation, deletionTimestamp } = pod.metadata;
  return generation !== undefined && generation > (deletionTimestamp ? 2 : 1);
}

/**
 * The spec hash of a pod's container for a checkpoint: the one the webhook stamped at admission
 * when present (mutating webhooks ordered after Lazarus may have added env or mounts since, which
 * the webhook never saw), else computed on the running pod (admitted while the webhook was down).
 * A malformed stamped value is not trusted.
 */
export function podContainerSpecHash(pod: Pick<Pod, 'metadata'>, container: Container): { hash: string; source: SpecHashSource } {
  const stamped = parsePairs(pod.metadata.annotations?.[K.SPEC_HASHES]).get(container.name);
  if (stamped !== undefined && SPEC_HASH_FORMAT.test(stamped) && !changedSinceAdmission(pod)) return { hash: stamped, source: 'admission' };
  const originalImage = parsePairs(pod.metadata.annotations?.[K.ORIGINAL_IMAGES]).get(container.name);
  return { hash: specHash(container, originalImage), source: 'running pod' };
}
