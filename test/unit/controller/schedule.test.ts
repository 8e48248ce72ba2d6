import { backoffDelay } from '../../../runtime/backoff.js';
import { dueAt, hashJitter, perNodeBound, planCheckpoints, type NodeLoad, type ScheduleInput, type Target, type TargetState } from '../../../controller/schedule.js';

const MIN = 60_000;
const T0 = Date.parse('2026-11-27T12:00:00Z');

function target(pod: string, node: string, extra: Partial<Target> = {}): Target {
  return {
    key: `shop/${pod}/app`, namespace: 'shop', pod, podUid: `uid-${pod}`, node, container: 'app',
    startedAt: T0, intervalMs: 30 * MIN, onDrain: true, timeoutSeconds: 60, maxParallelPerNode: 1, ...extra,
  };
}

function input(targets: Target[], over: Partial<ScheduleInput> & { states?: Record<string, TargetState>; cordoned?: Record<string, number> } = {}): ScheduleInput {
  const { states = {}, cordoned = {}, ...rest } = over;
  return {
    targets,
    state: (key) => states[key],
    cordonedAt: (node) => cordoned[node],
    nodeLoad: new Map(),
    running: new Set(),
    inFlight: 0,
    maxConcurrent: 4,
    now: T0,
    jitter: () => 0,
    jitterFactor: 0.1,
    backoff: { baseMs: 10_000, maxMs: 5 * MIN },
    ...rest,
  };
}

const picked = (i: ScheduleInput): string[] => planCheckpoints(i).map((j) => `${j.reason}:${j.target.pod}`);

describe('planCheckpoints: interval', () => {
  it.each([
    { name: 'not due before the interval since start', now: T0 + 29 * MIN, state: undefined, want: [] },
    { name: 'due exactly at the interval (boundary)', now: T0 + 30 * MIN, state: undefined, want: ['interval:a'] },
    { name: 'counts from the last checkpoint', now: T0 + 40 * MIN, state: { lastCheckpointAt: T0 + 20 * MIN, failures: 0 }, want: [] },
    { name: 'due an interval after the last checkpoint', now: T0 + 50 * MIN, state: { lastCheckpointAt: T0 + 20 * MIN, failures: 0 }, want: ['interval:a'] },
  ])('$name', ({ now, state, want }) => {
    expect(picked(input([target('a', 'n1')], { now, ...(state ? { states: { 'shop/a/app': state } } : {}) }))).toEqual(want);
  });

  it('jitter stretches the interval by up to jitterFactor', () => {
    const i = input([target('a', 'n1')], { jitter: () => 0.5, jitterFactor: 0.2 });
    expect(dueAt(target('a', 'n1'), undefined, undefined, i)?.dueAt).toBe(T0 + 30 * MIN * 1.1);
    expect(picked({ ...i, now: T0 + 32 * MIN })).toEqual([]);
    expect(picked({ ...i, now: T0 + 33 * MIN })).toEqual(['interval:a']);
  });

  it('no interval and node schedulable: never due', () => {
    expect(picked(input([target('a', 'n1', { intervalMs: 0 })], { now: T0 + 1e9 }))).toEqual([]);
  });
});

describe('planCheckpoints: drain', () => {
  it.each([
    { name: 'cordoned with onDrain → due at once', t: target('a', 'n1'), state: undefined, want: ['drain:a'] },
    { name: 'cordoned without onDrain → not due', t: target('a', 'n1', { onDrain: false }), state: undefined, want: [] },
    { name: 'checkpoint already taken since the cordon → not due', t: target('a', 'n1'), state: { lastCheckpointAt: T0 + 1, failures: 0 }, want: [] },
    { name: 'checkpoint taken before the cordon → due', t: target('a', 'n1'), state: { lastCheckpointAt: T0 - 1, failures: 0 }, want: ['drain:a'] },
    { name: 'drain works without an interval', t: target('a', 'n1', { intervalMs: 0 }), state: undefined, want: ['drain:a'] },
  ])('$name', ({ t, state, want }) => {
    expect(picked(input([t], { now: T0 + 1000, cordoned: { n1: T0 }, ...(state ? { states: { [t.key]: state } } : {}) }))).toEqual(want);
  });

  it('drain goes before overdue interval checkpoints', () => {
    const i = input([target('old', 'n2', { startedAt: T0 - 10 * 60 * MIN }), target('leaving', 'n1')], { now: T0 + MIN, cordoned: { n1: T0 }, maxConcurrent: 1 });
    expect(picked(i)).toEqual(['drain:leaving']);
  });
});

describe('planCheckpoints: bounds', () => {
  const overdue = (pod: string, node: string, minutesOverdue: number): Target => target(pod, node, { startedAt: T0 - (30 + minutesOverdue) * MIN });

  it('bound 1: one per node, most overdue first', () => {
    const i = input([overdue('a', 'n1', 1), overdue('b', 'n1', 5), overdue('c', 'n2', 2)]);
    expect(picked(i)).toEqual(['interval:b', 'interval:c']);
  });

  it('skips nodes that already have one in flight', () => {
    expect(picked(input([overdue('a', 'n1', 1), overdue('c', 'n2', 2)], { nodeLoad: new Map([['n2', { inFlight: 1, bound: 1 }]]), inFlight: 1 }))).toEqual(['interval:a']);
  });

  it.each([
    { inFlight: 0, max: 2, want: 2 },
    { inFlight: 1, max: 2, want: 1 },
    { inFlight: 2, max: 2, want: 0 },
    { inFlight: 3, max: 2, want: 0 },
  ])('cluster-wide bound: $inFlight in flight, max $max → $want more', ({ inFlight, max, want }) => {
    const i = input([overdue('a', 'n1', 1), overdue('b', 'n2', 1), overdue('c', 'n3', 1)], { inFlight, maxConcurrent: max });
    expect(planCheckpoints(i)).toHaveLength(want);
  });
});

describe('planCheckpoints: several checkpoints per node (checkpoint.maxParallelPerNode)', () => {
  const overdue = (pod: string, node: string, bound: number, minutesOverdue = 1): Target => target(pod, node, { startedAt: T0 - (30 + minutesOverdue) * MIN, maxParallelPerNode: bound });
  const many = (n: number, node: string, bound: number): Target[] => Array.from({ length: n }, (_, i) => overdue(`p${String(i).padStart(2, '0')}`, node, bound, n - i));
  const load = (entries: Record<string, NodeLoad>): Map<string, NodeLoad> => new Map(Object.entries(entries));

  it.each([
    { name: '20 pods, bound 4, nothing in flight → 4', targets: many(20, 'n1', 4), over: {}, want: 4 },
    { name: 'bound 1 (boundary) → 1', targets: many(20, 'n1', 1), over: {}, want: 1 },
    { name: 'bound 4, 3 in flight → 1 more', targets: many(20, 'n1', 4), over: { nodeLoad: load({ n1: { inFlight: 3, bound: 4 } }), inFlight: 3 }, want: 1 },
    { name: 'bound 4, 4 in flight → none', targets: many(20, 'n1', 4), over: { nodeLoad: load({ n1: { inFlight: 4, bound: 4 } }), inFlight: 4 }, want: 0 },
    { name: 'fewer pods than the bound → all', targets: many(3, 'n1', 8), over: {}, want: 3 },
    { name: 'the cluster-wide bound still caps a node', targets: many(20, 'n1', 8), over: { maxConcurrent: 5 }, want: 5 },
    { name: 'a stricter policy in flight caps the node: bound 2 in flight, candidates bound 8 → 1 more', targets: many(20, 'n1', 8), over: { nodeLoad: load({ n1: { inFlight: 1, bound: 2 } }), inFlight: 1 }, want: 1 },
    { name: 'bound not a whole number ≥ 1 counts as 1 (never unbounded)', targets: many(5, 'n1', 0), over: {}, want: 1 },
  ])('$name', ({ targets, over, want }) => {
    expect(planCheckpoints(input(targets, { maxConcurrent: 100, ...over }))).toHaveLength(want);
  });

  it('each node has its own count: 2 nodes × 10 pods, bound 3 → 3 on each', () => {
    const jobs = planCheckpoints(input([...many(10, 'n1', 3), ...many(10, 'n2', 3)], { maxConcurrent: 100 }));
    expect(jobs.filter((j) => j.target.node === 'n1')).toHaveLength(3);
    expect(jobs.filter((j) => j.target.node === 'n2')).toHaveLength(3);
  });

  it('mixed policies on one node: the smallest bound among the job and those chosen with it applies', () => {
    // Most overdue first: a (bound 4), b (bound 2), c and d (bound 4). After a and b, b's 2 caps the node.
    const targets = [overdue('a', 'n1', 4, 9), overdue('b', 'n1', 2, 8), overdue('c', 'n1', 4, 7), overdue('d', 'n1', 4, 6)];
    expect(picked(input(targets, { maxConcurrent: 100 }))).toEqual(['interval:a', 'interval:b']);
  });

  it('a node\'s queue keeps its order: a strict pod that cannot start yet holds the looser ones behind it', () => {
    // 2 in flight under bound 4; the next due (bound 1) cannot start; the bound-4 pods behind it wait too.
    const targets = [overdue('strict', 'n1', 1, 9), overdue('loose', 'n1', 4, 1), overdue('other', 'n2', 4, 1)];
    expect(picked(input(targets, { nodeLoad: load({ n1: { inFlight: 2, bound: 4 } }), inFlight: 2, maxConcurrent: 100 }))).toEqual(['interval:other']);
  });

  it('drain, demand and interval jobs share one node count, in that order', () => {
    const targets = [target('i', 'n1', { startedAt: T0 - 31 * MIN, maxParallelPerNode: 2 }), target('r', 'n1', { maxParallelPerNode: 2 }), target('d', 'n1', { maxParallelPerNode: 2 })];
    const i = input(targets, { now: T0 + MIN, cordoned: { n1: T0 }, demanded: (k) => (k === 'shop/r/app' ? T0 : undefined), states: { 'shop/r/app': { lastCheckpointAt: T0 + 1, failures: 0 }, 'shop/i/app': { lastCheckpointAt: T0 + 1, failures: 0 } }, maxConcurrent: 100 });
    // d: drain; r: demand; i: checkpointed since the cordon, not due. Both fit under 2.
    expect(picked(i)).toEqual(['drain:d', 'demand:r']);
    expect(picked({ ...i, nodeLoad: load({ n1: { inFlight: 1, bound: 2 } }) })).toEqual(['drain:d']);
  });

  it('a container with a checkpoint in flight is not started again, even with room on its node', () => {
    const i = input([overdue('a', 'n1', 4, 2), overdue('b', 'n1', 4, 1)], { nodeLoad: load({ n1: { inFlight: 1, bound: 4 } }), inFlight: 1, running: new Set(['shop/a/app']), cordoned: { n1: T0 - MIN } });
    expect(picked(i)).toEqual(['drain:b']);
  });

  it('does not change its input', () => {
    const nodeLoad = load({ n1: { inFlight: 1, bound: 4 } });
    planCheckpoints(input(many(10, 'n1', 4), { nodeLoad, inFlight: 1, maxConcurrent: 100 }));
    expect([...nodeLoad]).toEqual([['n1', { inFlight: 1, bound: 4 }]]);
  });

  it.each([[4, 4], [1, 1], [0, 1], [-3, 1], [2.5, 1], [Number.NaN, 1]])('perNodeBound(%p) = %p', (given, want) => {
    expect(perNodeBound({ maxParallelPerNode: given })).toBe(want);
  });
});

describe('planCheckpoints: backoff after errors', () => {
  const t = target('a', 'n1');
  it.each([
    { failures: 1, sinceFailure: 9_999, due: false },
    { failures: 1, sinceFailure: 10_000, due: true },
    { failures: 2, sinceFailure: 19_999, due: false },
    { failures: 2, sinceFailure: 20_000, due: true },
    { failures: 4, sinceFailure: 79_999, due: false },
    { failures: 4, sinceFailure: 80_000, due: true },
    { failures: 50, sinceFailure: 5 * MIN - 1, due: false },
    { failures: 50, sinceFailure: 5 * MIN, due: true },
  ])('$failures failures, $sinceFailure ms later: due=$due', ({ failures, sinceFailure, due }) => {
    const now = T0 + 60 * MIN;
    const state = { failures, lastFailureAt: now - sinceFailure };
    expect(picked(input([t], { now, states: { [t.key]: state } }))).toEqual(due ? ['interval:a'] : []);
  });

  it('backoff holds back drain checkpoints too: no tight loop against a failing kubelet', () => {
    const state = { failures: 3, lastFailureAt: T0 + 1000 };
    expect(picked(input([t], { now: T0 + 2000, cordoned: { n1: T0 }, states: { [t.key]: state } }))).toEqual([]);
    expect(picked(input([t], { now: T0 + 41_000, cordoned: { n1: T0 }, states: { [t.key]: state } }))).toEqual(['drain:a']);
  });

  it.each([
    { failures: 0, want: 0 }, { failures: 1, want: 10_000 }, { failures: 3, want: 40_000 }, { failures: 1000, want: 300_000 },
  ])('backoffDelay($failures) = $want', ({ failures, want }) => {
    expect(backoffDelay(failures, { baseMs: 10_000, maxMs: 300_000 })).toBe(want);
  });
});

describe('hashJitter', () => {
  it('is stable, in [0,1), and spreads keys', () => {
    const values = Array.from({ length: 1000 }, (_, i) => hashJitter(`ns/pod-${i}/app`));
    expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
    expect(hashJitter('a/b/c')).toBe(hashJitter('a/b/c'));
    const buckets = new Array<number>(10).fill(0);
    for (const v of values) buckets[Math.floor(v * 10)] = (buckets[Math.floor(v * 10)] ?? 0) + 1;
    expect(Math.min(...buckets)).toBeGreaterThan(50);
  });
});

describe('planCheckpoints: on demand', () => {
  const demanded = (keys: Record<string, number>) => (key: string): number | undefined => keys[key];
  it.each([
    { name: 'a request is due at once, with no interval and no cordon', targets: [target('a', 'n1', { intervalMs: 0, onDrain: false })], over: { demanded: demanded({ 'shop/a/app': T0 }) }, want: ['demand:a'] },
    { name: 'a request ignores the backoff after failures', targets: [target('a', 'n1')], over: { demanded: demanded({ 'shop/a/app': T0 }), states: { 'shop/a/app': { failures: 5, lastFailureAt: T0 } } }, want: ['demand:a'] },
    { name: 'drain before demand before interval', targets: [target('i', 'n1'), target('d', 'n2'), target('r', 'n3')], over: { now: T0 + 31 * MIN, cordoned: { n2: T0 + 30 * MIN }, demanded: demanded({ 'shop/r/app': T0 + 31 * MIN }), maxConcurrent: 2 }, want: ['drain:d', 'demand:r'] },
    { name: 'a busy node waits, request or not', targets: [target('a', 'n1')], over: { demanded: demanded({ 'shop/a/app': T0 }), nodeLoad: new Map([['n1', { inFlight: 1, bound: 1 }]]) }, want: [] },
    { name: 'a workload request with many pods on one node runs up to the bound, not one at a time', targets: ['a', 'b', 'c', 'd', 'e'].map((p) => target(p, 'n1', { maxParallelPerNode: 3 })), over: { demanded: demanded(Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((p) => [`shop/${p}/app`, T0]))), maxConcurrent: 10 }, want: ['demand:a', 'demand:b', 'demand:c'] },
    { name: 'the cluster-wide bound counts requests too', targets: [target('a', 'n1'), target('b', 'n2')], over: { demanded: demanded({ 'shop/a/app': T0, 'shop/b/app': T0 }), inFlight: 3 }, want: ['demand:a'] },
  ])('$name', ({ targets, over, want }) => {
    expect(picked(input(targets, over))).toEqual(want);
  });
});
