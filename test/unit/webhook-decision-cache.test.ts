import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import type { Pod } from '../../api/types.js';
import { silentLogger } from '../../runtime/log.js';
import { DecisionCache } from '../../webhook/decision-cache.js';
import { decide, decisionInputs, type ClusterView } from '../../webhook/decide.js';
import { createAdmissionHandler } from '../../webhook/handler.js';
import { HOUR, MINUTE, NOW, REGISTRY, ago, checkpoint, container, rsPod, view } from '../support/builders.js';

const EXCLUDED = new Set(['kube-system']);
const key = (pod: Pod): string => JSON.stringify(decisionInputs(pod));
const recorded = (JSON.parse(readFileSync('test/fixtures/admission-review-replicaset.json', 'utf8')) as { request: { object: Pod } }).request.object;

/** What the API server sends for the next replica of the same ReplicaSet. */
function sibling(pod: Pod, suffix: string): Pod {
  const next = structuredClone(pod);
  const rename = (name: unknown): unknown => (typeof name === 'string' && name.startsWith('kube-api-access-') ? `kube-api-access-${suffix}` : name);
  for (const v of (next.spec.volumes as { name: string }[] | undefined) ?? []) v.name = rename(v.name) as string;
  for (const c of next.spec.containers) for (const m of (c.volumeMounts as { name: string }[] | undefined) ?? []) m.name = rename(m.name) as string;
  (next.metadata as Record<string, unknown>).managedFields = [{ manager: 'kube-controller-manager', operation: 'Update', time: '2026-11-27T12:00:07Z' }];
  return next;
}

describe('decisionInputs: the cache key', () => {
  it('is the same for sibling pods of one ReplicaSet (token mount name, managedFields, volumes differ)', () => {
    expect(JSON.stringify(recorded)).not.toBe(JSON.stringify(sibling(recorded, 'zzzzz')));
    expect(key(sibling(recorded, 'zzzzz'))).toBe(key(recorded));
  });

  const base = rsPod([container('app', 'registry.example/web:1.4', { env: [{ name: 'A', value: '1' }] })]);
  it.each<[string, (pod: Pod) => void]>([
    ['an annotation', (p) => { p.metadata.annotations = { 'lazarus.dev/restore': 'disabled' }; }],
    ['a label', (p) => { p.metadata.labels = { ...p.metadata.labels, app: 'other' }; }],
    ['the owner', (p) => { p.metadata.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-other', uid: 'u2', controller: true }]; }],
    ['generateName', (p) => { p.metadata.generateName = 'other-'; }],
    ['name', (p) => { p.metadata.name = 'web-0'; }],
    ['an image', (p) => { p.spec.containers[0] = { ...container(), image: 'registry.example/web:1.5' }; }],
    ['an env value', (p) => { p.spec.containers[0] = container('app', 'registry.example/web:1.4', { env: [{ name: 'A', value: '2' }] }); }],
    ['a command', (p) => { p.spec.containers[0] = container('app', 'registry.example/web:1.4', { env: [{ name: 'A', value: '1' }], command: ['x'] }); }],
    ['a container name', (p) => { p.spec.containers[0] = container('main', 'registry.example/web:1.4', { env: [{ name: 'A', value: '1' }] }); }],
    ['a second container', (p) => { p.spec.containers.push(container('sidecar')); }],
    ['affinity', (p) => { p.spec.affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }] } } }; }],
    ['schedulerName', (p) => { p.spec.schedulerName = 'other'; }],
    ['imagePullSecrets', (p) => { p.spec.imagePullSecrets = [{ name: 'pull' }]; }],
    // Where the pod may run decides whether a restore can be placed (issue 13, point 2).
    ['nodeSelector', (p) => { p.spec.nodeSelector = { pool: 'gpu' }; }],
    ['tolerations', (p) => { p.spec.tolerations = [{ key: 'dedicated', operator: 'Exists' }]; }],
    ['nodeName', (p) => { p.spec.nodeName = 'node-1'; }],
  ])('changes with %s', (_what, change) => {
    const changed = structuredClone(base);
    change(changed);
    expect(key(changed)).not.toBe(key(base));
  });
});

describe('decide: validUntil', () => {
  const maxAge = 24 * HOUR;
  const at = (pod: Pod, v: ClusterView, now: number) => decide({ pod, namespace: 'shop', excludedNamespaces: EXCLUDED, defaultRegistry: REGISTRY, now }, v);

  it('a restore holds for a second: the warning gives the age to the second', () => {
    expect(at(rsPod(), view({ checkpoints: [checkpoint('web-app-1', { takenAt: ago(4 * MINUTE) })] }), NOW).validUntil).toBe(NOW + 1_000);
  });

  it('until the checkpoint it used ages past maxCheckpointAge, exactly', () => {
    const v = view({ checkpoints: [checkpoint('web-app-1', { takenAt: ago(maxAge - 300) })] });
    const d = at(rsPod(), v, NOW);
    expect(d).toMatchObject({ outcome: 'restored', validUntil: NOW + 301 });
    expect(at(rsPod(), v, NOW + 300).outcome).toBe('restored');
    expect(at(rsPod(), v, NOW + 301).outcome).toBe('cold');
  });

  it('a cold start for lack of a matching checkpoint holds until a fresh one (of another spec hash) ages out', () => {
    const v = view({ checkpoints: [checkpoint('web-app-1', { takenAt: ago(maxAge - 5_000), specHash: 'feedfacefeedface' })] });
    const d = at(rsPod(), v, NOW);
    expect(d).toMatchObject({ outcome: 'cold', validUntil: NOW + 5_001 });
    expect(at(rsPod(), v, NOW + 5_001).reason).not.toBe(d.reason);
  });

  it.each<[string, ClusterView, Pod]>([
    ['skipped', view({ checkpoints: [checkpoint('web-app-1')] }), rsPod([container()], 'web-7d9c', { 'lazarus.dev/restore': 'disabled' })],
    ['cold, every checkpoint too old', view({ checkpoints: [checkpoint('web-app-1', { takenAt: ago(maxAge + 1) })] }), rsPod()],
    ['cold, no checkpoint', view(), rsPod()],
  ])('%s: time alone never changes it', (_name, v, pod) => {
    expect(at(pod, v, NOW).validUntil).toBe(Infinity);
  });
});

describe('DecisionCache', () => {
  it('answers while valid, and not from validUntil on', () => {
    const cache = new DecisionCache<string>();
    cache.set('k', 1, 'answer', 100);
    expect(cache.get('k', 1, 99)).toBe('answer');
    expect(cache.get('k', 1, 100)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('gives no answer decided against another view, and drops it', () => {
    const cache = new DecisionCache<string>();
    cache.set('a', 1, 'x', Infinity);
    cache.set('b', 7, 'y', Infinity); // another namespace sees another generation
    expect(cache.get('a', 2, 0)).toBeUndefined();
    expect(cache.get('a', 1, 0)).toBeUndefined(); // back to the old generation: still gone
    expect(cache.get('b', 7, 0)).toBe('y');
    expect(cache.size).toBe(1);
  });

  it('holds at most its capacity, dropping the oldest entry', () => {
    const cache = new DecisionCache<number>(2);
    cache.set('a', 1, 1, Infinity);
    cache.set('b', 1, 2, Infinity);
    cache.set('c', 1, 3, Infinity);
    expect([cache.size, cache.get('a', 1, 0), cache.get('b', 1, 0), cache.get('c', 1, 0)]).toEqual([2, undefined, 2, 3]);
  });

  it('does not keep answers for oversized keys (memory stays bounded)', () => {
    const cache = new DecisionCache<number>(8, 100);
    cache.set('k'.repeat(101), 1, 1, Infinity);
    cache.set('k'.repeat(100), 1, 2, Infinity);
    expect([cache.size, cache.get('k'.repeat(101), 1, 0), cache.get('k'.repeat(100), 1, 0)]).toEqual([1, undefined, 2]);
  });

  it.each([0, -1, NaN])('refuses capacity %s', (capacity) => {
    expect(() => new DecisionCache(capacity)).toThrow(/capacity/);
  });
});

describe('admission handler: sibling pods reuse the answer', () => {
  const reviewOf = (pod: Pod, uid: string): string => JSON.stringify({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: { uid, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'shop', operation: 'CREATE', object: pod },
  });
  const withToken = (suffix: string): Pod => {
    const pod = rsPod([container('app', 'registry.example/web:1.4', { volumeMounts: [{ name: `kube-api-access-${suffix}`, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }] })]);
    pod.spec.volumes = [{ name: `kube-api-access-${suffix}`, projected: {} }];
    return pod;
  };

  function setup(options: { cached: boolean }) {
    const state = { generation: 0, now: NOW, view: view({ checkpoints: [checkpoint('web-app-1')] }), decided: 0 };
    const live: ClusterView = {
      policies: () => state.view.policies(),
      namespaceLabels: (ns) => state.view.namespaceLabels(ns),
      owners: { get: (kind, ns, name) => state.view.owners.get(kind, ns, name) },
      checkpoints: (ns, w, c) => state.view.checkpoints(ns, w, c),
      nodes: () => state.view.nodes(),
    };
    const registry = new Registry();
    const handle = createAdmissionHandler({
      view: live, ...(options.cached ? { generation: () => state.generation } : {}), notReady: () => undefined,
      excludedNamespaces: EXCLUDED, defaultRegistry: REGISTRY, clock: () => state.now, log: silentLogger(), registry,
      decideFn: (input, v) => { state.decided++; return decide(input, v); },
    });
    const reused = async (): Promise<number> => (await registry.getSingleMetric('lazarus_webhook_decisions_reused_total')?.get())?.values[0]?.value ?? 0;
    const outcomes = async (): Promise<Record<string, number>> => Object.fromEntries(((await registry.getSingleMetric('lazarus_webhook_admissions_total')?.get())?.values ?? [])
      .filter((v) => v.value > 0).map((v) => [String(v.labels.outcome), v.value]));
    return { state, handle, reused, outcomes };
  }

  it('decides once for a burst of siblings; each answer carries its own UID and is otherwise the same', async () => {
    const { state, handle, reused, outcomes } = setup({ cached: true });
    const first = handle(reviewOf(withToken('aaaaa'), 'uid-1'));
    const second = handle(reviewOf(withToken('bbbbb'), 'uid-2'));
    expect(state.decided).toBe(1);
    expect(JSON.parse(second.body).response.uid).toBe('uid-2');
    expect(second.body.split('uid-2')).toHaveLength(2);
    expect(second).toEqual({ status: 200, body: first.body.replace('uid-1', 'uid-2') });
    expect(JSON.parse(first.body).response.patchType).toBe('JSONPatch');
    expect(await reused()).toBe(1);
    expect(await outcomes()).toEqual({ restored: 2 });
  });

  it('decides again when the view changes: a new generation sees the checkpoint gone', () => {
    const { state, handle } = setup({ cached: true });
    expect(JSON.parse(handle(reviewOf(withToken('aaaaa'), 'uid-1')).body).response.patchType).toBe('JSONPatch');
    state.view = view();
    expect(JSON.parse(handle(reviewOf(withToken('bbbbb'), 'uid-2')).body).response.patchType).toBe('JSONPatch'); // same generation: reused
    state.generation++;
    const after = JSON.parse(handle(reviewOf(withToken('ccccc'), 'uid-3')).body).response;
    // Cold: the patch only stamps the spec hashes, no image swap.
    expect((JSON.parse(Buffer.from(after.patch as string, 'base64').toString()) as { path: string }[]).map((op) => op.path)).toEqual(['/metadata/annotations']);
    expect(after.warnings).toEqual([expect.stringMatching(/no checkpoint of Deployment web container app; starting cold/)]);
    expect(state.decided).toBe(2);
  });

  it('decides again once the answer expires: the age in the warning moves on', () => {
    const { state, handle } = setup({ cached: true });
    handle(reviewOf(withToken('aaaaa'), 'uid-1'));
    state.now = NOW + 999;
    handle(reviewOf(withToken('bbbbb'), 'uid-2'));
    expect(state.decided).toBe(1);
    state.now = NOW + 61_000;
    const warning = JSON.parse(handle(reviewOf(withToken('ccccc'), 'uid-3')).body).response.warnings[0];
    expect(warning).toMatch(/taken 5m ago/);
    expect(state.decided).toBe(2);
  });

  it('a pod that differs in anything the decision reads is decided on its own', () => {
    const { state, handle } = setup({ cached: true });
    handle(reviewOf(withToken('aaaaa'), 'uid-1'));
    const disabled = withToken('bbbbb');
    disabled.metadata.annotations = { 'lazarus.dev/restore': 'disabled' };
    expect(JSON.parse(handle(reviewOf(disabled, 'uid-2')).body).response).toEqual({ uid: 'uid-2', allowed: true });
    expect(state.decided).toBe(2);
  });

  it('without a generation every admission is decided', () => {
    const { state, handle } = setup({ cached: false });
    handle(reviewOf(withToken('aaaaa'), 'uid-1'));
    handle(reviewOf(withToken('bbbbb'), 'uid-2'));
    expect(state.decided).toBe(2);
  });
});
