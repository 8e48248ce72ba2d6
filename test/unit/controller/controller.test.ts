import { effectivePolicy } from '../../../api/policy.js';
import type { Checkpoint, CheckpointStatus, EffectivePolicy } from '../../../api/types.js';
import type { OwnerKind, OwnerView } from '../../../api/workload.js';
import { Controller, type ControllerConfig, type ControllerView } from '../../../controller/controller.js';
import type { ControllerIO, EventSpec, StatusChange } from '../../../controller/kube-io.js';
import { createControllerMetrics } from '../../../controller/metrics.js';
import type { PodView } from '../../../controller/targets.js';
import { KubeError } from '../../../kube/client.js';
import { silentLogger } from '../../../runtime/log.js';
import { createRegistry } from '../../../runtime/metrics.js';
import { FakeClock, settle } from '../../support/fake-clock.js';

const T0 = Date.parse('2026-11-27T12:00:00Z');
const MIN = 60_000;

class FakeIO implements ControllerIO {
  calls: string[] = [];
  events: EventSpec[] = [];
  deletedPods: string[] = [];
  deletedCheckpoints: string[] = [];
  fail: ((node: string) => number | undefined) = () => undefined;
  constructor(readonly store: Map<string, Checkpoint>) {}
  async checkpoint(node: string, ns: string, pod: string, container: string): Promise<string[]> {
    this.calls.push(`${node}:${ns}/${pod}/${container}`);
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
  settleMs: 10_000, earlyExitMs: 10_000, jitterFactor: 0, backoff: { baseMs: 10_000, maxMs: 5 * MIN },
};

function setup(policySpec: NonNullable<Parameters<typeof effectivePolicy>[0]['spec']> = { checkpoint: { interval: '10m', retain: 2 } }) {
  const clock = new FakeClock(T0);
  const pods: PodView[] = [];
  const nodes = [{ name: 'n1', unschedulable: false }, { name: 'n2', unschedulable: false }];
  const store = new Map<string, Checkpoint>();
  const policies: EffectivePolicy[] = [effectivePolicy({ metadata: { name: 'p' }, spec: policySpec })];
  const owners: Record<string, OwnerView> = {
    'ReplicaSet/shop/web-7d9c': { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] },
    'Deployment/shop/web': { labels: { app: 'web' } },
  };
  const view: ControllerView = {
    pods: () => pods, checkpoints: () => store.values(), checkpoint: (ns, name) => store.get(`${ns}/${name}`),
    nodes: () => nodes, notSynced: () => undefined, policies: () => policies, namespaceLabels: () => ({}),
    owners: { get: (kind: OwnerKind, ns: string, name: string) => owners[`${kind}/${ns}/${name}`] },
  };
  const io = new FakeIO(store);
  const registry = createRegistry('test', false);
  const metrics = createControllerMetrics(registry, () => store.values(), clock.now);
  const controller = new Controller({ view, io, now: clock.now, sleep: clock.sleep, log: silentLogger(), metrics, config: CONFIG, jitter: () => 0 });
  const signal = new AbortController().signal;
  const tick = async (): Promise<void> => { await controller.tick(signal); await controller.idle(); };
  const metric = async (name: string): Promise<number> => {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
  };
  return { clock, pods, nodes, store, io, controller, tick, metric, registry, view, metrics };
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

