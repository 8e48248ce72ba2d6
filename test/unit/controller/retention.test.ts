import { planRetention } from '../../../controller/retention.js';
import type { Checkpoint, CheckpointPhase, WorkloadRef } from '../../../api/types.js';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-11-27T12:00:00Z');

function cp(name: string, phase: CheckpointPhase | undefined, takenHoursAgo: number, extra: { ns?: string; workload?: string; container?: string; failedHoursAgo?: number } = {}): Checkpoint {
  const takenAt = new Date(NOW - takenHoursAgo * HOUR).toISOString();
  return {
    metadata: { name, namespace: extra.ns ?? 'shop', creationTimestamp: takenAt },
    spec: {
      workload: { kind: 'Deployment', name: extra.workload ?? 'web' }, container: extra.container ?? 'app', sourcePod: 'p',
      image: 'img', baseImage: 'base', specHash: 'h', takenAt,
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
      name: 'groups are per workload and per container and per namespace',
      checkpoints: [
        cp('w1-old', 'Ready', 3), cp('w1-new', 'Ready', 1),
        cp('w2', 'Ready', 3, { workload: 'api' }),
        cp('side', 'Ready', 3, { container: 'sidecar' }),
        cp('other-ns', 'Ready', 3, { ns: 'other' }),
      ],
      retain: 1, expire: ['w1-old'], remove: [],
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
