import type { Checkpoint, CheckpointPhase } from '../../../api/types.js';
import { UsageError } from '../../../cli/flags.js';
import { parseCheckpointConfig, requestCheckpoint } from '../../../controller/checkpoint-command.js';
import { formatCheckpoints, judgeWait } from '../../../controller/checkpoint-wait.js';
import type { KubeClient, RequestOptions } from '../../../kube/client.js';

const REQ = Date.parse('2026-12-06T03:40:00.700Z');

function cp(name: string, container: string, takenAt: string, phase?: CheckpointPhase, sourcePod = 'web-1', reason = ''): Checkpoint {
  return {
    metadata: { name, namespace: 'shop' },
    spec: {
      workload: { kind: 'Deployment', name: 'web' }, container, sourcePod, image: `registry.example/lazarus/shop/${name}@sha256:abc`, baseImage: 'b', specHash: 'h', takenAt,
      origin: { node: 'n1', architecture: 'amd64', kernelVersion: '6.8', criuVersion: 40101, runtime: 'cri-o://1.33.2', cpuFlags: [] },
    },
    ...(phase ? { status: { phase, ...(reason ? { reason } : {}) } } : {}),
  };
}

describe('judgeWait: is `lazarus checkpoint --wait` done?', () => {
  const TAKEN = 'taken 2026-12-06T03:40:02Z: app=/a.tar on node n1; …';
  it.each<{ name: string; answer: string | undefined; containers?: string[]; cps: Checkpoint[]; want: string }>([
    { name: 'no answer yet', answer: 'now', cps: [], want: 'wait: the controller to answer (lazarus.dev/checkpoint: now)' },
    { name: 'accepted, not answered', answer: 'requested 2026-12-06T03:40:01Z', cps: [], want: 'wait: the controller to answer (lazarus.dev/checkpoint: requested 2026-12-06T03:40:01Z)' },
    { name: 'an answer to an older request is not ours', answer: 'taken 2026-12-06T03:39:59Z: x', cps: [], want: 'wait: the controller to answer (lazarus.dev/checkpoint: taken 2026-12-06T03:39:59Z: x)' },
    { name: 'failed: done at once, not ok', answer: 'failed 2026-12-06T03:40:02Z: not opted in: annotate lazarus.dev/restore=enabled', cps: [], want: 'fail: the controller answered: failed: not opted in: annotate lazarus.dev/restore=enabled' },
    { name: 'taken, no Checkpoint yet', answer: TAKEN, cps: [], want: "wait: the agent's Checkpoint of app (no Checkpoint yet)" },
    { name: 'taken, Checkpoint still Pending', answer: TAKEN, cps: [cp('c1', 'app', '2026-12-06T03:40:01Z', 'Pending')], want: "wait: the agent's Checkpoint of app (c1: Pending)" },
    { name: 'taken, Ready (same second as the request counts)', answer: TAKEN, cps: [cp('c1', 'app', '2026-12-06T03:40:00Z', 'Ready')], want: 'ok: 1 checkpoint(s) Ready [c1]' },
    { name: 'older checkpoints and other pods\' do not count', answer: TAKEN, cps: [cp('old', 'app', '2026-12-06T03:39:59Z', 'Ready'), cp('x', 'app', '2026-12-06T03:40:05Z', 'Ready', 'web-2')], want: "wait: the agent's Checkpoint of app (no Checkpoint yet)" },
    { name: 'the first one since the request is ours, even if a later one is Ready', answer: TAKEN, cps: [cp('c2', 'app', '2026-12-06T03:45:00Z', 'Ready'), cp('c1', 'app', '2026-12-06T03:40:01Z', 'Pending')], want: "wait: the agent's Checkpoint of app (c1: Pending)" },
    { name: 'every container needs one', answer: TAKEN, containers: ['app', 'side'], cps: [cp('c1', 'app', '2026-12-06T03:40:01Z', 'Ready')], want: "wait: the agent's Checkpoint of side (no Checkpoint yet)" },
    { name: 'one Failed: done, not ok, with its reason', answer: TAKEN, containers: ['app', 'side'], cps: [cp('c1', 'app', '2026-12-06T03:40:01Z', 'Ready'), cp('c2', 'side', '2026-12-06T03:40:01Z', 'Failed', 'web-1', 'image push failed: 503')], want: 'fail: Checkpoint c2 of container side Failed: image push failed: 503 [c1,c2]' },
    { name: 'all Ready', answer: TAKEN, containers: ['app', 'side'], cps: [cp('c1', 'app', '2026-12-06T03:40:01Z', 'Ready'), cp('c2', 'side', '2026-12-06T03:40:01Z', 'Ready')], want: 'ok: 2 checkpoint(s) Ready [c1,c2]' },
  ])('$name', ({ answer, containers, cps, want }) => {
    const v = judgeWait({ pod: 'web-1', containers: containers ?? ['app'], answer, requestedAt: REQ, checkpoints: cps });
    const got = v.done ? `${v.ok ? 'ok' : 'fail'}: ${v.reason}${v.checkpoints.length ? ` [${v.checkpoints.map((c) => c.metadata.name).join(',')}]` : ''}` : `wait: ${v.waiting}`;
    expect(got).toBe(want);
  });

  it('formatCheckpoints: name, container, image, phase, aligned', () => {
    expect(formatCheckpoints([cp('web-app-1', 'app', 'x', 'Ready'), cp('c', 'sidecar', 'x')])).toEqual([
      'NAME       CONTAINER  IMAGE                                               PHASE',
      'web-app-1  app        registry.example/lazarus/shop/web-app-1@sha256:abc  Ready',
      'c          sidecar    registry.example/lazarus/shop/c@sha256:abc          -',
    ]);
  });
});

describe('parseCheckpointConfig', () => {
  it.each([
    { name: 'pod with defaults', argv: ['pod', 'shop/web-1'], want: { namespace: 'shop', pod: 'web-1', wait: false, timeoutMs: 120_000, intervalMs: 1_000, kubeconfig: undefined } },
    { name: '--wait --timeout', argv: ['pod', 'shop/web-1', '--wait', '--timeout', '30s', '--kubeconfig', '/k'], want: { namespace: 'shop', pod: 'web-1', wait: true, timeoutMs: 30_000, intervalMs: 1_000, kubeconfig: '/k' } },
  ])('$name', ({ argv, want }) => {
    expect(parseCheckpointConfig(argv, {})).toEqual(want);
  });
  it.each([
    { name: 'no arguments', argv: [], says: 'usage: lazarus checkpoint pod NAMESPACE/NAME' },
    { name: 'a deployment', argv: ['deployment', 'shop/web'], says: '"deployment" is not pod' },
    { name: 'no namespace', argv: ['pod', 'web-1'], says: '"web-1" is not NAMESPACE/NAME' },
    { name: 'too many slashes', argv: ['pod', 'a/b/c'], says: '"a/b/c" is not NAMESPACE/NAME' },
    { name: 'a bad timeout, and every problem at once', argv: ['pod', 'web-1', '--timeout', 'soon'], says: '--timeout: "soon" is not a duration like 30s, 5m or 1h; "web-1" is not NAMESPACE/NAME' },
  ])('$name → UsageError', ({ argv, says }) => {
    expect(() => parseCheckpointConfig(argv, {})).toThrow(UsageError);
    expect(() => parseCheckpointConfig(argv, {})).toThrow(says);
  });
});

/** An API server holding one pod and a list of Checkpoints; `script` advances the world per GET of the pod. */
function fakeClient(script: ((step: number) => { answer?: string; checkpoints?: Checkpoint[] })): { client: KubeClient; patches: unknown[] } {
  const patches: unknown[] = [];
  let step = 0;
  let state: { answer?: string; checkpoints?: Checkpoint[] } = {};
  const client: KubeClient = {
    server: 'https://fake',
    async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
      if (method === 'PATCH') { patches.push({ path, type: options.contentType, body: options.body }); state = { answer: 'now' }; return {} as T; }
      if (path.endsWith('/pods/web-1')) {
        state = { ...state, ...script(step++) };
        return { metadata: { annotations: state.answer ? { 'lazarus.dev/checkpoint': state.answer } : {} }, spec: { containers: [{ name: 'app' }] } } as T;
      }
      return { items: state.checkpoints ?? [] } as T;
    },
    async watch() { /* not used */ },
  };
  return { client, patches };
}

describe('requestCheckpoint (against a fake API server)', () => {
  const config = { kubeconfig: undefined, namespace: 'shop', pod: 'web-1', wait: true, timeoutMs: 5_000, intervalMs: 1_000 };
  const run = async (script: Parameters<typeof fakeClient>[0], over: Partial<typeof config> = {}): Promise<{ code: number; lines: string[]; patches: unknown[] }> => {
    const { client, patches } = fakeClient(script);
    let t = REQ;
    const lines: string[] = [];
    const code = await requestCheckpoint({ ...config, ...over }, { client, out: (l) => lines.push(l), now: () => t, sleep: async (ms) => { t += ms; } });
    return { code, lines, patches };
  };

  it('sets `now` with a merge patch, then follows answer and Checkpoint to Ready: exit 0', async () => {
    const { code, lines, patches } = await run((step) => step === 0 ? {} : step === 1 ? { answer: 'requested 2026-12-06T03:40:01Z' }
      : step === 2 ? { answer: 'taken 2026-12-06T03:40:02Z: app=/a.tar', checkpoints: [cp('c1', 'app', '2026-12-06T03:40:02Z', 'Pending')] }
        : { checkpoints: [cp('c1', 'app', '2026-12-06T03:40:02Z', 'Ready')] });
    expect(patches).toEqual([{ path: '/api/v1/namespaces/shop/pods/web-1', type: 'application/merge-patch+json', body: { metadata: { annotations: { 'lazarus.dev/checkpoint': 'now' } } } }]);
    expect(code).toBe(0);
    expect(lines).toEqual([
      'pod shop/web-1: lazarus.dev/checkpoint=now',
      'controller: taken 2026-12-06T03:40:02Z: app=/a.tar',
      'NAME  CONTAINER  IMAGE                                        PHASE',
      'c1    app        registry.example/lazarus/shop/c1@sha256:abc  Ready',
      'ok: 1 checkpoint(s) Ready',
    ]);
  });

  it('a failed answer: exit 1 with the reason', async () => {
    const { code, lines } = await run(() => ({ answer: 'failed 2026-12-06T03:40:02Z: not opted in: annotate lazarus.dev/restore=enabled' }));
    expect(code).toBe(1);
    expect(lines.at(-1)).toBe('failed: the controller answered: failed: not opted in: annotate lazarus.dev/restore=enabled');
  });

  it('no answer within --timeout: exit 1, saying what it waited for', async () => {
    const { code, lines } = await run(() => ({}), { timeoutMs: 3_000 });
    expect(code).toBe(1);
    expect(lines.at(-1)).toBe('failed: timed out after 3s waiting for the controller to answer (lazarus.dev/checkpoint: now)');
  });

  it('without --wait: only the request, exit 0', async () => {
    const { code, lines, patches } = await run(() => ({}), { wait: false });
    expect([code, lines, patches.length]).toEqual([0, ['pod shop/web-1: lazarus.dev/checkpoint=now'], 1]);
  });
});
