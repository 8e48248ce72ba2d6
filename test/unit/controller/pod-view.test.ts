/**
 * What the controller's pod informer keeps of a pod's container states: everything for a
 * restored pod (its restore is judged from them), only which containers run for any other
 * (all that checkpoint targets and on-demand checkpoints read); and what sibling pods share.
 */
import { podView } from '../../../controller/cache.js';

const statuses = [
  { name: 'app', state: { running: { startedAt: '2026-11-27T12:00:00Z' } }, lastState: { terminated: { exitCode: 137, reason: 'OOMKilled', startedAt: '2026-11-27T11:00:00Z', finishedAt: '2026-11-27T11:59:59Z' } }, restartCount: 1 },
  { name: 'proxy', state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 10s' } }, restartCount: 3 },
];
const raw = (annotations: Record<string, string>): Parameters<typeof podView>[0] => ({
  metadata: { name: 'web-1', namespace: 'shop', uid: 'u1', annotations },
  spec: { nodeName: 'n1', containers: [{ name: 'app' }, { name: 'proxy' }] },
  status: { phase: 'Running', startTime: '2026-11-27T11:00:00Z', containerStatuses: statuses },
} as Parameters<typeof podView>[0]);

describe('podView container states', () => {
  it('keeps every detail of a restored pod', () => {
    expect(podView(raw({ 'lazarus.dev/restored-from': 'app=web-app-1' })).containerStatuses).toEqual([
      { name: 'app', state: { running: { startedAt: '2026-11-27T12:00:00Z' } }, lastState: { terminated: { exitCode: 137, reason: 'OOMKilled', startedAt: '2026-11-27T11:00:00Z', finishedAt: '2026-11-27T11:59:59Z' } }, restartCount: 1 },
      { name: 'proxy', state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 10s' } }, restartCount: 3 },
    ]);
  });

  it('keeps only the running containers of any other pod, sharing one state object', () => {
    const a = podView(raw({}));
    const b = podView(raw({ 'lazarus.dev/restore': 'enabled' }));
    expect(a.containerStatuses).toEqual([{ name: 'app', state: { running: {} } }]);
    expect(a.containerStatuses?.[0]?.state).toBe(b.containerStatuses?.[0]?.state);
    expect(a).toMatchObject({ phase: 'Running', nodeName: 'n1', startTime: '2026-11-27T11:00:00Z', containers: ['app', 'proxy'] });
  });
});

describe('sibling pods share one copy of what they have in common', () => {
  const sibling = (name: string, uid: string): Parameters<typeof podView>[0] => ({
    metadata: {
      name, namespace: 'shop', uid, creationTimestamp: '2026-11-27T11:00:00Z',
      labels: { app: 'web', 'pod-template-hash': 'abc12' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-abc12', uid: 'rs1', controller: true }],
    },
    spec: { nodeName: 'n1', containers: [{ name: 'app' }, { name: 'proxy' }] },
    status: { phase: 'Running', startTime: '2026-11-27T11:00:00Z', containerStatuses: [{ name: 'app', state: { running: {} } }] },
  } as Parameters<typeof podView>[0]);

  it('labels, owner, container names and running containers are the same (frozen) objects; names and UIDs stay their own', () => {
    const a = podView(sibling('web-abc12-1', 'u1'));
    const b = podView(sibling('web-abc12-2', 'u2'));
    for (const field of ['labels', 'ownerReferences', 'containers', 'containerStatuses'] as const) {
      expect(b[field]).toBe(a[field]);
      expect(Object.isFrozen(a[field])).toBe(true);
    }
    expect(a.labels).toEqual({ app: 'web', 'pod-template-hash': 'abc12' });
    expect(a.ownerReferences).toEqual([{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-abc12', controller: true }]);
    expect([a.name, a.uid, b.name, b.uid]).toEqual(['web-abc12-1', 'u1', 'web-abc12-2', 'u2']);
    expect(a.startTime).toBe(a.createdAt);
  });

  it('other labels get their own copy', () => {
    const other = sibling('web-def34-1', 'u3');
    (other.metadata as { labels: Record<string, string> }).labels = { app: 'web', 'pod-template-hash': 'def34' };
    expect(podView(other).labels).toEqual({ app: 'web', 'pod-template-hash': 'def34' });
    expect(podView(other).labels).not.toBe(podView(sibling('x', 'u4')).labels);
  });
});
