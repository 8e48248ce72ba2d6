import { effectivePolicy } from '../../../api/policy.js';
import type { Checkpoint, CheckpointStatus, EffectivePolicy } from '../../../api/types.js';
import type { OwnerKind, OwnerView } from '../../../api/workload.js';
import { Controller, RETENTION_AFTER_CHANGE_MS, type ControllerConfig, type ControllerView } from '../../../controller/controller.js';
import type { ControllerIO, EventSpec, StatusChange } from '../../../controller/kube-io.js';
import { createControllerMetrics } from '../../../controller/metrics.js';
import type { PodView } from '../../../controller/targets.js';
import { subjectKey, type AnnotatedWorkload, type DemandSubject } from '../../../controller/demand.js';
import { KubeError } from '../../../kube/client.js';
import { silentLogger } from '../../../runtime/log.js';
import { createRegistry } from '../../../runtime/metrics.js';
import { FakeClock, settle } from '../../support/fake-clock.js';
import { podView } from '../../../controller/cache.js';
import { explainPod, formatExplanation } from '../../../explain/explain.js';
import { checkpoint as builtCheckpoint, node as builtNode, rsPod, view as builtView, NOW as BUILT_NOW } from '../../support/builders.js';

const T0 = Date.parse('2026-11-27T12:00:00Z');
const MIN = 60_000;

class FakeIO implements ControllerIO {
  calls: string[] = [];
  events: EventSpec[] = [];
  deletedPods: string[] = [];
  deletedCheckpoints: string[] = [];
  fail: ((node: string) => number | undefined) = () => undefined;
  /** A fake kubelet's latency: each checkpoint takes this long on the fake clock (none when unset). */
  latency: { ms: number; sleep: (ms: number) => Promise<void> } | undefined;
  /** Checkpoints in flight per node now, the most ever seen, and when each one ended (fake clock). */
  inFlight = new Map<string, number>();
  maxInFlight = new Map<string, number>();
  constructor(readonly store: Map<string, Checkpoint>) {}
  async checkpoint(node: string, ns: string, pod: string, container: string): Promise<string[]> {
    this.calls.push(`${node}:${ns}/${pod}/${container}`);
    const now = (this.inFlight.get(node) ?? 0) + 1;
    this.inFlight.set(node, now);
    this.maxInFlight.set(node, Math.max(now, this.maxInFlight.get(node) ?? 0));
    try {
      if (this.latency) await this.latency.sleep(this.latency.ms);
    } finally {
      this.inFlight.set(node, (this.inFlight.get(node) ?? 1) - 1);
    }
    const code = this.fail(node);
    if (code) throw new KubeError(code, '', `POST checkpoint: ${code} checkpointing failed: runtime error`);
    return [`/var/lib/kubelet/checkpoints/checkpoint-${pod}_${ns}-${container}.tar`];
  }
  async event(e: EventSpec): Promise<void> { this.events.push(e); }
  async updateCheckpointStatus(ns: string, name: string, change: StatusChange): Promise<boolean> {
    const cp = this.store.get(`${ns}/${name}`);
    if (!cp) throw new KubeError(404, 'NotFound', 'not found');
    const status = change(structuredClone(cp));
    if (!status) return false;
    this.store.set(`${ns}/${name}`, { ...cp, status });
    return true;
  }
  async deleteCheckpoint(ns: string, name: string): Promise<void> { this.deletedCheckpoints.push(name); this.store.delete(`${ns}/${name}`); }
  async deletePod(ns: string, name: string): Promise<void> { this.deletedPods.push(`${ns}/${name}`); }
  /** Subject key → its annotations (what the API server holds); answer() tests, then replaces. */
  annotations = new Map<string, Record<string, string>>();
  answers: string[] = [];
  async answer(subject: DemandSubject, expected: string, value: string): Promise<boolean> {
    const a = this.annotations.get(subjectKey(subject));
    if (a?.['lazarus.dev/checkpoint'] !== expected) return false;
    a['lazarus.dev/checkpoint'] = value;
    this.answers.push(`${subjectKey(subject)}: ${value}`);
    return true;
  }
}

function pod(name: string, node: string, extra: Partial<PodView> = {}): PodView {
  return {
    namespace: 'shop', name, uid: `uid-${name}`, nodeName: node, phase: 'Running', startTime: new Date(T0).toISOString(), deleting: false,
    labels: { app: 'web', 'pod-template-hash': '7d9c' },
    annotations: { 'lazarus.dev/restore': 'enabled' },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9c', controller: true }],
    containers: ['app'],
    containerStatuses: [{ name: 'app', state: { running: { startedAt: new Date(T0).toISOString() } } }],
    ...extra,
  };
}

function checkpoint(name: string, takenAt: number, status: CheckpointStatus = { phase: 'Ready' }, sourcePod = 'old'): Checkpoint {
  return {
    metadata: { name, namespace: 'shop' },
    spec: {
      workload: { kind: 'Deployment', name: 'web' }, container: 'app', sourcePod, image: 'img', baseImage: 'b', specHash: '0123456789abcdef',
      takenAt: new Date(takenAt).toISOString(),
      origin: { node: 'n1', architecture: 'amd64', kernelVersion: '6.8', criuVersion: 40101, runtime: 'cri-o://1.33.2', cpuFlags: [] },
    },
    status,
  };
}

const CONFIG: ControllerConfig = {
  maxConcurrent: 4, tickMs: 1000, retentionIntervalMs: MIN, failedRetentionMs: 24 * 60 * MIN,
  settleMs: 10_000, earlyExitMs: 10_000, unavailableMs: 5 * MIN, jitterFactor: 0, backoff: { baseMs: 10_000, maxMs: 5 * MIN },
};

const versions = new WeakMap<Map<string, Checkpoint>, { text: string; version: number }>();
/** A version that changes whenever the store's contents do, as an informer's would. */
function storeVersion(store: Map<string, Checkpoint>): number {
  const text = JSON.stringify([...store.entries()]);
  const last = versions.get(store);
  if (last?.text === text) return last.version;
  const version = (last?.version ?? 0) + 1;
  versions.set(store, { text, version });
  return version;
}

function setup(policySpec: NonNullable<Parameters<typeof effectivePolicy>[0]['spec']> = { checkpoint: { interval: '10m', retain: 2, maxParallelPerNode: 1 } }, config: Partial<ControllerConfig> = {}) {
  const clock = new FakeClock(T0);
  const pods: PodView[] = [];
  const nodes = [{ name: 'n1', unschedulable: false }, { name: 'n2', unschedulable: false }];
  const store = new Map<string, Checkpoint>();
  const policies: EffectivePolicy[] = [effectivePolicy({ metadata: { name: 'p' }, spec: policySpec })];
  const owners: Record<string, OwnerView> = {
    'ReplicaSet/shop/web-7d9c': { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] },
    'Deployment/shop/web': { labels: { app: 'web' } },
  };
  const workloads: AnnotatedWorkload[] = [];
  const view: ControllerView = {
    // The fake store's version: every read of a changed map is a new version.
    pods: () => pods, checkpoints: () => store.values(), checkpoint: (ns, name) => store.get(`${ns}/${name}`), checkpointsVersion: () => storeVersion(store),
    nodes: () => nodes, notSynced: () => undefined, annotatedWorkloads: () => workloads, policies: () => policies, namespaceLabels: () => ({}),
    owners: { get: (kind: OwnerKind, ns: string, name: string) => owners[`${kind}/${ns}/${name}`] },
  };
  const io = new FakeIO(store);
  const registry = createRegistry('test', false);
  const metrics = createControllerMetrics(registry, () => store.values(), clock.now);
  const controller = new Controller({ view, io, now: clock.now, sleep: clock.sleep, log: silentLogger(), metrics, config: { ...CONFIG, ...config }, jitter: () => 0 });
  const signal = new AbortController().signal;
  const tick = async (): Promise<void> => { await controller.tick(signal); await controller.idle(); };
  const metric = async (name: string): Promise<number> => {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
  };
  /** The API server and the caches share annotation maps, so answers show up at once. */
  const annotate = (p: PodView, value: string): void => {
    p.annotations = { ...p.annotations, 'lazarus.dev/checkpoint': value };
    io.annotations.set(subjectKey({ kind: 'Pod', namespace: p.namespace, name: p.name }), p.annotations);
  };
  const annotateWorkload = (kind: AnnotatedWorkload['kind'], name: string, value: string, restore?: string): void => {
    const key = `${kind}/shop/${name}`;
    const owner = owners[key] ?? {};
    owner.annotations = { ...owner.annotations, 'lazarus.dev/checkpoint': value, ...(restore ? { 'lazarus.dev/restore': restore } : {}) };
    owners[key] = owner;
    io.annotations.set(key, owner.annotations);
    if (!workloads.some((w) => w.kind === kind && w.name === name)) workloads.push({ kind, namespace: 'shop', name, view: owner });
  };
  return { clock, pods, nodes, store, io, controller, tick, metric, registry, view, metrics, annotate, annotateWorkload, owners };
}

describe('Controller: checkpoints', () => {
  it('periodic: nothing before the interval, then one per due container, one per node', async () => {
    const s = setup();
    s.pods.push(pod('a', 'n1'), pod('b', 'n1'), pod('c', 'n2'), pod('off', 'n2', { annotations: { 'lazarus.dev/restore': 'disabled' } }));
    await s.tick();
    expect(s.io.calls).toEqual([]);
    await s.clock.advance(10 * MIN, MIN);
    await s.tick();
    expect(s.io.calls.sort()).toEqual(['n1:shop/a/app', 'n2:shop/c/app']);
    await s.tick();
    expect(s.io.calls.slice(2)).toEqual(['n1:shop/b/app']);
    await s.tick();
    expect(s.io.calls).toHaveLength(3);
    expect(s.io.events.filter((e) => e.reason === 'CheckpointTaken')).toHaveLength(3);
    expect(await s.metric('lazarus_controller_checkpoints_taken_total')).toBe(3);
  });

  it('a Checkpoint object counts as the last checkpoint (a new leader does not checkpoint again)', async () => {
    const s = setup();
    s.pods.push(pod('a', 'n1'));
    await s.clock.advance(10 * MIN, MIN);
    s.store.set('shop/c1', checkpoint('c1', s.clock.now() - MIN, { phase: 'Ready' }, 'a'));
    await s.tick();
    expect(s.io.calls).toEqual([]);
  });

  it('a 500 from the kubelet becomes a Warning Event and a metric, then backoff — no tight loop', async () => {
    const s = setup();
    s.pods.push(pod('a', 'n1'));
    s.io.fail = () => 500;
    await s.clock.advance(10 * MIN, MIN);
    await s.tick();
    for (let i = 0; i < 9; i++) { await s.clock.advance(1000, 1000); await s.tick(); }
    expect(s.io.calls).toHaveLength(1);
    const failed = s.io.events.filter((e) => e.reason === 'CheckpointFailed');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ type: 'Warning', regarding: { kind: 'Pod', name: 'a' } });
    expect(failed[0]?.message).toContain('500');
    expect(failed[0]?.message).toContain('retrying in 10s');
    await s.clock.advance(1000, 1000);
    await s.tick();
    expect(s.io.calls).toHaveLength(2);
    await s.clock.advance(19_000, 1000);
    await s.tick();
    expect(s.io.calls).toHaveLength(2);
    await s.clock.advance(1000, 1000);
    await s.tick();
    expect(s.io.calls).toHaveLength(3);
    expect(await s.metric('lazarus_controller_checkpoints_failed_total')).toBe(3);
  });

  it.each([
    { code: 404, says: 'is the ContainerCheckpoint feature gate on in the kubelet?' },
    { code: 500, says: 'checkpointing failed: runtime error' },
  ])('kubelet $code: the Event says what to do', async ({ code, says }) => {
    const s = setup();
    s.pods.push(pod('a', 'n1'));
    s.io.fail = () => code;
    await s.clock.advance(10 * MIN, MIN);
    await s.tick();
    expect(s.io.events.find((e) => e.reason === 'CheckpointFailed')?.message).toContain(says);
    expect(await s.metric('lazarus_controller_checkpoints_failed_total')).toBe(1);
  });

  it('cordon with onDrain: checkpoints at once, without an interval, once per cordon', async () => {
    const s = setup({ checkpoint: { interval: '', onDrain: true } });
    s.pods.push(pod('a', 'n1'), pod('b', 'n2'));
    await s.tick();
    expect(s.io.calls).toEqual([]);
    const n1 = s.nodes[0];
    if (n1) n1.unschedulable = true;
    await s.clock.advance(1000, 1000);
    await s.tick();
    await s.clock.advance(1000, 1000);
    await s.tick();
    expect(s.io.calls).toEqual(['n1:shop/a/app']);
    expect(s.io.events.find((e) => e.reason === 'CheckpointTaken')?.message).toContain('node n1 is cordoned');
  });

  it.each([
    { bound: 1, rounds: 20 },
    { bound: 4, rounds: 5 },
    { bound: 8, rounds: 3 },
  ])('drain of a node with 20 opted-in pods, maxParallelPerNode $bound: ≈$rounds kubelet latencies, never more than $bound at once', async ({ bound, rounds }) => {
    const LATENCY = 10_000;
    const s = setup({ checkpoint: { interval: '', onDrain: true, maxParallelPerNode: bound } }, { maxConcurrent: 100 });
    s.io.latency = { ms: LATENCY, sleep: (ms) => s.clock.sleep(ms) };
    for (let i = 0; i < 20; i++) s.pods.push(pod(`p${i}`, 'n1'));
    const stop = new AbortController();
    const running = s.controller.run(stop.signal);
    await s.clock.advance(1000, 1000);
    expect(s.io.calls).toEqual([]);
    const n1 = s.nodes[0];
    if (n1) n1.unschedulable = true;
    const start = s.clock.now();
    let done = Number.NaN;
    for (let t = 0; t < 25 * LATENCY && Number.isNaN(done); t += 1000) {
      await s.clock.advance(1000, 1000);
      if (await s.metric('lazarus_controller_checkpoints_taken_total') === 20) done = s.clock.now() - start;
    }
    stop.abort();
    await s.clock.advance(LATENCY, 1000);
    await running;
    expect(new Set(s.io.calls).size).toBe(20);
    expect(s.io.maxInFlight.get('n1')).toBe(bound);
    // Each round is one kubelet latency plus at most a tick or two to see the cordon and the ends.
    expect(done).toBeGreaterThanOrEqual(rounds * LATENCY);
    expect(done).toBeLessThanOrEqual(rounds * LATENCY + 2_000 * rounds);
  });

  it('respects the cluster-wide bound', async () => {
    const s = setup();
    for (let i = 0; i < 6; i++) s.pods.push(pod(`p${i}`, `n${i}`));
    s.nodes.push(...[2, 3, 4, 5].map((i) => ({ name: `n${i}`, unschedulable: false })));
    await s.clock.advance(10 * MIN, MIN);
    const signal = new AbortController().signal;
    await s.controller.tick(signal);
    expect(s.io.calls).toHaveLength(4);
    await s.controller.idle();
  });
});

describe('Controller: restore outcome', () => {
  const restored = (name: string, status: NonNullable<PodView['containerStatuses']>, extra: Partial<PodView> = {}): PodView =>
    pod(name, 'n2', { annotations: { 'lazarus.dev/restored-from': 'app=c1' }, containerStatuses: status, ...extra });

  it('failure: checkpoint Failed with the runtime message, Events on pod and Deployment, pod deleted', async () => {
    const s = setup();
    s.store.set('shop/c1', checkpoint('c1', T0 - MIN));
    s.pods.push(restored('r', [{ name: 'app', state: { waiting: { reason: 'CreateContainerError', message: 'failed to restore: criu: Can not restore' } } }]));
    await s.tick();
    const cp = s.store.get('shop/c1');
    expect(cp?.status?.phase).toBe('Failed');
    expect(cp?.status?.reason).toContain('criu: Can not restore');
    expect(cp?.status?.lastRestore).toMatchObject({ pod: 'r', node: 'n2', outcome: 'Failed' });
    const events = s.io.events.filter((e) => e.reason === 'RestoreFailed');
    expect(events.map((e) => `${e.type}:${e.regarding.kind}/${e.regarding.name}`)).toEqual(['Warning:Pod/r', 'Warning:Deployment/web']);
    expect(s.io.deletedPods).toEqual(['shop/r']);
    expect(await s.metric('lazarus_controller_restores_failed_total')).toBe(1);
    expect(await s.metric('lazarus_controller_fallbacks_total')).toBe(1);
    await s.tick();
    expect(s.io.deletedPods).toHaveLength(1);
  });

  it('failure of a bare pod: Event only, no deletion', async () => {
    const s = setup();
    s.store.set('shop/c1', checkpoint('c1', T0 - MIN));
    s.pods.push(restored('bare', [{ name: 'app', state: { waiting: { reason: 'CreateContainerError', message: 'restore failed' } } }], { ownerReferences: [] }));
    await s.tick();
    expect(s.store.get('shop/c1')?.status?.phase).toBe('Failed');
    expect(s.io.deletedPods).toEqual([]);
    expect(s.io.events.find((e) => e.reason === 'RestoreFailed')?.message).toContain('no controller');
  });

  it('success after settling: restores++ and Restored, once — also across a leader change', async () => {
    const s = setup();
    s.store.set('shop/c1', checkpoint('c1', T0 - MIN, { phase: 'Ready', restores: 2 }));
    s.pods.push(restored('r', [{ name: 'app', state: { running: { startedAt: new Date(T0).toISOString() } } }]));
    await s.tick();
    expect(s.store.get('shop/c1')?.status?.restores).toBe(2);
    await s.clock.advance(10_000, 1000);
    await s.tick();
    await s.tick();
    expect(s.store.get('shop/c1')?.status).toMatchObject({ phase: 'Ready', restores: 3, lastRestore: { pod: 'r', outcome: 'Succeeded' } });
    expect(s.io.events.filter((e) => e.reason === 'Restored').map((e) => e.regarding.kind)).toEqual(['Pod', 'Deployment']);
    const successor = new Controller({ view: s.view, io: s.io, now: s.clock.now, sleep: s.clock.sleep, log: silentLogger(), metrics: s.metrics, config: CONFIG });
    await successor.tick(new AbortController().signal);
    expect(s.store.get('shop/c1')?.status?.restores).toBe(3);
    expect(s.io.events.filter((e) => e.reason === 'Restored')).toHaveLength(2);
  });
});

describe('Controller: a restored pod that cannot start goes cold without failing its checkpoint', () => {
  const SCHEDULER = "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 Insufficient memory.";
  function pendingPod(name: string, since: number, containers = ['app'], from = 'app=c1'): PodView {
    const p = pod(name, 'n2', { phase: 'Pending', annotations: { 'lazarus.dev/restored-from': from }, containers, containerStatuses: [], unschedulable: { since: new Date(since).toISOString(), message: SCHEDULER } });
    delete p.nodeName;
    delete p.startTime;
    return p;
  }

  it('Unschedulable past the policy bound: pod deleted, Events on pod and Deployment, checkpoint Unavailable (not Failed), Ready again later', async () => {
    const s = setup({ checkpoint: { retain: 2 }, restore: { unschedulableTimeout: '30s' } });
    s.store.set('shop/c1', checkpoint('c1', T0 - MIN));
    s.pods.push(pendingPod('r', T0));
    await s.clock.advance(29_000, 1000);
    await s.tick();
    expect(s.io.deletedPods).toEqual([]);
    expect(s.store.get('shop/c1')?.status?.phase).toBe('Ready');
    await s.clock.advance(1000, 1000);
    await s.tick();
    expect(s.io.deletedPods).toEqual(['shop/r']);
    const status = s.store.get('shop/c1')?.status;
    expect(status?.phase).toBe('Unavailable');
    expect(status?.reason).toContain(`restore of pod r could not start: stayed Unschedulable for 30s (${SCHEDULER})`);
    expect(status?.lastRestore).toMatchObject({ pod: 'r', node: '', outcome: 'Failed', message: `stayed Unschedulable for 30s (${SCHEDULER})` });
    const events = s.io.events.filter((e) => e.reason === 'RestoreUnschedulable');
    expect(events.map((e) => `${e.type}:${e.regarding.kind}/${e.regarding.name}`)).toEqual(['Warning:Pod/r', 'Warning:Deployment/web']);
    expect(events[0]?.message).toContain('deleting the pod so that its replacement starts cold');
    expect(events[0]?.message).toContain('checkpoint c1 is set aside (Unavailable) until 2026-11-27T12:05:30.000Z, not Failed');
    expect(await s.metric('lazarus_controller_fallbacks_total')).toBe(1);
    expect(await s.metric('lazarus_controller_restores_failed_total')).toBe(0);
    // Set aside for unavailableMs, then Ready again for the next replacement.
    s.pods.splice(0);
    await s.clock.advance(5 * MIN - 1000, 1000);
    await s.tick();
    expect(s.store.get('shop/c1')?.status?.phase).toBe('Unavailable');
    await s.clock.advance(MIN, 1000);
    await s.tick();
    expect(s.store.get('shop/c1')?.status).toMatchObject({ phase: 'Ready', lastRestore: { pod: 'r', outcome: 'Failed' } });
    expect(s.store.get('shop/c1')?.status?.reason).toBeUndefined();
  });

  it('the default bound is 60s', async () => {
    const s = setup();
    s.store.set('shop/c1', checkpoint('c1', T0 - MIN));
    s.pods.push(pendingPod('r', T0));
    await s.clock.advance(59_000, 1000);
    await s.tick();
    expect(s.io.deletedPods).toEqual([]);
    await s.clock.advance(1000, 1000);
    await s.tick();
    expect(s.io.deletedPods).toEqual(['shop/r']);
  });

  it('the pod informer keeps PodScheduled=False/Unschedulable (since, message) of pods without a node, and nothing else of conditions', () => {
    const condition = { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: SCHEDULER, lastTransitionTime: '2026-11-27T12:00:00Z' };
    // What the informer hands over: a whole pod, typed only by its metadata.
    const view = (pod: object): PodView => podView(pod as Parameters<typeof podView>[0]);
    expect(view({ metadata: { name: 'r', namespace: 'shop' }, spec: { containers: [{ name: 'app' }] }, status: { phase: 'Pending', conditions: [condition] } }).unschedulable)
      .toEqual({ since: '2026-11-27T12:00:00Z', message: SCHEDULER });
    expect(view({ metadata: { name: 'r', namespace: 'shop' }, spec: { nodeName: 'n1', containers: [] }, status: { conditions: [condition] } }).unschedulable).toBeUndefined();
    expect(view({ metadata: { name: 'r', namespace: 'shop' }, spec: { containers: [] }, status: { conditions: [{ ...condition, reason: 'SchedulingGated' }] } }).unschedulable).toBeUndefined();
  });

  it('lazarus explain of the cold replacement shows why: the checkpoint is Unavailable, with the reason', () => {
    const cp = builtCheckpoint('web-app-1');
    cp.status = { phase: 'Unavailable', reason: `restore of pod web-7d9c-old could not start: stayed Unschedulable for 1m (${SCHEDULER}); not the checkpoint's fault, Ready again at 2026-11-27T12:06:00.000Z` };
    const nodes = [builtNode('node-1')];
    const text = formatExplanation(explainPod({ ...rsPod(), metadata: { ...rsPod().metadata, name: 'web-7d9c-new' } }, 'shop', builtView({ checkpoints: [cp], nodes }), nodes, BUILT_NOW));
    expect(text).toContain('started cold; created now, the webhook would start it cold: no Ready checkpoint of Deployment web container app');
    expect(text).toContain(`web-app-1  Unavailable, taken`);
    expect(text).toContain(`not Ready (Unavailable: restore of pod web-7d9c-old could not start: stayed Unschedulable for 1m (${SCHEDULER})`);
  });

  const pulling = (message: string): PodView => pod('r', 'n2', {
    phase: 'Pending', annotations: { 'lazarus.dev/restored-from': 'app=c1' },
    containerStatuses: [{ name: 'app', state: { waiting: { reason: 'ErrImagePull', message } } }],
  });

  it('a transient image pull error waits imagePullTimeout, then goes cold with the checkpoint Unavailable, not Failed', async () => {
    const s = setup();
    s.store.set('shop/c1', checkpoint('c1', T0 - MIN));
    s.pods.push(pulling('failed to pull and unpack image "reg/lazarus/shop/web-app@sha256:ab": dial tcp 10.0.0.5:5000: connect: connection refused'));
    await s.tick();
    await s.clock.advance(2 * MIN - 1000, 1000);
    await s.tick();
    expect(s.io.deletedPods).toEqual([]);
    expect(s.store.get('shop/c1')?.status?.phase).toBe('Ready');
    await s.clock.advance(1000, 1000);
    await s.tick();
    expect(s.io.deletedPods).toEqual(['shop/r']);
    expect(s.store.get('shop/c1')?.status?.phase).toBe('Unavailable');
    expect(s.store.get('shop/c1')?.status?.lastRestore?.message).toContain('connection refused');
    expect(s.io.events.filter((e) => e.reason === 'RestoreImageUnavailable').map((e) => e.regarding.kind)).toEqual(['Pod', 'Deployment']);
    expect(await s.metric('lazarus_controller_restores_unavailable_total')).toBe(1);
  });

  it('a pull error that clears: the restore is counted, the checkpoint never leaves Ready', async () => {
    const s = setup();
    s.store.set('shop/c1', checkpoint('c1', T0 - MIN));
    const r = pulling('failed to pull and unpack image "reg/x@sha256:ab": unexpected status: 503 Service Unavailable');
    s.pods.push(r);
    await s.clock.advance(30_000, 1000);
    await s.tick();
    r.containerStatuses = [{ name: 'app', state: { running: { startedAt: new Date(s.clock.now()).toISOString() } } }];
    r.phase = 'Running';
    await s.clock.advance(10_000, 1000);
    await s.tick();
    expect(s.io.deletedPods).toEqual([]);
    expect(s.store.get('shop/c1')?.status).toMatchObject({ phase: 'Ready', restores: 1, lastRestore: { outcome: 'Succeeded' } });
  });

  it('an ErrImagePull "not found" seen only between ticks still fails the checkpoint once the pod shows the bare back-off', async () => {
    const s = setup();
    s.store.set('shop/c1', checkpoint('c1', T0 - MIN));
    const r = pulling('failed to pull and unpack image "reg/x@sha256:ab": failed to resolve reference "reg/x@sha256:ab": reg/x@sha256:ab: not found');
    s.pods.push(r);
    s.controller.observeRestoredPod(r); // the informer's update, before any tick looked
    r.containerStatuses = [{ name: 'app', state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "reg/x@sha256:ab"' } } }];
    await s.tick();
    expect(s.store.get('shop/c1')?.status?.phase).toBe('Failed');
    expect(s.store.get('shop/c1')?.status?.reason).toContain('after ErrImagePull');
  });

  it('an image gone from the registry still fails the checkpoint at once (the real-node blob-deleted case)', async () => {
    const s = setup();
    s.store.set('shop/c1', checkpoint('c1', T0 - MIN));
    s.pods.push(pulling('failed to pull and unpack image "reg/x@sha256:ab": failed to copy: httpReadSeeker: failed open: content at http://reg/v2/x/blobs/sha256:cd not found: not found'));
    await s.tick();
    expect(s.store.get('shop/c1')?.status?.phase).toBe('Failed');
    expect(s.io.events.find((e) => e.reason === 'RestoreFailed')?.message).toContain('not found');
    expect(s.io.deletedPods).toEqual(['shop/r']);
  });
});

describe('Controller: cold starts are said as Events (the webhook\'s lazarus.dev/cold-start)', () => {
  const cold = (name: string, why: string, createdAt = T0): PodView =>
    pod(name, 'n1', { createdAt: new Date(createdAt).toISOString(), annotations: { 'lazarus.dev/restore': 'enabled', 'lazarus.dev/cold-start': why } });

  it('once per pod: StartedCold on the pod; an untrusted checkpoint image is a Warning on the pod and its workload', async () => {
    const s = setup();
    s.pods.push(cold('a', 'no checkpoint of Deployment web container app'));
    s.pods.push(cold('b', 'checkpoint web-app-1 of Deployment web container app is not trusted: image evil/x:1 is not a digest reference'));
    await s.tick();
    await s.tick();
    expect(s.io.events.map((e) => `${e.type}:${e.reason}:${e.regarding.kind}/${e.regarding.name}`)).toEqual([
      'Normal:StartedCold:Pod/a', 'Warning:UntrustedCheckpoint:Pod/b', 'Warning:UntrustedCheckpoint:Deployment/web',
    ]);
    expect(s.io.events[0]?.message).toBe('started cold: no checkpoint of Deployment web container app');
    expect(s.io.events[1]?.message).toContain('pod b started cold: checkpoint web-app-1 of Deployment web container app is not trusted: image evil/x:1');
    expect(await s.metric('lazarus_controller_untrusted_checkpoints_total')).toBe(1);
  });

  it('not for pods created before the window (a new leader does not repeat its predecessor), nor for pods without the annotation', async () => {
    const s = setup();
    s.pods.push(cold('old', 'no checkpoint', T0 - 6 * MIN), pod('plain', 'n1', { createdAt: new Date(T0).toISOString() }));
    await s.tick();
    expect(s.io.events.filter((e) => e.reason === 'StartedCold')).toEqual([]);
  });
});

describe('Controller: which path took a checkpoint (status.trigger, for lazarus explain)', () => {
  it('a cordon checkpoint is recorded as drain on the Checkpoint the agent writes for it; a later unrelated one is left alone', async () => {
    const s = setup({ checkpoint: { interval: '', onDrain: true } });
    s.pods.push(pod('a', 'n1'));
    const n1 = s.nodes[0];
    if (n1) n1.unschedulable = true;
    await s.tick();
    await s.clock.advance(1000, 1000);
    await s.tick();
    expect(s.io.calls).toEqual(['n1:shop/a/app']);
    // The agent's Checkpoint of that archive, and one of another pod.
    s.store.set('shop/a-1', checkpoint('a-1', s.clock.now() - 1000, { phase: 'Ready' }, 'a'));
    s.store.set('shop/b-1', checkpoint('b-1', s.clock.now() - 1000, { phase: 'Ready' }, 'b'));
    await s.tick();
    expect(s.store.get('shop/a-1')?.status?.trigger).toBe('drain');
    expect(s.store.get('shop/b-1')?.status?.trigger).toBeUndefined();
  });

  it('an on-demand checkpoint asked for by an eviction hold is recorded as eviction', async () => {
    const s = setup({ checkpoint: { interval: '' } });
    const p = pod('a', 'n1');
    s.pods.push(p);
    p.annotations = { ...p.annotations, 'lazarus.dev/eviction-held-since': new Date(s.clock.now()).toISOString().replace(/\.\d+Z$/, 'Z') };
    s.annotate(p, 'now');
    await s.tick();
    await s.clock.advance(1000, 1000);
    await s.tick();
    expect(s.io.calls).toEqual(['n1:shop/a/app']);
    s.store.set('shop/a-1', checkpoint('a-1', s.clock.now() - 1000, { phase: 'Ready' }, 'a'));
    await s.tick();
    expect(s.store.get('shop/a-1')?.status?.trigger).toBe('eviction');
  });
});

describe('Controller: retention', () => {
  it('retain 2 over five Ready: three Expired and deleted; Failed past retention deleted', async () => {
    const s = setup({ checkpoint: { retain: 2 } });
    for (let i = 1; i <= 5; i++) s.store.set(`shop/c${i}`, checkpoint(`c${i}`, T0 - (10 - i) * MIN));
    s.store.set('shop/f', checkpoint('f', T0 - 48 * 60 * MIN, { phase: 'Failed' }));
    const phases: string[] = [];
    const update = s.io.updateCheckpointStatus.bind(s.io);
    s.io.updateCheckpointStatus = async (ns, name, change) => {
      const r = await update(ns, name, change);
      phases.push(`${name}:${s.store.get(`${ns}/${name}`)?.status?.phase ?? ''}`);
      return r;
    };
    await s.tick();
    expect([...s.store.keys()].sort()).toEqual(['shop/c4', 'shop/c5']);
    expect(phases.sort()).toEqual(['c1:Expired', 'c2:Expired', 'c3:Expired']);
    expect(s.io.deletedCheckpoints.sort()).toEqual(['c1', 'c2', 'c3', 'f']);
  });

  it('a new Ready checkpoint brings retention forward: retain holds seconds later, not a retention interval later', async () => {
    const s = setup({ checkpoint: { retain: 2 } });
    s.store.set('shop/c1', checkpoint('c1', T0 - 3 * MIN));
    s.store.set('shop/c2', checkpoint('c2', T0 - 2 * MIN));
    await s.tick(); // retention runs: two Ready, nothing to do
    expect(s.io.deletedCheckpoints).toEqual([]);
    s.store.set('shop/c3', checkpoint('c3', T0 - MIN));
    await s.clock.advance(RETENTION_AFTER_CHANGE_MS - 1000, 1000);
    await s.tick();
    expect(s.io.deletedCheckpoints).toEqual([]); // not sooner than RETENTION_AFTER_CHANGE_MS after the last pass
    await s.clock.advance(1000, 1000);
    await s.tick();
    expect(s.io.deletedCheckpoints).toEqual(['c1']);
    // A change right after a pass waits RETENTION_AFTER_CHANGE_MS too: retention never runs back to back.
    const before = s.io.deletedCheckpoints.length;
    s.store.set('shop/c0', checkpoint('c0', T0 - 10 * MIN));
    await s.tick();
    expect(s.io.deletedCheckpoints.length).toBe(before);
  });
});

describe('Controller.run', () => {
  it('ticks every tickMs, wakes early on kick(), and ends when its signal aborts', async () => {
    const s = setup();
    s.store.set('shop/c1', checkpoint('c1', T0 - MIN));
    const stop = new AbortController();
    const done = s.controller.run(stop.signal);
    await settle();
    s.pods.push(pod('r', 'n2', {
      annotations: { 'lazarus.dev/restored-from': 'app=c1' },
      containerStatuses: [{ name: 'app', state: { waiting: { reason: 'CreateContainerError', message: 'restore failed' } } }],
    }));
    await settle();
    expect(s.io.deletedPods).toEqual([]);
    s.controller.kick();
    await settle();
    expect(s.io.deletedPods).toEqual(['shop/r']);
    stop.abort();
    await done;
  });
});


describe('Controller: checkpoint on demand (lazarus.dev/checkpoint)', () => {
  const NOW = '2026-11-27T12:00:00Z';

  it('pod `now` → requested, checkpointed through the usual path, answered taken; the answer never re-triggers', async () => {
    const s = setup({ checkpoint: { interval: '', onDrain: false } });
    const a = pod('a', 'n1', { containers: ['app', 'side'], containerStatuses: [{ name: 'app', state: { running: {} } }, { name: 'side', state: { running: {} } }] });
    s.pods.push(a);
    s.annotate(a, 'now');
    await s.tick();
    // Both containers at once: the default maxParallelPerNode lets several run on one node.
    expect(s.io.calls).toEqual(['n1:shop/a/app', 'n1:shop/a/side']);
    expect(s.io.answers).toEqual([`Pod/shop/a: requested ${NOW}`]);
    await s.tick();
    expect(s.io.answers[1]).toBe(`Pod/shop/a: taken ${NOW}: app=/var/lib/kubelet/checkpoints/checkpoint-a_shop-app.tar, side=/var/lib/kubelet/checkpoints/checkpoint-a_shop-side.tar on node n1; the agent on the node turns each archive into an image and a Checkpoint (Ready later)`);
    for (let i = 0; i < 3; i++) { await s.clock.advance(1000, 1000); await s.tick(); }
    expect(s.io.calls).toHaveLength(2);
    expect(s.io.events.map((e) => e.reason)).toEqual(['CheckpointRequested', 'CheckpointTaken', 'CheckpointTaken', 'CheckpointTaken']);
    expect(s.io.events[1]?.message).toContain('requested with lazarus.dev/checkpoint');
    expect(await s.metric('lazarus_controller_checkpoint_requests_total')).toBe(1);
    // Re-annotating `now` (kubectl annotate --overwrite) asks again.
    s.annotate(a, 'now');
    await s.clock.advance(1000, 1000);
    await s.tick(); await s.tick(); await s.tick();
    expect(s.io.calls).toHaveLength(4);
    expect(s.io.answers.at(-1)).toMatch(/^Pod\/shop\/a: taken 2026-11-27T12:00:04Z: /);
  });

  it('a pod that is not opted in gets `failed …: not opted in`, and nothing reaches the kubelet', async () => {
    const s = setup({ checkpoint: { interval: '', onDrain: false } });
    const off = pod('off', 'n1', { annotations: {}, ownerReferences: [] });
    s.pods.push(off);
    s.annotate(off, 'now');
    await s.tick();
    expect(s.io.calls).toEqual([]);
    expect(s.io.answers).toEqual([`Pod/shop/off: failed ${NOW}: not opted in: annotate lazarus.dev/restore=enabled on the pod or its workload (lazarus.dev/restore not set and RestorePolicy p has mode OptIn)`]);
    expect(s.io.events).toMatchObject([{ reason: 'CheckpointFailed', type: 'Warning', regarding: { kind: 'Pod', name: 'off' } }]);
  });

  it('a kubelet error is answered `failed` with its text, not retried for the request', async () => {
    const s = setup({ checkpoint: { interval: '', onDrain: false } });
    const a = pod('a', 'n1');
    s.pods.push(a);
    s.io.fail = () => 500;
    s.annotate(a, 'now');
    await s.tick(); await s.tick();
    expect(s.io.answers[1]).toBe(`Pod/shop/a: failed ${NOW}: app: node n1: POST checkpoint: 500 checkpointing failed: runtime error`);
    await s.clock.advance(60_000, 1000);
    await s.tick();
    expect(s.io.calls).toHaveLength(1);
    expect(s.io.events.find((e) => e.reason === 'CheckpointFailed')?.message).toContain('not retried');
  });

  it('a container whose checkpoint is still in flight is not checkpointed a second time by the next tick', async () => {
    const s = setup({ checkpoint: { interval: '', onDrain: true, maxParallelPerNode: 4 } });
    s.io.latency = { ms: 5_000, sleep: (ms) => s.clock.sleep(ms) };
    s.pods.push(pod('a', 'n1'));
    const n1 = s.nodes[0];
    if (n1) n1.unschedulable = true;
    const signal = new AbortController().signal;
    await s.controller.tick(signal);
    await s.clock.advance(1000, 1000);
    await s.controller.tick(signal);
    expect(s.io.calls).toEqual(['n1:shop/a/app']);
    await s.clock.advance(5_000, 1000);
    await s.tick();
    expect(s.io.calls).toEqual(['n1:shop/a/app']);
  });

  it('a Deployment request with 6 pods on one node runs up to maxParallelPerNode at once, not one at a time', async () => {
    const s = setup({ checkpoint: { interval: '', onDrain: false, maxParallelPerNode: 3 } }, { maxConcurrent: 100 });
    s.io.latency = { ms: 5_000, sleep: (ms) => s.clock.sleep(ms) };
    for (let i = 1; i <= 6; i++) s.pods.push(pod(`web-${i}`, 'n1', { annotations: {} }));
    s.annotateWorkload('Deployment', 'web', 'now', 'enabled');
    const signal = new AbortController().signal;
    await s.controller.tick(signal);
    expect(s.io.calls).toHaveLength(3);
    await s.clock.advance(5_000, 1000);
    await s.controller.tick(signal);
    expect(s.io.calls).toHaveLength(6);
    await s.clock.advance(5_000, 1000);
    await s.tick();
    expect(s.io.maxInFlight.get('n1')).toBe(3);
    expect(s.io.answers.at(-1)).toContain('taken');
    expect(s.io.answers.at(-1)).toContain('6/6 pods');
  });

  it('the per-node bound holds: one checkpoint per node, the request before the periodic one', async () => {
    const s = setup();
    s.pods.push(pod('a', 'n1'), pod('b', 'n1'));
    await s.clock.advance(10 * MIN, MIN);
    const b = s.pods[1];
    if (!b) throw new Error('no pod');
    s.annotate(b, 'now');
    await s.tick();
    // Only one of the two pods on n1 at a time; the request goes before the periodic one.
    expect(s.io.calls).toEqual(['n1:shop/b/app']);
  });

  it('a Deployment `now` → each of its pods, one answer on the Deployment: taken 2/2', async () => {
    const s = setup({ checkpoint: { interval: '', onDrain: false } });
    s.pods.push(pod('web-1', 'n1', { annotations: {} }), pod('web-2', 'n2', { annotations: {} }), pod('other', 'n1', { ownerReferences: [] }));
    s.annotateWorkload('Deployment', 'web', 'now', 'enabled');
    await s.tick(); await s.tick();
    expect(s.io.calls.sort()).toEqual(['n1:shop/web-1/app', 'n2:shop/web-2/app']);
    expect(s.io.answers).toEqual([
      `Deployment/shop/web: requested ${NOW}`,
      `Deployment/shop/web: taken ${NOW}: 2/2 pods (web-1, web-2), archives on their nodes; the agent on the node turns each archive into an image and a Checkpoint (Ready later)`,
    ]);
    expect(s.io.events.filter((e) => e.regarding.kind === 'Deployment').map((e) => e.reason)).toEqual(['CheckpointRequested', 'CheckpointTaken']);
    expect(s.io.events.find((e) => e.regarding.kind === 'Deployment')?.regarding.apiVersion).toBe('apps/v1');
  });

  it('a Deployment that is not opted in: failed at once; its ReplicaSet copy of the annotation is not a second request', async () => {
    const s = setup({ checkpoint: { interval: '', onDrain: false } });
    s.pods.push(pod('web-1', 'n1', { annotations: {} }));
    s.annotateWorkload('Deployment', 'web', 'now');
    s.annotateWorkload('ReplicaSet', 'web-7d9c', 'now');
    await s.tick();
    expect(s.io.calls).toEqual([]);
    expect(s.io.answers).toHaveLength(1);
    expect(s.io.answers[0]).toMatch(/^Deployment\/shop\/web: failed 2026-11-27T12:00:00Z: not opted in: annotate lazarus.dev\/restore=enabled/);
  });

  it('a request is not overwritten: `now` set again while checkpointing drops the stale answer and starts anew', async () => {
    const s = setup({ checkpoint: { interval: '', onDrain: false } });
    const a = pod('a', 'n1');
    s.pods.push(a);
    let release: () => void = () => undefined;
    const slow = new Promise<void>((r) => { release = r; });
    const plain = s.io.checkpoint.bind(s.io);
    s.io.checkpoint = async (...args) => { await slow; return plain(...args); };
    s.annotate(a, 'now');
    const signal = new AbortController().signal;
    await s.controller.tick(signal);
    s.annotate(a, 'now');
    release();
    await s.controller.idle();
    // The first answer finds `now`, not its `requested …`: it is dropped, never written over the new request.
    await s.tick();
    expect(s.io.answers).toEqual([`Pod/shop/a: requested ${NOW}`]);
    await s.tick();
    expect(s.io.answers).toEqual([`Pod/shop/a: requested ${NOW}`, `Pod/shop/a: requested ${NOW}`]);
    await s.tick();
    expect(s.io.answers.at(-1)).toMatch(/^Pod\/shop\/a: taken /);
    expect(s.io.calls).toHaveLength(2);
  });

  it.each([
    { name: 'a value outside the grammar is answered, not ignored', value: 'Now', answer: `failed ${NOW}: "Now" is not a request: set lazarus.dev/checkpoint=now` },
    { name: 'a pod that is not running', value: 'now', answer: `failed ${NOW}: pod a is Pending, not Running`, extra: { phase: 'Pending' } },
  ])('$name', async ({ value, answer, extra }) => {
    const s = setup({ checkpoint: { interval: '', onDrain: false } });
    const a = pod('a', 'n1', extra ?? {});
    s.pods.push(a);
    s.annotate(a, value);
    await s.tick();
    expect(s.io.answers).toEqual([`Pod/shop/a: ${answer}`]);
  });

  it('a new leader carries on a request the previous one accepted (`requested …` that no one serves)', async () => {
    const s = setup({ checkpoint: { interval: '', onDrain: false } });
    const a = pod('a', 'n1');
    s.pods.push(a);
    s.annotate(a, 'requested 2026-11-27T11:59:58Z');
    await s.tick(); await s.tick();
    expect(s.io.calls).toEqual(['n1:shop/a/app']);
    expect(s.io.answers[0]).toMatch(/^Pod\/shop\/a: taken /);
  });
});
