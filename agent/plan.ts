/**
 * Pure decisions of the watcher: which files are archives, names of images and Checkpoints
 * (deterministic, so a restart after a crash converges on the same objects), and the
 * Checkpoint object itself.
 */
import { createHash } from 'node:crypto';
import * as K from '../api/keys.js';
import type { Checkpoint, CheckpointSpec, WorkloadRef } from '../api/types.js';

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

export function checkpointName(workload: WorkloadRef, container: string, takenAt: string): string {
  return dnsName(`${workload.name}-${container}-${compactTime(takenAt)}`, 253);
}

/** `registry.example/lazarus` + shop/web/app → `registry.example/lazarus/shop/web-app:20261127t120000z`. */
export function imageRefFor(registry: string, namespace: string, workload: WorkloadRef, container: string, takenAt: string): string {
  return `${registry.replace(/\/$/, '')}/${dnsName(namespace)}/${dnsName(`${workload.name}-${container}`)}:${compactTime(takenAt)}`;
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

export type CheckpointInput = CheckpointSpec & { name: string; namespace: string };

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

/** Retry delay for an archive that failed `attempt` times for a transient reason. */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
}
