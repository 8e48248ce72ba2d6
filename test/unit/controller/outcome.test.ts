import { classifyRestore, parseRestoredFrom, type ContainerStatusView } from '../../../controller/outcome.js';

const NOW = Date.parse('2026-11-27T12:00:00Z');
const ago = (s: number): string => new Date(NOW - s * 1000).toISOString();
const OPTS = { now: NOW, settleMs: 10_000, earlyExitMs: 10_000, unschedulableTimeoutMs: 60_000, imagePullTimeoutMs: 120_000 };
const RESTORED = { 'lazarus.dev/restored-from': 'app=web-app-1' };

const running = (startedSecondsAgo: number): ContainerStatusView => ({ name: 'app', state: { running: { startedAt: ago(startedSecondsAgo) } } });
const waiting = (reason: string, message = ''): ContainerStatusView => ({ name: 'app', state: { waiting: { reason, message } } });
const terminated = (exitCode: number, livedSeconds: number, reason = 'Error'): NonNullable<ContainerStatusView['state']> =>
  ({ terminated: { exitCode, reason, startedAt: ago(livedSeconds + 1), finishedAt: ago(1) } });

describe('classifyRestore', () => {
  it.each([
    { name: 'running past the settle time → succeeded', status: [running(30)], verdict: 'succeeded', message: '' },
    { name: 'running exactly settle time → succeeded (boundary)', status: [running(10)], verdict: 'succeeded', message: '' },
    { name: 'running for less than settle time → pending', status: [running(3)], verdict: 'pending', message: '' },
    { name: 'no container status yet → pending', status: [], verdict: 'pending', message: '' },
    { name: 'ContainerCreating → pending', status: [waiting('ContainerCreating')], verdict: 'pending', message: '' },
    {
      name: 'CreateContainerError → failed with the runtime message',
      status: [waiting('CreateContainerError', 'failed to restore container app: criu failed: type RESTORE errno 0')],
      verdict: 'failed', message: 'CreateContainerError: failed to restore container app: criu failed: type RESTORE errno 0',
    },
    { name: 'a restore message under another reason → failed', status: [waiting('Blocked', 'checkpoint image is for another runtime')], verdict: 'failed', message: 'Blocked: checkpoint image is for another runtime' },
    { name: 'checkpoint image cannot be pulled → failed', status: [waiting('ImagePullBackOff', 'Back-off pulling image')], verdict: 'failed', message: 'ImagePullBackOff: Back-off pulling image' },
    { name: 'terminated non-zero within the first seconds → failed', status: [{ name: 'app', state: terminated(132, 2, 'Error') }], verdict: 'failed', message: 'exited with code 132 after 2s (Error)' },
    { name: 'terminated non-zero after the early window → not a restore failure', status: [{ name: 'app', state: terminated(1, 60) }], verdict: 'pending', message: '' },
    { name: 'terminated with code 0 early → not a failure', status: [{ name: 'app', state: terminated(0, 1, 'Completed') }], verdict: 'pending', message: '' },
    {
      name: 'CrashLoopBackOff after an early crash (lastState) → failed',
      status: [{ name: 'app', state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: terminated(139, 0) }],
      verdict: 'failed', message: 'exited with code 139 after 0s (Error)',
    },
    {
      name: 'running again after an early crash → failed',
      status: [{ name: 'app', state: { running: { startedAt: ago(60) } }, lastState: terminated(1, 3), restartCount: 1 }],
      verdict: 'failed', message: 'exited with code 1 after 3s (Error)',
    },
    {
      name: 'never started (no startedAt) and terminated → failed',
      status: [{ name: 'app', state: { terminated: { exitCode: 128, reason: 'StartError', message: 'restore failed' } } }],
      verdict: 'failed', message: 'exited with code 128 after 0s (StartError: restore failed)',
    },
  ])('$name', ({ status, verdict, message }) => {
    const outcome = classifyRestore({ annotations: RESTORED, containerStatuses: status }, OPTS);
    expect(outcome?.verdict).toBe(verdict);
    expect(outcome?.containers).toEqual([{ container: 'app', checkpoint: 'web-app-1', verdict, message }]);
  });

  it('pending while settling says when to look again', () => {
    const outcome = classifyRestore({ annotations: RESTORED, containerStatuses: [running(3)] }, OPTS);
    expect(outcome?.recheckAt).toBe(NOW + 7_000);
  });

  it('is undefined for a pod that was not restored', () => {
    expect(classifyRestore({ annotations: {}, containerStatuses: [running(30)] }, OPTS)).toBeUndefined();
    expect(classifyRestore({ containerStatuses: [running(30)] }, OPTS)).toBeUndefined();
  });

  it.each([
    { name: 'one failed container fails the pod', side: waiting('CreateContainerError', 'x'), verdict: 'failed' },
    { name: 'all succeeded → succeeded', side: { name: 'side', state: { running: { startedAt: ago(60) } } }, verdict: 'succeeded' },
    { name: 'one still creating → pending', side: waiting('ContainerCreating'), verdict: 'pending' },
  ])('several containers: $name', ({ side, verdict }) => {
    const outcome = classifyRestore({
      annotations: { 'lazarus.dev/restored-from': 'app=cp-app,side=cp-side' },
      containerStatuses: [running(60), { ...side, name: 'side' }],
    }, OPTS);
    expect(outcome?.verdict).toBe(verdict);
    expect(outcome?.containers.map((c) => c.checkpoint)).toEqual(['cp-app', 'cp-side']);
  });

  it('only restored containers count (an unrestored sidecar failing is not a restore failure)', () => {
    const outcome = classifyRestore({
      annotations: RESTORED,
      containerStatuses: [running(60), { name: 'other', state: { waiting: { reason: 'CreateContainerError', message: 'restore failed' } } }],
    }, OPTS);
    expect(outcome?.verdict).toBe('succeeded');
  });
});

describe('parseRestoredFrom', () => {
  it.each([
    { text: 'app=cp1', want: [['app', 'cp1']] },
    { text: 'app=cp1, side=cp2', want: [['app', 'cp1'], ['side', 'cp2']] },
    { text: '=cp,app=,broken,app2=cp2', want: [['app2', 'cp2']] },
    { text: '', want: [] },
  ])('$text', ({ text, want }) => {
    expect([...parseRestoredFrom(text)]).toEqual(want);
  });
});
