/**
 * The agent's two loops: node facts onto its own Node, and checkpoint archives into pushed
 * images and Checkpoint objects. Order per archive: push → create the Checkpoint (then its
 * status Ready, status being a subresource) → remove the archive. Every step is idempotent (image
 * by digest, Checkpoint by a deterministic name), so a crash anywhere converges on restart.
 */
import { watch } from 'node:fs';
import { readdir, rename, stat, unlink } from 'node:fs/promises';
import { arch as osArch, release } from 'node:os';
import { join } from 'node:path';
import * as K from '../api/keys.js';
import { parsePairs } from '../api/compat.js';
import { effectivePolicy, selectPolicy } from '../api/policy.js';
import { podContainerSpecHash } from '../api/spec-hash.js';
import type { Checkpoint, Container, Node, ObjectMeta, Pod, RestorePolicy } from '../api/types.js';
import { resolveWorkload, type OwnerKind, type OwnerView } from '../api/workload.js';
import { KubeError, isConflict, isNotFound, type KubeClient } from '../kube/client.js';
import { backoffDelay } from '../runtime/backoff.js';
import type { Logger } from '../runtime/log.js';
import { ArchiveError } from './archive.js';
import type { ArchiveMeta } from './archive-meta.js';
import { buildAndPush, inspectArchive } from './build.js';
import { desiredNodeMetadata, nodeMetadataPatch, originFacts, type LocalFacts } from './node-facts.js';
import { ociArch, type HostFacts } from './oci-image.js';
import type { RestoreSupport } from './runtime-restore.js';
import { adoptionRefusal, checkpointName, checkpointObject, failedCheckpointName, imageRefFor, isArchiveName, parseKubeletArchiveName, podTag, sourcePodMismatch } from './plan.js';
import { RegistryClient, credentialsFor, parseImageRef, type RetryPolicy } from './registry.js';

const CHECKPOINTS = `/apis/${K.API_VERSION}`;
const MERGE = 'application/merge-patch+json';

export interface AgentOptions {
  kube: KubeClient;
  nodeName: string;
  checkpointDir: string;
  /** Lazarus' own namespace: push Secrets live here, and Failed Checkpoints of unreadable archives with no known namespace. */
  namespace: string;
  /** Used when no RestorePolicy names a registry. */
  defaultRegistry?: string;
  /** host[:port] of registries reached over plain HTTP. */
  insecureRegistries: ReadonlySet<string>;
  log: Logger;
  now: () => Date;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readFacts: () => Promise<LocalFacts>;
  /** Whether the runtime the Node reports (`cri-o://1.33.2`) restores as configured on this host. */
  runtimeSupport: (containerRuntimeVersion: string | undefined) => Promise<RestoreSupport>;
  hostFacts: (local: LocalFacts, runtime: string | undefined) => Promise<HostFacts>;
  /** An archive younger than this may still be being written. */
  settleMs: number;
  /**
   * Archives turned into images at once (default 1). A drain checkpoints several pods of a node
   * together and holds each eviction until its Checkpoint is Ready: one at a time would make the
   * last pod wait for every push before it.
   */
  parallelArchives?: number;
  scanIntervalMs: number;
  factsIntervalMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  registryRetry?: RetryPolicy;
  /** Pods of this node remembered after deletion (a drain evicts right after checkpointing). */
  pods?: { get(namespace: string, name: string, uid?: string): Pod | undefined };
  /** Called once per archive attempt (metrics). */
  onOutcome?: (outcome: Outcome, seconds: number) => void;
}

export type Outcome = 'ready' | 'failed' | 'retry' | 'skipped';

/** Starts `work` on `items` in order, at most `limit` running at once; none starts once `signal` aborts. */
export async function inOrderBounded<T>(items: readonly T[], limit: number, signal: AbortSignal | undefined, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length && !signal?.aborted) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
}

interface Pending { attempts: number; notBefore: number }

/** Transient trouble that keeps the archive for a later attempt (registry or API server down). */
class Transient extends Error {}

/** The Role in manifests/base/rbac.yaml that lists the Secrets an agent may read, and its one name. */
const PUSH_SECRET_ROLE = 'lazarus-agent-push-secret';
const DEFAULT_PUSH_SECRET = 'lazarus-registry-push';

export class Agent {
  private facts: LocalFacts | undefined;
  private node: Node | undefined;
  private readonly pending = new Map<string, Pending>();
  private wake: (() => void) | undefined;
  /** Earliest time (ms) an archive skipped in the last scan becomes due (settled or backed off). */
  private nextDue = Infinity;

  constructor(private readonly o: AgentOptions) {}

  /** Undefined once node facts have been published at least once. */
  notReadyReason(): string | undefined {
    return this.facts ? undefined : 'node facts not published yet';
  }

  // ---- node facts --------------------------------------------------------------------------

  async refreshFacts(): Promise<boolean> {
    const facts = await this.o.readFacts();
    const node = await this.o.kube.request<Node>('GET', `/api/v1/nodes/${this.o.nodeName}`);
    const runtime = await this.o.runtimeSupport(node.status?.nodeInfo?.containerRuntimeVersion);
    const desired = desiredNodeMetadata(facts, runtime, node.status?.nodeInfo?.containerRuntimeVersion);
    const patch = nodeMetadataPatch(node, desired);
    this.node = patch
      ? await this.o.kube.request<Node>('PATCH', `/api/v1/nodes/${this.o.nodeName}`, { body: patch, contentType: MERGE })
      : node;
    this.facts = facts;
    if (patch) this.o.log.info({ patch: patch.metadata }, 'node facts published');
    return patch !== undefined;
  }

  // ---- archives ----------------------------------------------------------------------------

  /** One pass over the directory, archives oldest first, `parallelArchives` at a time (bounded CPU and memory). */
  async scanOnce(signal?: AbortSignal): Promise<Map<string, Outcome>> {
    const outcomes = new Map<string, Outcome>();
    let names: string[];
    try {
      names = (await readdir(this.o.checkpointDir)).filter(isArchiveName);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return outcomes;
      throw err;
    }
    const files = (await Promise.all(names.map(async (n) => ({ n, s: await stat(join(this.o.checkpointDir, n)).catch(() => undefined) }))))
      .filter((f) => f.s?.isFile())
      .sort((a, b) => (a.s?.mtimeMs ?? 0) - (b.s?.mtimeMs ?? 0));
    this.nextDue = Infinity;
    const due: { n: string; mtime: Date }[] = [];
    for (const { n, s } of files) {
      const now = this.o.now().getTime();
      if (!s) continue;
      if (now - s.mtimeMs < this.o.settleMs) {
        this.nextDue = Math.min(this.nextDue, s.mtimeMs + this.o.settleMs);
        outcomes.set(n, 'skipped');
        continue;
      }
      const p = this.pending.get(n);
      if (p && p.notBefore > now) {
        this.nextDue = Math.min(this.nextDue, p.notBefore);
        outcomes.set(n, 'skipped');
        continue;
      }
      due.push({ n, mtime: s.mtime });
    }
    await inOrderBounded(due, this.o.parallelArchives ?? 1, signal, async ({ n, mtime }) => {
      outcomes.set(n, await this.processArchive(n, mtime, signal));
    });
    for (const k of this.pending.keys()) if (!names.includes(k)) this.pending.delete(k);
    return outcomes;
  }

  async processArchive(file: string, mtime: Date, signal?: AbortSignal): Promise<Outcome> {
    const path = join(this.o.checkpointDir, file);
    const log = this.o.log.child({ archive: file });
    const started = this.o.now().getTime();
    const outcome = await this.attempt(file, path, mtime, log, signal);
    this.o.onOutcome?.(outcome, (this.o.now().getTime() - started) / 1000);
    return outcome;
  }

  private async attempt(file: string, path: string, mtime: Date, log: Logger, signal?: AbortSignal): Promise<Outcome> {
    try {
      const outcome = await this.build(file, path, mtime, signal);
      this.pending.delete(file);
      return outcome;
    } catch (err) {
      if (signal?.aborted) throw err;
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof ArchiveError || err instanceof Unusable) {
        log.warn({ reason: message }, 'archive failed');
        try {
          await this.recordFailed(file, message, err instanceof Unusable ? err.where : undefined, mtime);
          await rename(path, `${path}.failed`);
          this.pending.delete(file);
          return 'failed';
        } catch (recordErr) {
          log.error({ err: recordErr instanceof Error ? recordErr.message : String(recordErr) }, 'cannot record the failure; will retry');
        }
      } else {
        log.warn({ err: message }, 'archive kept for a retry');
      }
      const attempts = (this.pending.get(file)?.attempts ?? 0) + 1;
      const notBefore = this.o.now().getTime() + backoffDelay(attempts, { baseMs: this.o.retryBaseMs, maxMs: this.o.retryMaxMs });
      this.pending.set(file, { attempts, notBefore });
      this.nextDue = Math.min(this.nextDue, notBefore);
      return 'retry';
    }
  }

  private async build(file: string, path: string, mtime: Date, signal?: AbortSignal): Promise<Outcome> {
    const scanned = await inspectArchive(path, signal);
    const { meta } = scanned;
    if (!meta.namespace || !meta.pod) throw new Unusable(`a ${meta.engine} archive names no Kubernetes pod; use \`lazarus agent build\` for it`);
    const where = { namespace: meta.namespace, pod: meta.pod, container: meta.container };
    const pod = await this.sourcePod(meta, where);
    const container = pod.spec.containers.find((c: Container) => c.name === meta.container);
    if (!container) throw new Unusable(`pod ${meta.namespace}/${meta.pod} has no container "${meta.container}"`, where);
    const originalImage = parsePairs(pod.metadata.annotations?.[K.ORIGINAL_IMAGES]).get(meta.container);
    const { hash, source: hashSource } = podContainerSpecHash(pod, container);
    const sourcePodUid = pod.metadata.uid ?? meta.podUid;
    const tag = podTag({ name: meta.pod, ...(sourcePodUid ? { uid: sourcePodUid } : {}) });

    const owners = await this.owners(pod.metadata, meta.namespace);
    const resolved = resolveWorkload(pod, meta.pod, meta.namespace, { get: (kind, ns, name) => owners.get(`${kind}/${ns}/${name}`) });
    const nsObj = await this.get<{ metadata: ObjectMeta }>(`/api/v1/namespaces/${meta.namespace}`);
    const policies = (await this.o.kube.request<{ items?: RestorePolicy[] }>('GET', `${CHECKPOINTS}/restorepolicies`).catch((err: unknown) => {
      if (isNotFound(err)) return { items: [] };
      throw err;
    })).items ?? [];
    const policy = selectPolicy(policies.map(effectivePolicy), { namespaceLabels: nsObj?.metadata.labels, workloadLabels: resolved.labels });
    const registry = policy.spec.checkpoint.registry || this.o.defaultRegistry;
    if (!registry) throw new Transient('no registry to push to: set spec.checkpoint.registry in a RestorePolicy or --registry');

    const takenAt = meta.checkpointedTime ? new Date(meta.checkpointedTime).toISOString() : mtime.toISOString();
    const ref = parseImageRef(imageRefFor(registry, meta.namespace, resolved.workload, meta.container, takenAt, tag));
    const credentials = await this.credentials(policy.spec.checkpoint.pushSecret, ref.registry);
    const client = new RegistryClient(ref, {
      insecure: this.o.insecureRegistries.has(ref.registry), sleep: this.o.sleep,
      ...(credentials ? { credentials } : {}), ...(signal ? { signal } : {}),
      ...(this.o.registryRetry ? { retry: this.o.registryRetry } : {}),
    });
    const local = this.facts ?? await this.o.readFacts();
    let result;
    try {
      result = await buildAndPush({ archive: path, client, host: await this.o.hostFacts(local, meta.runtime), scanned, ...(ref.tag ? { tag: ref.tag } : {}), ...(signal ? { signal } : {}) });
    } catch (err) {
      if (err instanceof ArchiveError) throw err;
      throw new Transient(`push to ${ref.registry}/${ref.repository}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      client.close();
    }

    const desired = checkpointObject({
      name: checkpointName(resolved.workload, meta.container, takenAt, tag),
      namespace: meta.namespace,
      ...(sourcePodUid ? { sourcePodUid } : {}),
      workload: resolved.workload,
      container: meta.container,
      sourcePod: meta.pod,
      image: result.image,
      baseImage: originalImage ?? container.image ?? meta.rootfsImage ?? meta.rootfsImageName ?? '',
      ...(meta.rootfsImageId ? { baseImageID: meta.rootfsImageId } : {}),
      specHash: hash,
      takenAt,
      origin: originFacts(this.o.nodeName, this.node, local, { architecture: ociArch(osArch()), kernelVersion: release() }),
    });
    await this.upsertCheckpoint(desired, { phase: 'Ready' });
    await unlink(path);
    this.o.log.info({ archive: file, image: result.image, checkpoint: `${meta.namespace}/${desired.metadata.name ?? ''}`, uploaded: result.layer.uploaded, specHashFrom: hashSource }, 'checkpoint ready');
    return 'ready';
  }

  /**
   * The pod the archive was taken from: the live pod of that name, else the one remembered after
   * its deletion, whichever is the archive's own (same UID). A pod recreated under the same name
   * is not: its spec hash would stamp the old pod's memory as the new version.
   */
  private async sourcePod(meta: ArchiveMeta, where: { namespace: string; pod: string; container: string }): Promise<Pod> {
    const { namespace, pod } = where;
    if (meta.podUid === undefined) this.o.log.warn({ pod: `${namespace}/${pod}` }, 'the archive carries no pod UID: the pod is matched by name and creation time only');
    const live = await this.get<Pod>(`/api/v1/namespaces/${namespace}/pods/${pod}`);
    const remembered = this.o.pods?.get(namespace, pod, meta.podUid);
    const candidates = [live, remembered].filter((p): p is Pod => p !== undefined);
    if (candidates.length === 0) throw new Unusable(`pod ${namespace}/${pod} no longer exists: its spec hash cannot be computed`, where);
    const own = candidates.find((p) => sourcePodMismatch(meta, p) === undefined);
    if (own) return own;
    throw new Unusable(sourcePodMismatch(meta, candidates[0] as Pod) ?? 'unreachable', where);
  }

  /**
   * Create, or adopt the one a previous run of this archive created (same source pod and UID: its
   * image was pushed before it was created); then set the status if it differs. Never changes a
   * Checkpoint's spec: that is fixed at creation, and a name held by another pod's is refused.
   */
  private async upsertCheckpoint(desired: Checkpoint, status: { phase: 'Ready' | 'Failed'; reason?: string }): Promise<void> {
    const ns = desired.metadata.namespace ?? '';
    const name = desired.metadata.name ?? '';
    const base = `${CHECKPOINTS}/namespaces/${ns}/checkpoints`;
    let current: Checkpoint;
    try {
      current = await this.o.kube.request<Checkpoint>('POST', base, { body: desired });
    } catch (err) {
      if (!isConflict(err)) throw err;
      current = await this.o.kube.request<Checkpoint>('GET', `${base}/${name}`);
      const refusal = adoptionRefusal(current, desired);
      if (refusal) throw new NameTaken(refusal, { namespace: ns, pod: desired.spec.sourcePod, container: desired.spec.container });
    }
    if (current.status?.phase !== status.phase || current.status.reason !== status.reason) {
      await this.o.kube.request('PATCH', `${base}/${name}/status`, { body: { status: { ...status, restores: current.status?.restores ?? 0 } }, contentType: MERGE });
    }
  }

  private async recordFailed(file: string, reason: string, where: { namespace: string; pod: string; container: string } | undefined, mtime: Date): Promise<void> {
    let target = where;
    if (!target) {
      for (const c of parseKubeletArchiveName(file)) {
        if (await this.get(`/api/v1/namespaces/${c.namespace}`)) { target = c; break; }
      }
    }
    const local = this.facts ?? await this.o.readFacts();
    const obj = checkpointObject({
      name: failedCheckpointName(file),
      namespace: target?.namespace ?? this.o.namespace,
      workload: { kind: 'Pod', name: target?.pod ?? 'unknown' },
      container: target?.container ?? 'unknown',
      sourcePod: target?.pod ?? file,
      image: '',
      baseImage: '',
      specHash: '',
      takenAt: mtime.toISOString(),
      origin: originFacts(this.o.nodeName, this.node, local, { architecture: ociArch(osArch()), kernelVersion: release() }),
    });
    await this.upsertCheckpoint(obj, { phase: 'Failed', reason: `${file}: ${reason}` });
  }

  private async get<T>(path: string): Promise<T | undefined> {
    try {
      return await this.o.kube.request<T>('GET', path);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The pod's controller chain (ReplicaSet → Deployment, StatefulSet) for resolveWorkload. */
  private async owners(meta: ObjectMeta, ns: string): Promise<Map<string, OwnerView>> {
    const out = new Map<string, OwnerView>();
    const paths: Record<OwnerKind, string> = { ReplicaSet: 'replicasets', Deployment: 'deployments', StatefulSet: 'statefulsets' };
    let refs = meta.ownerReferences;
    for (let depth = 0; depth < 2 && refs; depth++) {
      const ref = refs.find((r) => r.controller) ?? refs[0];
      if (!ref || !(ref.kind in paths) || !ref.apiVersion.startsWith('apps/')) break;
      const kind = ref.kind as OwnerKind;
      const obj = await this.get<{ metadata: ObjectMeta }>(`/apis/apps/v1/namespaces/${ns}/${paths[kind]}/${ref.name}`);
      if (!obj) break;
      out.set(`${kind}/${ns}/${ref.name}`, {
        ...(obj.metadata.labels ? { labels: obj.metadata.labels } : {}),
        ...(obj.metadata.annotations ? { annotations: obj.metadata.annotations } : {}),
        ...(obj.metadata.ownerReferences ? { ownerReferences: obj.metadata.ownerReferences } : {}),
      });
      refs = obj.metadata.ownerReferences;
    }
    return out;
  }

  private async credentials(secretName: string, registry: string): Promise<ReturnType<typeof credentialsFor>> {
    if (!secretName) return undefined;
    const secret = await this.get<{ data?: Record<string, string> }>(`/api/v1/namespaces/${this.o.namespace}/secrets/${secretName}`).catch((err: unknown) => {
      // The agents may read exactly one Secret by name; any other name is a 403 that needs a clear way out.
      if (err instanceof KubeError && err.status === 403) {
        throw new Transient(`push secret ${this.o.namespace}/${secretName}: forbidden; the agent may read only the Secrets named in the Role ${PUSH_SECRET_ROLE} (${DEFAULT_PUSH_SECRET} by default): add ${secretName} to its resourceNames, or name the Secret ${DEFAULT_PUSH_SECRET}`);
      }
      throw err;
    });
    const data = secret?.data?.['.dockerconfigjson'];
    if (!data) throw new Transient(`push secret ${this.o.namespace}/${secretName} is missing or has no .dockerconfigjson`);
    return credentialsFor(Buffer.from(data, 'base64').toString('utf8'), registry);
  }

  // ---- loops -------------------------------------------------------------------------------

  async run(signal: AbortSignal): Promise<void> {
    const watcher = (() => {
      try {
        return watch(this.o.checkpointDir, () => this.wake?.());
      } catch {
        return undefined; // directory absent yet: polling covers it
      }
    })();
    const factsLoop = (async () => {
      while (!signal.aborted) {
        try { await this.refreshFacts(); } catch (err) { this.o.log.error({ err: err instanceof Error ? err.message : String(err) }, 'node facts refresh failed'); }
        await this.o.sleep(this.facts ? this.o.factsIntervalMs : this.o.retryBaseMs, signal);
      }
    })();
    try {
      while (!signal.aborted) {
        try { await this.scanOnce(signal); } catch (err) {
          if (!signal.aborted) this.o.log.error({ err: err instanceof Error ? err.message : String(err) }, 'checkpoint directory scan failed');
        }
        await new Promise<void>((resolve) => {
          const done = (): void => { this.wake = undefined; signal.removeEventListener('abort', done); resolve(); };
          this.wake = done;
          signal.addEventListener('abort', done, { once: true });
          const untilDue = Math.max(10, this.nextDue - this.o.now().getTime());
          void this.o.sleep(Math.min(this.o.scanIntervalMs, untilDue), signal).then(done);
        });
      }
    } finally {
      watcher?.close();
      await factsLoop;
    }
  }
}

/** Readable, but can never become a Checkpoint as is (no pod, no registry): recorded as Failed. */
class Unusable extends Error {
  constructor(message: string, readonly where?: { namespace: string; pod: string; container: string }) {
    super(message);
  }
}

/** The Checkpoint's name is held by another source pod's: never overwritten, the archive is recorded as Failed. */
class NameTaken extends Unusable {}
