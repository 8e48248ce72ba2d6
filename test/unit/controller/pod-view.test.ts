/**
 * What the controller's pod informer keeps of a pod's container states: everything for a
 * restored pod (its restore is judged from them), only which containers run for any other
 * (all that checkpoint targets and on-demand checkpoints read).
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
