/**
 * A list-then-watch cache that keeps only what decisions need. Each object is transformed
 * before it is stored (a ReplicaSet becomes its owner references, labels and annotations), so
 * 50,000 ReplicaSets cost megabytes, not gigabytes. Relists on 410 Gone and on stream errors,
 * with backoff; stops when its signal aborts.
 */
import type { Logger } from 'pino';
import type { KubeClient, RequestOptions, WatchOptions } from './client.js';
import { KubeError } from './client.js';
import { backoffDelay, type Backoff } from '../runtime/backoff.js';
import { sleep } from '../runtime/sleep.js';

const WATCH_BACKOFF: Backoff = { baseMs: 200, maxMs: 10_000 };

interface ListMeta { resourceVersion?: string; continue?: string }
interface Meta { name?: string; namespace?: string; resourceVersion?: string }
export interface KubeObject { metadata?: Meta }

export interface InformerOptions<T> {
  /** Collection path, e.g. `/apis/apps/v1/replicasets`. */
  path: string;
  transform: (object: KubeObject) => T;
  /** Called after every change, with the key `namespace/name` (or `name`). */
  onChange?: (key: string, now: T | undefined, before: T | undefined) => void;
  /**
   * Whether two transformed values are the same. An update whose value is the same as the
   * stored one (a ReplicaSet's status, a Node's heartbeat) then changes nothing: the stored
   * value stays and onChange is not called. Default: every update is a change.
   */
  equal?: (a: T, b: T) => boolean;
  labelSelector?: string;
  /** Objects per list page; default PAGE_SIZE.full, or PAGE_SIZE.metadataOnly. */
  pageSize?: number;
  /** The wait between failed watches; runtime/sleep.ts unless a test needs to see the delays. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /**
   * List and watch PartialObjectMetadata: only `metadata` arrives (no spec, no status), for
   * stores whose transform reads nothing else. A ReplicaSet's pod template never crosses the wire.
   */
  metadataOnly?: boolean;
}

/**
 * Objects per list page. A page is parsed whole, and whatever is still alive at the next
 * scavenge is promoted to the old generation, where it waits for a full collection: small pages
 * of full objects (Pods, Nodes with their images: 5–10 kB of JSON each) mostly die young, which
 * keeps the peak heap near what is stored. Metadata is a tenth of that: client-go's 500.
 */
export const PAGE_SIZE = { full: 100, metadataOnly: 500 } as const;

export function objectKey(meta: Meta | undefined): string {
  return meta?.namespace ? `${meta.namespace}/${meta.name ?? ''}` : (meta?.name ?? '');
}

export class Informer<T> {
  private items = new Map<string, T>();
  private synced = false;
  private resourceVersion = '';
  private changes = 0;

  private readonly client: KubeClient;

  constructor(
    client: KubeClient,
    private readonly options: InformerOptions<T>,
    private readonly log: Logger,
  ) {
    this.client = options.metadataOnly ? metadataOnly(client) : client;
  }

  get hasSynced(): boolean { return this.synced; }
  /** Counts changes (adds, real updates, deletes): an unchanged number means unchanged contents. */
  get version(): number { return this.changes; }
  get size(): number { return this.items.size; }
  get(key: string): T | undefined { return this.items.get(key); }
  values(): IterableIterator<T> { return this.items.values(); }
  entries(): IterableIterator<[string, T]> { return this.items.entries(); }

  /** Runs until `signal` aborts. Resolves the returned promise's `synced` when the first list is in. */
  run(signal: AbortSignal): Promise<void> {
    return this.loop(signal);
  }

  private async loop(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      // Only a watch that got somewhere resets the backoff: one refused at once, again and
      // again, must not be retried every 200 ms.
      let delivered = false;
      try {
        if (!this.resourceVersion) await this.list(signal);
        await this.client.watch(this.options.path, {
          resourceVersion: this.resourceVersion, allowWatchBookmarks: true,
          labelSelector: this.options.labelSelector, timeoutSeconds: 240,
        }, (type, object) => { delivered = true; this.apply(type, object as KubeObject); }, signal);
        failures = 0; // ended by its timeout: healthy
      } catch (err) {
        if (signal.aborted) return;
        if ((err instanceof KubeError && err.status === 410) || err instanceof ExpiredError) this.resourceVersion = '';
        else {
          if (delivered) failures = 0;
          this.log.warn({ err: String(err), path: this.options.path }, 'watch failed; retrying');
          await (this.options.sleep ?? sleep)(backoffDelay(++failures, WATCH_BACKOFF), signal);
        }
      }
    }
  }

  /**
   * A relist, transformed page by page and applied to the store as it arrives: memory holds one
   * page of raw objects and one copy of the store, never two. Readers meanwhile see each object
   * at its listed or its previous version, as they would while a watch catches up; objects the
   * list no longer has are removed when its last page is in. (Building the new store beside the
   * old one held 100,000 Pods twice during a relist: bench:memory.)
   */
  private async list(signal: AbortSignal): Promise<void> {
    const listed = new Set<string>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.client.request<{ items: KubeObject[] | null; metadata: ListMeta }>('GET', this.options.path, {
        query: { limit: this.options.pageSize ?? (this.options.metadataOnly ? PAGE_SIZE.metadataOnly : PAGE_SIZE.full), continue: cont, labelSelector: this.options.labelSelector }, signal,
      });
      // An empty PartialObjectMetadataList has `items: null` (Go's nil slice).
      for (const item of page.items ?? []) listed.add(this.upsert(item));
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion ?? '';
    } while (cont);
    this.removeAllBut(listed, rv);
  }

  /** Replaces the whole cache, as a relist does. Public so benchmarks can load a cache without a server. */
  replaceAll(objects: readonly object[], resourceVersion = ''): void {
    const listed = new Set<string>();
    for (const item of objects as readonly KubeObject[]) listed.add(this.upsert(item));
    this.removeAllBut(listed, resourceVersion);
  }

  /** Ends a relist: what it did not list is gone. */
  private removeAllBut(listed: ReadonlySet<string>, resourceVersion: string): void {
    // Deleting the entry a Map iteration is at is safe: iteration goes on with the next.
    for (const key of this.items.keys()) if (!listed.has(key)) this.remove(key);
    this.resourceVersion = resourceVersion;
    this.synced = true;
  }

  /**
   * Stores the object's transformed value and returns its key. A value equal to the stored one
   * keeps the stored one (one copy, and no change reported).
   */
  private upsert(object: KubeObject): string {
    const key = objectKey(object.metadata);
    const before = this.items.get(key);
    const now = this.options.transform(object);
    if (before !== undefined && this.options.equal?.(before, now)) return key;
    this.items.set(key, now);
    this.changes++;
    this.options.onChange?.(key, now, before);
    return key;
  }

  private remove(key: string): void {
    const before = this.items.get(key);
    if (!this.items.delete(key)) return;
    this.changes++;
    this.options.onChange?.(key, undefined, before);
  }

  private apply(type: string, object: KubeObject): void {
    if (type === 'ERROR') {
      const status = object as { code?: number; message?: string };
      throw status.code === 410 ? new ExpiredError(status.message ?? 'expired') : new Error(`watch error: ${status.message ?? 'unknown'}`);
    }
    if (object.metadata?.resourceVersion) this.resourceVersion = object.metadata.resourceVersion;
    if (type === 'BOOKMARK') return;
    if (type === 'DELETED') this.remove(objectKey(object.metadata));
    else this.upsert(object);
  }
}

class ExpiredError extends Error {}

// The server falls back to whole objects if it cannot send metadata only; transforms read `metadata` either way.
const METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';
const METADATA_WATCH = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

/** The same client, asking for PartialObjectMetadata(List) on every list and watch. */
function metadataOnly(client: KubeClient): KubeClient {
  return {
    server: client.server,
    request<R>(method: string, path: string, options: RequestOptions = {}): Promise<R> {
      return client.request<R>(method, path, { ...options, headers: { ...options.headers, accept: METADATA_LIST } });
    },
    watch(path, query, onEvent, signal, options: WatchOptions = {}) {
      return client.watch(path, query, onEvent, signal, { ...options, headers: { ...options.headers, accept: METADATA_WATCH } });
    },
  };
}
