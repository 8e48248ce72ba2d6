/**
 * kube/informer.ts against a fake KubeClient that pages its lists like kube-apiserver (limit,
 * continue) and lets the test drive the watch: objects are transformed page by page as they
 * arrive, the old contents serve reads until the relist is complete, a relist reports exactly
 * what changed (keeping unchanged values, by identity), a 410 ERROR event causes one, and
 * metadata-only informers ask for PartialObjectMetadata.
 */
import type { KubeClient, RequestOptions, WatchEventType, WatchOptions } from '../../kube/client.js';
import { Informer, type InformerOptions, type KubeObject } from '../../kube/informer.js';
import { silentLogger } from '../../runtime/log.js';

interface Sent { path: string; query: Record<string, unknown>; accept: string | undefined }

/** Lists `objects()` in pages of `limit`; one watch at a time, driven by `emit`. */
function fakeApi(objects: () => KubeObject[], onPage?: (page: number) => void) {
  const lists: Sent[] = [];
  const watches: Sent[] = [];
  let onEvent: ((type: WatchEventType, object: unknown) => void) | undefined;
  let fail: ((err: unknown) => void) | undefined;
  const client: KubeClient = {
    server: 'https://fake',
    async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
      if (method !== 'GET') throw new Error(`unexpected ${method}`);
      const query = options.query ?? {};
      lists.push({ path, query, accept: options.headers?.accept });
      const all = objects();
      const start = Number(query.continue ?? 0);
      const limit = Number(query.limit);
      onPage?.(lists.length);
      const end = Math.min(all.length, start + limit);
      return { items: all.slice(start, end), metadata: { resourceVersion: String(lists.length), ...(end < all.length ? { continue: String(end) } : {}) } } as T;
    },
    watch(path, query, handler, signal, options: WatchOptions = {}) {
      watches.push({ path, query, accept: options.headers?.accept });
      onEvent = handler;
      return new Promise((resolve, reject) => {
        fail = reject;
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
    },
  };
  return {
    client, lists, watches,
    /** Delivers a watch event; what the informer throws ends the watch, as in kube/client.ts. */
    emit(type: WatchEventType, object: unknown): void {
      try { onEvent?.(type, object); } catch (err) { fail?.(err); }
    },
  };
}

const obj = (name: string, version: string): KubeObject & { spec: { version: string } } => ({ metadata: { name, namespace: 'ns' }, spec: { version } });
const versionOf = (o: KubeObject): { version: string } => ({ version: (o as { spec: { version: string } }).spec.version });

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!condition()) throw new Error(`timed out waiting for ${what}`);
}

type Change = [string, string | undefined, string | undefined];

type Version = { version: string };

/** An informer over versions; `extra` overrides the defaults, an undefined value removes one. */
function informer(client: KubeClient, extra: { [K in keyof InformerOptions<Version>]?: InformerOptions<Version>[K] | undefined } = {}) {
  const changes: Change[] = [];
  const transformed: string[] = [];
  const options: Record<string, unknown> = {
    path: '/apis/apps/v1/replicasets', pageSize: 2,
    transform: (o: KubeObject) => { transformed.push(o.metadata?.name ?? ''); return versionOf(o); },
    equal: (a: Version, b: Version) => a.version === b.version,
    onChange: (key: string, now: Version | undefined, before: Version | undefined) => changes.push([key, now?.version, before?.version]),
    ...extra,
  };
  for (const [k, v] of Object.entries(options)) if (v === undefined) delete options[k];
  const inf = new Informer<Version>(client, options as unknown as InformerOptions<Version>, silentLogger());
  return { inf, changes, transformed };
}

describe('Informer lists page by page', () => {
  it('transforms each page before asking for the next, and relists in place: updates as pages arrive, removals when the last is in', async () => {
    let contents = [obj('a', '1'), obj('b', '1'), obj('c', '1'), obj('d', '1'), obj('e', '1')];
    const seenAtPage: { transformed: number; size: number; b: string | undefined }[] = [];
    const api = fakeApi(() => contents, () => seenAtPage.push({ transformed: t.transformed.length, size: t.inf.size, b: t.inf.get('ns/b')?.version }));
    const t = informer(api.client);
    const stop = new AbortController();
    const running = t.inf.run(stop.signal);
    await until(() => api.watches.length === 1, 'the first watch');

    // Pages of 2: three requests, each continuing where the last ended; page k's objects were
    // transformed before page k+1 was asked for.
    expect(api.lists.map((l) => [l.query.limit, l.query.continue])).toEqual([[2, undefined], [2, '2'], [2, '4']]);
    expect(seenAtPage.map((s) => s.transformed)).toEqual([0, 2, 4]);
    expect(t.inf.hasSynced).toBe(true);
    expect(t.inf.size).toBe(5);
    expect(api.watches[0]?.query.resourceVersion).toBe('3');

    // A relist (the watch expired) updates the one store as its pages arrive: b is new after the
    // first page, and d and e, which the relist no longer has, go only when the last page is in.
    contents = [obj('a', '1'), obj('b', '2'), obj('c', '1'), obj('f', '1')];
    seenAtPage.length = 0;
    t.changes.length = 0;
    api.emit('ERROR', { kind: 'Status', code: 410, message: 'too old resource version' });
    await until(() => api.watches.length === 2, 'the watch after the relist');
    expect(seenAtPage).toEqual([
      { transformed: 5, size: 5, b: '1' },
      { transformed: 7, size: 5, b: '2' },
    ]);
    expect(t.inf.get('ns/b')?.version).toBe('2');
    expect(t.inf.size).toBe(4);
    // Unchanged objects (a, c) report nothing; the rest once each.
    expect(t.changes).toEqual([['ns/b', '2', '1'], ['ns/f', '1', undefined], ['ns/d', undefined, '1'], ['ns/e', undefined, '1']]);
    stop.abort();
    await running;
  });

  it('takes `items: null` (an empty PartialObjectMetadataList, as kube-apiserver sends it) for an empty list', async () => {
    const api = fakeApi(() => []);
    const nullItems: KubeClient = { ...api.client, request: async <T>() => ({ items: null, metadata: { resourceVersion: '7' } }) as T };
    const t = informer(nullItems, { metadataOnly: true });
    const stop = new AbortController();
    const running = t.inf.run(stop.signal);
    await until(() => api.watches.length === 1, 'the watch');
    expect(t.inf.hasSynced).toBe(true);
    expect(t.inf.size).toBe(0);
    expect(api.watches[0]?.query.resourceVersion).toBe('7');
    stop.abort();
    await running;
  });

  it.each([
    { metadataOnly: false, limit: 100 },
    { metadataOnly: true, limit: 500 },
  ])('unless told otherwise, metadataOnly $metadataOnly lists pages of $limit', async ({ metadataOnly, limit }) => {
    const api = fakeApi(() => [obj('a', '1')]);
    const t = informer(api.client, { pageSize: undefined, metadataOnly });
    const stop = new AbortController();
    const running = t.inf.run(stop.signal);
    await until(() => api.watches.length === 1, 'the watch');
    expect(api.lists[0]?.query.limit).toBe(limit);
    stop.abort();
    await running;
  });
});

describe('a relist reports what changed', () => {
  const cases: { name: string; before: [string, string][]; after: [string, string][]; changes: Change[] }[] = [
    { name: 'nothing changed', before: [['a', '1'], ['b', '1']], after: [['a', '1'], ['b', '1']], changes: [] },
    { name: 'one updated', before: [['a', '1'], ['b', '1']], after: [['a', '1'], ['b', '2']], changes: [['ns/b', '2', '1']] },
    { name: 'one added', before: [['a', '1']], after: [['a', '1'], ['c', '1']], changes: [['ns/c', '1', undefined]] },
    { name: 'one removed', before: [['a', '1'], ['b', '1']], after: [['a', '1']], changes: [['ns/b', undefined, '1']] },
    { name: 'all removed', before: [['a', '1'], ['b', '1']], after: [], changes: [['ns/a', undefined, '1'], ['ns/b', undefined, '1']] },
    { name: 'updated, added and removed at once', before: [['a', '1'], ['b', '1'], ['c', '1']], after: [['a', '1'], ['b', '2'], ['d', '1']], changes: [['ns/b', '2', '1'], ['ns/d', '1', undefined], ['ns/c', undefined, '1']] },
  ];

  it.each(cases)('through the API, page by page: $name', async ({ before, after, changes }) => {
    let contents = before.map(([n, v]) => obj(n, v));
    const api = fakeApi(() => contents);
    const t = informer(api.client);
    const stop = new AbortController();
    const running = t.inf.run(stop.signal);
    await until(() => api.watches.length === 1, 'the first watch');
    const kept = new Map(before.map(([n]) => [n, t.inf.get(`ns/${n}`)]));
    const version = t.inf.version;
    t.changes.length = 0;

    contents = after.map(([n, v]) => obj(n, v));
    api.emit('ERROR', { kind: 'Status', code: 410, message: 'too old resource version' });
    await until(() => api.watches.length === 2, 'the watch after the relist');

    expect(t.changes).toEqual(changes);
    expect(t.inf.version - version).toBe(changes.length);
    expect([...t.inf.entries()].map(([k, v]) => [k, v.version])).toEqual(after.map(([n, v]) => [`ns/${n}`, v]));
    // An unchanged object keeps its stored value: one copy, the same identity.
    for (const [n, v] of after) if (before.some(([bn, bv]) => bn === n && bv === v)) expect(t.inf.get(`ns/${n}`)).toBe(kept.get(n));
    stop.abort();
    await running;
  });

  it.each(cases)('through replaceAll: $name', ({ before, after, changes }) => {
    const t = informer(fakeApi(() => []).client);
    t.inf.replaceAll(before.map(([n, v]) => obj(n, v)));
    t.changes.length = 0;
    t.inf.replaceAll(after.map(([n, v]) => obj(n, v)));
    expect(t.changes).toEqual(changes);
    expect(t.inf.size).toBe(after.length);
  });

  it('without `equal`, every object of a relist is a change', () => {
    const t = informer(fakeApi(() => []).client, { equal: undefined });
    t.inf.replaceAll([obj('a', '1')]);
    t.changes.length = 0;
    t.inf.replaceAll([obj('a', '1')]);
    expect(t.changes).toEqual([['ns/a', '1', '1']]);
  });
});

describe('metadata-only informers', () => {
  it.each([
    { metadataOnly: true, list: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json', watch: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json' },
    { metadataOnly: false, list: undefined, watch: undefined },
  ])('metadataOnly $metadataOnly: lists accept $list, watches $watch', async ({ metadataOnly, list, watch }) => {
    const api = fakeApi(() => [obj('a', '1'), obj('b', '1'), obj('c', '1')]);
    const t = informer(api.client, { metadataOnly });
    const stop = new AbortController();
    const running = t.inf.run(stop.signal);
    await until(() => api.watches.length === 1, 'the watch');
    expect(api.lists.map((l) => l.accept)).toEqual([list, list]);
    expect(api.watches.map((w) => w.accept)).toEqual([watch]);
    stop.abort();
    await running;
  });
});
