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
    {
      name: 'checkpoint image gone from the registry (containerd: blob not found) → failed',
      status: [waiting('ErrImagePull', 'failed to pull and unpack image "reg/lazarus/shop/web-app@sha256:ab": failed to copy: httpReadSeeker: failed open: content at http://reg/v2/lazarus/shop/web-app/blobs/sha256:cd not found: not found')],
      verdict: 'failed', message: 'ErrImagePull: failed to pull and unpack image "reg/lazarus/shop/web-app@sha256:ab": failed to copy: httpReadSeeker: failed open: content at http://reg/v2/lazarus/shop/web-app/blobs/sha256:cd not found: not found',
    },
    { name: 'checkpoint image gone (CRI-O: manifest unknown), seen in the back-off → failed', status: [waiting('ImagePullBackOff', 'Back-off pulling image "reg/x@sha256:ab": ErrImagePull: reading manifest sha256:ab in reg/x: manifest unknown')], verdict: 'failed', message: 'ImagePullBackOff: Back-off pulling image "reg/x@sha256:ab": ErrImagePull: reading manifest sha256:ab in reg/x: manifest unknown' },
    { name: 'an unusable image reference → failed', status: [waiting('InvalidImageName', 'couldn\'t parse image name')], verdict: 'failed', message: 'InvalidImageName: couldn\'t parse image name' },
    { name: 'a bare back-off within imagePullTimeout → pending (it may clear)', status: [waiting('ImagePullBackOff', 'Back-off pulling image "reg/x@sha256:ab"')], startedSecondsAgo: 30, verdict: 'pending', message: '' },
    {
      name: 'connection refused to the registry (checkpoint in the image name) within imagePullTimeout → pending, not a restore failure',
      status: [waiting('ErrImagePull', 'failed to pull and unpack image "reg/lazarus/checkpoints/web-app@sha256:ab": failed to resolve reference: dial tcp 10.0.0.5:5000: connect: connection refused')],
      startedSecondsAgo: 119, verdict: 'pending', message: '',
    },
    {
      name: 'a 503 from the registry for imagePullTimeout → unavailable (cold, the checkpoint not blamed)',
      status: [waiting('ErrImagePull', 'failed to pull and unpack image "reg/x@sha256:ab": unexpected status from GET request to http://reg/v2/x/manifests/sha256:ab: 503 Service Unavailable')],
      startedSecondsAgo: 120, verdict: 'unavailable',
      message: 'the checkpoint image could not be pulled for 2m (ErrImagePull: failed to pull and unpack image "reg/x@sha256:ab": unexpected status from GET request to http://reg/v2/x/manifests/sha256:ab: 503 Service Unavailable)',
    },
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
  ])('$name', ({ status, verdict, message, startedSecondsAgo }: { status: ContainerStatusView[]; verdict: string; message: string; startedSecondsAgo?: number }) => {
    const outcome = classifyRestore({ annotations: RESTORED, containerStatuses: status, ...(startedSecondsAgo === undefined ? {} : { startTime: ago(startedSecondsAgo) }) }, OPTS);
    expect(outcome?.verdict).toBe(verdict);
    expect(outcome?.containers).toEqual([{ container: 'app', checkpoint: 'web-app-1', verdict, message }]);
  });

  it('a bare back-off after an ErrImagePull that said "not found" → failed at once (the back-off no longer carries the cause)', () => {
    const gone = 'failed to pull and unpack image "reg/x@sha256:ab": failed to copy: httpReadSeeker: failed open: content at http://reg/v2/x/blobs/sha256:cd not found: not found';
    const outcome = classifyRestore({ annotations: RESTORED, startTime: ago(5), lastPullErrors: { app: gone }, containerStatuses: [waiting('ImagePullBackOff', 'Back-off pulling image "reg/x@sha256:ab"')] }, OPTS);
    expect(outcome?.verdict).toBe('failed');
    expect(outcome?.containers[0]?.message).toBe(`ImagePullBackOff: Back-off pulling image "reg/x@sha256:ab" (after ErrImagePull: ${gone})`);
    const transient = classifyRestore({ annotations: RESTORED, startTime: ago(5), lastPullErrors: { app: 'dial tcp: connection refused' }, containerStatuses: [waiting('ImagePullBackOff', 'Back-off pulling image "reg/x@sha256:ab"')] }, OPTS);
    expect(transient?.verdict).toBe('pending');
  });

  it('a pull error that clears within imagePullTimeout: pending, then running → succeeded (never failed)', () => {
    const pulling = classifyRestore({ annotations: RESTORED, startTime: ago(60), containerStatuses: [waiting('ImagePullBackOff', 'Back-off pulling image "reg/x": ErrImagePull: dial tcp: i/o timeout')] }, OPTS);
    expect(pulling).toMatchObject({ verdict: 'pending', recheckAt: NOW + 60_000 });
    expect(classifyRestore({ annotations: RESTORED, startTime: ago(60), containerStatuses: [running(20)] }, OPTS)?.verdict).toBe('succeeded');
  });

  it.each([
    { name: 'Unschedulable for less than unschedulableTimeout → pending, look again at the bound', since: 59, verdict: 'pending', recheckAt: NOW + 1_000 },
    { name: 'Unschedulable for unschedulableTimeout → unavailable with the scheduler\'s words (boundary)', since: 60, verdict: 'unavailable', why: 'stayed Unschedulable for 1m (0/3 nodes are available: 1 node(s) didn\'t match Pod\'s node affinity/selector, 2 Insufficient cpu.)' },
  ])('$name', ({ since, verdict, recheckAt, why }) => {
    const outcome = classifyRestore({
      annotations: { 'lazarus.dev/restored-from': 'app=cp-app,side=cp-side' },
      unschedulable: { since: ago(since), message: '0/3 nodes are available: 1 node(s) didn\'t match Pod\'s node affinity/selector, 2 Insufficient cpu.' },
    }, OPTS);
    expect(outcome?.verdict).toBe(verdict);
    expect(outcome?.containers.map((c) => [c.checkpoint, c.verdict])).toEqual([['cp-app', verdict], ['cp-side', verdict]]);
    if (recheckAt) expect(outcome?.recheckAt).toBe(recheckAt);
    if (why) expect(outcome?.unschedulable).toBe(why);
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
