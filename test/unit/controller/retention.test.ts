import { planRetention } from '../../../controller/retention.js';
import { DEFAULT_POLICY } from '../../../api/policy.js';
import { specHash } from '../../../api/spec-hash.js';
import type { Checkpoint, CheckpointPhase, Container, WorkloadRef } from '../../../api/types.js';
import { chooseCheckpoints } from '../../../webhook/decide.js';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-11-27T12:00:00Z');

function cp(name: string, phase: CheckpointPhase | undefined, takenHoursAgo: number, extra: { ns?: string; workload?: string; container?: string; failedHoursAgo?: number; pod?: string; hash?: string } = {}): Checkpoint {
  const takenAt = new Date(NOW - takenHoursAgo * HOUR).toISOString();
  return {
    metadata: { name, namespace: extra.ns ?? 'shop', creationTimestamp: takenAt },
    spec: {
      workload: { kind: 'Deployment', name: extra.workload ?? 'web' }, container: extra.container ?? 'app', sourcePod: extra.pod ?? 'p',
      image: `registry.example/lazarus/shop/web@sha256:${'a'.repeat(64)}`, baseImage: 'base', specHash: extra.hash ?? 'h', takenAt,
      origin: { node: 'n', architecture: 'amd64', kernelVersion: '6.8.0', criuVersion: 40101, runtime: 'cri-o://1.33.2', cpuFlags: [] },
    },
    ...(phase ? {
      status: {
        phase,
        ...(extra.failedHoursAgo !== undefined
          ? { lastRestore: { pod: 'x', node: 'n', at: new Date(NOW - extra.failedHoursAgo * HOUR).toISOString(), outcome: 'Failed' as const } }
          : {}),
      },
    } : {}),
  };
}

const names = (list: Checkpoint[]): string[] => list.map((c) => c.metadata.name ?? '').sort();

describe('planRetention', () => {
  it.each([
    {
      name: 'retain 2 over five Ready keeps the two newest',
      checkpoints: [cp('a', 'Ready', 5), cp('b', 'Ready', 4), cp('c', 'Ready', 3), cp('d', 'Ready', 2), cp('e', 'Ready', 1)],
      retain: 2, expire: ['a', 'b', 'c'], remove: [],
    },
    {
      name: 'exactly retain Ready: nothing expires (boundary)',
      checkpoints: [cp('a', 'Ready', 2), cp('b', 'Ready', 1)], retain: 2, expire: [], remove: [],
    },
    {
      name: 'groups are per workload and per namespace; a set holds one checkpoint of each container of its source pod',
      checkpoints: [
        cp('w1-old', 'Ready', 3), cp('w1-new', 'Ready', 1),
        cp('w2', 'Ready', 3, { workload: 'api' }),
        cp('side', 'Ready', 3, { container: 'sidecar' }),
        cp('other-ns', 'Ready', 3, { ns: 'other' }),
      ],
      retain: 1, expire: ['w1-old'], remove: [],
    },
    {
      name: 'rounds of one pod pair by rank, not by name or exact time (containers are checkpointed one after another)',
      checkpoints: [
        cp('app-1', 'Ready', 3, { pod: 'a' }), cp('side-1', 'Ready', 2.9, { pod: 'a', container: 'side' }),
        cp('app-2', 'Ready', 2, { pod: 'a' }), cp('side-2', 'Ready', 1.5, { pod: 'a', container: 'side' }),
        cp('app-3', 'Ready', 1, { pod: 'a' }), cp('side-3', 'Ready', 0.5, { pod: 'a', container: 'side' }),
      ],
      retain: 2, expire: ['app-1', 'side-1'], remove: [],
    },
    {
      name: 'a newer round still in progress (side Pending) never pushes out the restorable set',
      checkpoints: [
        cp('a-app', 'Ready', 2, { pod: 'a' }), cp('a-side', 'Ready', 2, { pod: 'a', container: 'side' }),
        cp('b-app', 'Ready', 1, { pod: 'b' }), cp('b-side', 'Pending', 1, { pod: 'b', container: 'side' }),
      ],
      retain: 1, expire: [], remove: [],
    },
    {
      name: 'an incomplete set older than the kept ones goes (it can never be restored)',
      checkpoints: [
        cp('a-app-old', 'Ready', 3, { pod: 'a' }),
        cp('a-app', 'Ready', 2, { pod: 'a' }), cp('a-side', 'Ready', 2, { pod: 'a', container: 'side' }),
      ],
      retain: 1, expire: ['a-app-old'], remove: [],
    },
    {
      name: 'Unavailable checkpoints are set members (they will be Ready again) and count against retain',
      checkpoints: [cp('u', 'Unavailable', 1, { failedHoursAgo: 0.1 }), cp('r', 'Ready', 2)], retain: 1, expire: ['r'], remove: [],
    },
    {
      name: 'Pending and Failed do not count against retain',
      checkpoints: [cp('p', 'Pending', 0), cp('f', 'Failed', 0.5, { failedHoursAgo: 0.5 }), cp('r1', 'Ready', 2), cp('r2', 'Ready', 1), cp('none', undefined, 0)],
      retain: 2, expire: [], remove: [],
    },
    {
      name: 'Failed older than failed retention is removed; younger kept (boundary counts as old)',
      checkpoints: [cp('f-old', 'Failed', 48, { failedHoursAgo: 25 }), cp('f-edge', 'Failed', 48, { failedHoursAgo: 24 }), cp('f-young', 'Failed', 48, { failedHoursAgo: 23 })],
      retain: 3, expire: [], remove: ['f-edge', 'f-old'],
    },
    {
      name: 'Failed without a restore record ages from creation',
      checkpoints: [cp('f-agent', 'Failed', 30), cp('f-agent-young', 'Failed', 2)],
      retain: 3, expire: [], remove: ['f-agent'],
    },
    {
      name: 'Expired left behind is removed',
      checkpoints: [cp('x', 'Expired', 10), cp('r', 'Ready', 1)], retain: 3, expire: [], remove: ['x'],
    },
    {
      name: 'a retain below 1 keeps the newest anyway',
      checkpoints: [cp('a', 'Ready', 2), cp('b', 'Ready', 1)], retain: 0, expire: ['a'], remove: [],
    },
    {
      name: 'same takenAt: name order decides, stably',
      checkpoints: [cp('m', 'Ready', 1), cp('k', 'Ready', 1), cp('z', 'Ready', 1)], retain: 1, expire: ['m', 'z'], remove: [],
    },
  ])('$name', ({ checkpoints, retain, expire, remove }) => {
    const plan = planRetention({ checkpoints, retain: () => retain, failedRetentionMs: 24 * HOUR, unavailableMs: HOUR, now: NOW });
    expect(names(plan.expire)).toEqual(expire);
    expect(names(plan.remove)).toEqual(remove);
  });

  it('2 containers × 20 replicas, retain 3: three complete sets stay, and the webhook finds one to restore', () => {
    const containers: Container[] = [{ name: 'app', image: 'web:1' }, { name: 'side', image: 'proxy:2' }];
    const hash = Object.fromEntries(containers.map((c) => [c.name, specHash(c)]));
    const checkpoints: Checkpoint[] = [];
    // Two rounds per pod. Per-container jitter makes app's newest come from other pods than side's:
    // pod i's app is i minutes old, its side 19-i minutes (and 30 s) old. Keeping 3 per container
    // (the old rule) kept app of web-0..2 and side of web-19..17: no pod with both, nothing restored.
    for (const round of [0, 1]) {
      for (let i = 0; i < 20; i++) {
        const at = (minutes: number): number => (round * 60 + minutes) / 60;
        checkpoints.push(cp(`web-${i}-app-r${round}`, 'Ready', at(i), { pod: `web-${i}`, hash: hash.app ?? '' }));
        checkpoints.push(cp(`web-${i}-side-r${round}`, 'Ready', at(19 - i + 0.5), { pod: `web-${i}`, container: 'side', hash: hash.side ?? '' }));
      }
    }
    const plan = planRetention({ checkpoints, retain: () => 3, failedRetentionMs: HOUR, unavailableMs: HOUR, now: NOW });
    const gone = new Set(plan.expire);
    const kept = checkpoints.filter((c) => !gone.has(c));
    expect(kept).toHaveLength(6);
    // Each kept set: one source pod and round, with both containers.
    const sets = new Map<string, string[]>();
    for (const c of kept) {
      const key = `${c.spec.sourcePod}/${(c.metadata.name ?? '').split('-').at(-1) ?? ''}`;
      sets.set(key, [...(sets.get(key) ?? []), c.spec.container].sort());
    }
    expect(Object.fromEntries(sets)).toEqual({ 'web-9/r0': ['app', 'side'], 'web-10/r0': ['app', 'side'], 'web-11/r0': ['app', 'side'] });
    const view = { checkpoints: (_ns: string, _w: WorkloadRef, container: string) => kept.filter((c) => c.spec.container === container) };
    const choice = chooseCheckpoints(containers, 'shop', { kind: 'Deployment', name: 'web' }, view, DEFAULT_POLICY, NOW, 'registry.example/lazarus');
    expect(choice).toMatchObject({ ok: true, sourcePod: 'web-9' });
  });

  it('a live source pod names its containers: a round whose side checkpoint does not exist yet is incomplete, and sets that never complete do not pile up', () => {
    const checkpoints = [
      cp('a-app', 'Ready', 5, { pod: 'a' }), cp('a-side', 'Ready', 5, { pod: 'a', container: 'side' }),
      ...[4, 3, 2, 1].map((h) => cp(`b-app-${h}`, 'Ready', h, { pod: 'b' })),
    ];
    const plan = planRetention({ checkpoints, retain: () => 2, podContainers: (_ns, pod) => (pod === 'b' ? ['app', 'side'] : undefined), failedRetentionMs: HOUR, unavailableMs: HOUR, now: NOW });
    // a's set is the only restorable one; of b's four app-only rounds, the two newest may still complete.
    expect(names(plan.expire)).toEqual(['b-app-3', 'b-app-4']);
  });

  it('an Unavailable checkpoint is Ready again after unavailableMs, from its failed restore (boundary counts)', () => {
    const plan = planRetention({
      checkpoints: [cp('due', 'Unavailable', 3, { failedHoursAgo: 1 }), cp('young', 'Unavailable', 3, { failedHoursAgo: 0.5, pod: 'q' })],
      retain: () => 3, failedRetentionMs: 24 * HOUR, unavailableMs: HOUR, now: NOW,
    });
    expect(names(plan.revive)).toEqual(['due']);
    expect(plan.expire).toEqual([]);
  });

  it('asks for retain per namespace and workload', () => {
    const seen: string[] = [];
    const retain = (ns: string, w: WorkloadRef): number => { seen.push(`${ns}/${w.kind}/${w.name}`); return w.name === 'api' ? 1 : 5; };
    const plan = planRetention({
      checkpoints: [cp('a1', 'Ready', 2, { workload: 'api' }), cp('a2', 'Ready', 1, { workload: 'api' }), cp('w1', 'Ready', 2), cp('w2', 'Ready', 1)],
      retain, failedRetentionMs: HOUR, unavailableMs: HOUR, now: NOW,
    });
    expect(names(plan.expire)).toEqual(['a1']);
    expect(seen.sort()).toEqual(['shop/Deployment/api', 'shop/Deployment/web']);
  });

  it('does not change its input', () => {
    const list = [cp('b', 'Ready', 1), cp('a', 'Ready', 2), cp('c', 'Ready', 3)];
    const before = structuredClone(list);
    planRetention({ checkpoints: list, retain: () => 1, failedRetentionMs: HOUR, unavailableMs: HOUR, now: NOW });
    expect(list).toEqual(before);
  });
});

describe('planRetention: a pod whose eviction is held keeps its checkpoints', () => {
  const five = ['p1', 'p2', 'p3', 'p4', 'p5'].map((pod, i) => cp(`${pod}-app`, 'Ready', 1 - i * 0.01, { pod }));
  const plan = (held: ReadonlySet<string>) => planRetention({
    checkpoints: five, now: NOW, failedRetentionMs: HOUR, unavailableMs: HOUR, retain: () => 3,
    podContainers: () => ['app'], held: (_ns, pod) => held.has(pod),
  });

  it('5 replicas drained together with retain 3: none of the held pods loses the checkpoint its eviction waits for', () => {
    expect(names(plan(new Set(['p1', 'p2', 'p3', 'p4', 'p5'])).expire)).toEqual([]);
  });

  it('once those pods are gone (no hold), retain applies again: the two oldest sets expire', () => {
    expect(names(plan(new Set()).expire)).toEqual(['p1-app', 'p2-app']);
  });
});
