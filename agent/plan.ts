/**
 * Pure decisions of the watcher: which files are archives, names of images and Checkpoints
 * (deterministic, so a restart after a crash converges on the same objects), and the
 * Checkpoint object itself.
 */
import { createHash } from 'node:crypto';
import * as K from '../api/keys.js';
import type { Checkpoint, CheckpointSpec, Pod, WorkloadRef } from '../api/types.js';

const ARCHIVE_SUFFIXES = ['.tar', '.tar.gz', '.tgz', '.tar.zst', '.tar.zstd'];

/** Kubelet writes `checkpoint-<pod>_<namespace>-<container>-<RFC3339>.tar`; anything tar-like counts. */
export function isArchiveName(name: string): boolean {
  return !name.startsWith('.') && ARCHIVE_SUFFIXES.some((s) => name.endsWith(s));
}

/** `2026-11-27T12:00:00.5Z` → `20261127t120000z`. */
export function compactTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return 'unknown';
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '').toLowerCase();
}

/** A DNS-1123 name (Checkpoint names, image path components): lower-case, ≤ max, hashed when cut. */
export function dnsName(raw: string, max = 63): string {
  const clean = raw.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/-+/g, '-').replace(/^-|-$/g, '');
  if (clean.length <= max) return clean || 'x';
  const hash = createHash('sha256').update(raw).digest('hex').slice(0, 8);
  return `${clean.slice(0, max - 9).replace(/-$/, '')}-${hash}`;
}

/**
 * What tells one source pod from another in names and tags: the first 8 hex digits of its UID
 * (two replicas checkpointed in the same second must not share a name or a tag), else a hash of
 * its name for a pod seen without a UID.
 */
export function podTag(pod: { name?: string; uid?: string }): string {
  const hex = (pod.uid ?? '').toLowerCase().replace(/[^0-9a-f]/g, '');
  if (hex.length >= 8) return hex.slice(0, 8);
  return createHash('sha256').update(pod.name ?? '').digest('hex').slice(0, 8);
}

/** `web-app-20261127t120000z-1b2c3d4e`: unique per workload, container, second and source pod. */
export function checkpointName(workload: WorkloadRef, container: string, takenAt: string, sourcePodTag: string): string {
  return dnsName(`${workload.name}-${container}-${compactTime(takenAt)}-${sourcePodTag}`, 253);
}

/** `registry.example/lazarus` + shop/web/app → `registry.example/lazarus/shop/web-app:20261127t120000z-1b2c3d4e`. */
export function imageRefFor(registry: string, namespace: string, workload: WorkloadRef, container: string, takenAt: string, sourcePodTag: string): string {
  return `${registry.replace(/\/$/, '')}/${dnsName(namespace)}/${dnsName(`${workload.name}-${container}`)}:${compactTime(takenAt)}-${sourcePodTag}`;
}

/** A container created this long before its pod cannot belong to it (allows node/API clock skew). */
const CREATED_BEFORE_POD_TOLERANCE_MS = 60_000;

/**
 * Why the pod found by name is not the pod the archive was taken from, or undefined when it is.
 * A StatefulSet pod recreated (same name, new template) before its archive is processed must not
 * lend its spec hash to the old pod's memory. The archive's pod UID decides; archives without one
 * fall back to time: a container created well before the pod existed was not that pod's.
 */
export function sourcePodMismatch(archive: { podUid?: string; createdTime?: string }, pod: Pick<Pod, 'metadata'>): string | undefined {
  const name = `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}`;
  const uid = pod.metadata.uid;
  if (archive.podUid !== undefined && uid !== undefined) {
    return archive.podUid === uid ? undefined
      : `pod ${name} was recreated before its checkpoint was processed (the archive's pod UID is ${archive.podUid}, the pod's now ${uid}): its spec hash would stamp old memory as the new version`;
  }
  const created = Date.parse(archive.createdTime ?? '');
  const podCreated = Date.parse(pod.metadata.creationTimestamp ?? '');
  if (created + CREATED_BEFORE_POD_TOLERANCE_MS < podCreated) {
    return `pod ${name} was recreated before its checkpoint was processed (the container was created at ${archive.createdTime ?? ''}, the pod at ${pod.metadata.creationTimestamp ?? ''})`;
  }
  return undefined;
}

/**
 * On a name conflict (409): may the existing Checkpoint be adopted as this one? Only when it is
 * the same source pod's (same pod, UID and container) — the earlier run of this archive, whose
 * image was pushed before it was created. Anything else is never overwritten: a Checkpoint's
 * spec does not change after creation.
 */
export function adoptionRefusal(existing: Checkpoint, desired: Checkpoint): string | undefined {
  const uid = (c: Checkpoint): string | undefined => c.metadata.labels?.[K.CHECKPOINT_SOURCE_POD_UID];
  const same = existing.spec.sourcePod === desired.spec.sourcePod && existing.spec.container === desired.spec.container && uid(existing) === uid(desired);
  if (same) return undefined;
  return `Checkpoint ${existing.metadata.namespace ?? ''}/${existing.metadata.name ?? ''} already exists for pod ${existing.spec.sourcePod}` +
    ` (uid ${uid(existing) ?? 'unknown'}) container ${existing.spec.container}; not overwriting it with pod ${desired.spec.sourcePod}'s (uid ${uid(desired) ?? 'unknown'})`;
}

/** Name of the Failed Checkpoint recorded for an archive that could not even be read. */
export function failedCheckpointName(fileName: string): string {
  const base = fileName.replace(/\.(tar(\.gz|\.zst|\.zstd)?|tgz)$/, '');
  return dnsName(`failed-${base}`, 253);
}

/** Candidate (namespace, pod, container) splits of a kubelet archive name; namespace/container may hold dashes. */
export function parseKubeletArchiveName(fileName: string): { pod: string; namespace: string; container: string }[] {
  const m = /^checkpoint-([^_]+)_(.+)-(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))\.tar/.exec(fileName);
  if (!m?.[1] || !m[2]) return [];
  const [pod, rest] = [m[1], m[2]];
  const out: { pod: string; namespace: string; container: string }[] = [];
  for (let i = rest.indexOf('-'); i > 0; i = rest.indexOf('-', i + 1)) {
    out.push({ pod, namespace: rest.slice(0, i), container: rest.slice(i + 1) });
  }
  return out;
}

export type CheckpointInput = CheckpointSpec & { name: string; namespace: string; sourcePodUid?: string };

export function checkpointObject(i: CheckpointInput): Checkpoint {
  return {
    apiVersion: K.API_VERSION,
    kind: 'Checkpoint',
    metadata: {
      name: i.name,
      namespace: i.namespace,
      labels: {
        [K.CHECKPOINT_WORKLOAD]: dnsName(i.workload.name),
        [K.CHECKPOINT_WORKLOAD_KIND]: i.workload.kind,
        [K.CHECKPOINT_CONTAINER]: dnsName(i.container),
        ...(i.sourcePodUid ? { [K.CHECKPOINT_SOURCE_POD_UID]: i.sourcePodUid } : {}),
      },
    },
    spec: {
      workload: i.workload,
      container: i.container,
      sourcePod: i.sourcePod,
      image: i.image,
      baseImage: i.baseImage,
      ...(i.baseImageID ? { baseImageID: i.baseImageID } : {}),
      specHash: i.specHash,
      takenAt: i.takenAt,
      origin: i.origin,
    },
  };
}
