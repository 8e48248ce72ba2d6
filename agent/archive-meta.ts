/**
 * What a checkpoint archive says about itself, from config.dump and spec.dump. The three engines
 * write them differently (checkpointctl's internal/container.go is the reference):
 * - podman: spec annotation `io.container.manager: libpod`; the name is config.dump's `name`.
 * - CRI-O: `io.container.manager: cri-o`; name from the JSON in `io.kubernetes.cri-o.Metadata`,
 *   pod and namespace from `io.kubernetes.pod.name` / `io.kubernetes.pod.namespace`.
 * - containerd (anything else): `io.kubernetes.cri.container-name`, `…sandbox-name`,
 *   `…sandbox-namespace`.
 * config.dump is the same reduced podman ContainerConfig for all three.
 */
import { ArchiveError } from './archive.js';

export type Engine = 'Podman' | 'CRI-O' | 'containerd';

export interface ArchiveMeta {
  engine: Engine;
  container: string;
  pod?: string;
  namespace?: string;
  podUid?: string;
  id?: string;
  /** The image the user asked for (CRI-O/containerd), e.g. `registry.example/web:1.4`. */
  rootfsImage?: string;
  /** The resolved image name, e.g. `docker.io/library/web:1.4`. */
  rootfsImageName?: string;
  /** What ran: an image ID or `repo@sha256:…`. */
  rootfsImageId?: string;
  /** The OCI runtime, e.g. `runc`. */
  runtime?: string;
  createdTime?: string;
  checkpointedTime?: string;
}

export const CONFIG_DUMP = 'config.dump';
export const SPEC_DUMP = 'spec.dump';

function parseJson(name: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ArchiveError(`${name} is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ArchiveError(`${name} is not a JSON object`);
  return value as Record<string, unknown>;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Go's zero time means "not set". */
function time(value: unknown): string | undefined {
  const s = str(value);
  return s && !s.startsWith('0001-01-01') ? s : undefined;
}

type Loose<T> = { [K in keyof T]-?: T[K] | undefined };

function compact(o: Loose<ArchiveMeta>): ArchiveMeta {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as unknown as ArchiveMeta;
}

export function parseArchiveMeta(configDump: string | undefined, specDump: string | undefined): ArchiveMeta {
  if (configDump === undefined) throw new ArchiveError(`no ${CONFIG_DUMP} in the archive: not a container checkpoint`);
  if (specDump === undefined) throw new ArchiveError(`no ${SPEC_DUMP} in the archive: not a container checkpoint`);
  const config = parseJson(CONFIG_DUMP, configDump);
  const spec = parseJson(SPEC_DUMP, specDump);
  const rawAnnotations = spec.annotations;
  const a: Record<string, string> = {};
  if (rawAnnotations && typeof rawAnnotations === 'object') {
    for (const [k, v] of Object.entries(rawAnnotations as Record<string, unknown>)) if (typeof v === 'string') a[k] = v;
  }

  const common = {
    id: str(config.id),
    rootfsImage: str(config.rootfsImage),
    rootfsImageName: str(config.rootfsImageName),
    rootfsImageId: str(config.rootfsImageRef) ?? str(config.rootfsImageID),
    runtime: str(config.runtime),
    createdTime: time(config.createdTime),
    checkpointedTime: time(config.checkpointedTime),
  };

  let meta: Omit<Loose<ArchiveMeta>, 'pod' | 'namespace' | 'podUid'> & Partial<Loose<ArchiveMeta>>;
  switch (a['io.container.manager']) {
    case 'libpod':
      meta = { engine: 'Podman', container: str(config.name) ?? '', ...common };
      break;
    case 'cri-o': {
      let name: string | undefined;
      try {
        name = str((JSON.parse(a['io.kubernetes.cri-o.Metadata'] ?? '') as { name?: unknown }).name);
      } catch {
        throw new ArchiveError('spec.dump: io.kubernetes.cri-o.Metadata is missing or not JSON');
      }
      meta = {
        engine: 'CRI-O', container: name ?? '', ...common,
        pod: a['io.kubernetes.pod.name'], namespace: a['io.kubernetes.pod.namespace'], podUid: a['io.kubernetes.pod.uid'],
        createdTime: common.createdTime ?? a['io.kubernetes.cri-o.Created'],
      };
      break;
    }
    default:
      meta = {
        engine: 'containerd', container: a['io.kubernetes.cri.container-name'] ?? str(config.name) ?? '', ...common,
        pod: a['io.kubernetes.cri.sandbox-name'], namespace: a['io.kubernetes.cri.sandbox-namespace'],
        podUid: a['io.kubernetes.cri.sandbox-uid'],
      };
  }
  if (!meta.container) throw new ArchiveError(`cannot tell the container's name from ${CONFIG_DUMP}/${SPEC_DUMP} (${meta.engine})`);
  return compact({ pod: undefined, namespace: undefined, podUid: undefined, ...meta });
}
