import https from 'node:https';
import { readFileSync } from 'node:fs';
import jsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { Registry } from 'prom-client';
import { createEvictionHandler, type EvictionIO } from '../../webhook/eviction-handler.js';
import type { EvictionWarning } from '../../webhook/eviction.js';
import { allowed, review } from '../../webhook/admission.js';
import { startWebhookServer, type RunningServer } from '../../webhook/server.js';
import { opsApp } from '../../runtime/ops-app.js';
import { silentLogger } from '../../runtime/log.js';
import type { Pod } from '../../api/types.js';
import { NOW, container, view } from '../support/builders.js';
import { testTls } from '../support/tls.js';
import { post } from '../support/http.js';
import { kubeEvictionIO } from '../../webhook/eviction-io.js';
import { KubeError, type KubeClient, type RequestOptions } from '../../kube/client.js';

/** Recorded from kube-apiserver by test/e2e/eviction.test.ts (LAZARUS_RECORD=1): POST pods/web-1/eviction. */
const RECORDED = JSON.parse(readFileSync('test/fixtures/admission-review-eviction.json', 'utf8')) as { request: { uid: string; name: string; namespace: string; dryRun: boolean; object: { metadata: { name: string; namespace: string } } } };

/** The recorded review, for another pod of namespace shop. */
function evictionReview(name: string, opts: { dryRun?: boolean; uid?: string } = {}): string {
  const r = structuredClone(RECORDED);
  Object.assign(r.request, { uid: opts.uid ?? `uid-${name}`, name, namespace: 'shop', dryRun: opts.dryRun ?? false });
  r.request.object.metadata = { name, namespace: 'shop' };
  return JSON.stringify(r);
}

function runningPod(name: string, annotations?: Record<string, string>): Pod {
  return {
    metadata: {
      name, namespace: 'shop', uid: `uid-${name}`, resourceVersion: '1', labels: { app: 'web', 'pod-template-hash': '7d9c' },
      ...(annotations ? { annotations } : {}),
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9c', controller: true }],
    },
    spec: { containers: [container()], nodeName: 'node-1' },
    status: { phase: 'Running' },
  };
}

/** Pods in memory; patches applied with the API server's JSON-patch rules (a failed `test` is refused). */
class FakePods implements EvictionIO {
  readonly pods = new Map<string, Pod>();
  readonly patches: Operation[][] = [];
  readonly warnings: EvictionWarning[] = [];
  failGet = false;
  failPatch = false;
  warnHangs = false;
  async getPod(_namespace: string, name: string): Promise<Pod | undefined> {
    await Promise.resolve();
    if (this.failGet) throw new Error('connect ECONNREFUSED');
    return structuredClone(this.pods.get(name));
  }
  async patchPod(_namespace: string, name: string, ops: readonly Operation[]): Promise<boolean> {
    await Promise.resolve();
    if (this.failPatch) throw new Error('pods "x" is forbidden: cannot patch pods');
    const pod = this.pods.get(name);
    if (!pod) return false;
    this.patches.push([...ops]);
    try {
      const next = jsonPatch.applyPatch(structuredClone(pod), [...ops], true, false).newDocument;
      next.metadata.resourceVersion = String(Number(pod.metadata.resourceVersion) + 1);
      this.pods.set(name, next);
      return true;
    } catch { return false; }
  }
  warn(_namespace: string, _uid: string | undefined, warning: EvictionWarning): Promise<void> {
    this.warnings.push(warning);
    return this.warnHangs ? new Promise(() => undefined) : Promise.resolve();
  }
}

describe('POST /validate-eviction over HTTPS', () => {
  const tls = testTls();
  const io = new FakePods();
  const registry = new Registry();
  let server: RunningServer;
  let now = NOW;
  const agent = new https.Agent({ keepAlive: true });

  beforeAll(async () => {
    const log = silentLogger();
    const handleEviction = createEvictionHandler({ view: view(), io, notReady: () => undefined, excludedNamespaces: new Set(['kube-system']), clock: () => now, log, registry });
    server = await startWebhookServer({
      port: 0, host: '127.0.0.1', tls, handle: () => ({ status: 200, body: review('x', allowed()) }), handleEviction,
      ops: opsApp({ registry, notReadyReason: () => undefined }), bodyTimeoutMs: 300,
    });
  });
  afterAll(async () => { agent.destroy(); await server.close(); });
  const send = (body: string, contentType?: string) => post(server.port, '/validate-eviction', body, { ca: tls.ca, agent, ...(contentType ? { contentType } : {}) });

  it.each([
    ['malformed JSON', '{"apiVersion":', 400, /malformed JSON/],
    ['an empty body', '', 400, /empty body/],
    ['another kind of object', JSON.stringify({ apiVersion: 'v1', kind: 'Pod' }), 400, /expected apiVersion admission.k8s.io\/v1/],
  ])('%s gets a well-formed AdmissionReview error, and the server keeps answering', async (_n, body, status, message) => {
    const reply = await send(body);
    expect(reply.status).toBe(status);
    expect(JSON.parse(reply.body)).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { allowed: false, status: { code: status, message: expect.stringMatching(message) } } });
    expect((await send(evictionReview('absent'))).status).toBe(200);
  });

  it('holds an opted-in pod: 429 TooManyRequests, the request written once, then 429 without writing; past the timeout admitted with an Event', async () => {
    io.pods.set('web-7d9c-aaaaa', runningPod('web-7d9c-aaaaa'));
    const first = JSON.parse((await send(evictionReview('web-7d9c-aaaaa'))).body);
    expect(first.response).toMatchObject({ uid: 'uid-web-7d9c-aaaaa', allowed: false, status: { code: 429, reason: 'TooManyRequests', message: expect.stringContaining('Lazarus is checkpointing shop/web-7d9c-aaaaa before its eviction, retry') } });
    expect(io.pods.get('web-7d9c-aaaaa')?.metadata.annotations).toEqual({ 'lazarus.dev/checkpoint': 'now', 'lazarus.dev/eviction-held-since': '2026-11-27T12:00:00Z' });
    expect(io.patches).toHaveLength(1);

    now = NOW + 5_000;
    const again = JSON.parse((await send(evictionReview('web-7d9c-aaaaa'))).body);
    expect(again.response.status.code).toBe(429);
    expect(io.patches).toHaveLength(1);

    now = NOW + 60_000;
    const timedOut = JSON.parse((await send(evictionReview('web-7d9c-aaaaa'))).body);
    expect(timedOut.response).toMatchObject({ allowed: true, warnings: [expect.stringContaining('within checkpoint.evictionTimeout 60s')] });
    expect(io.warnings).toEqual([expect.objectContaining({ reason: 'EvictionNotHeld', pod: 'web-7d9c-aaaaa', workload: { kind: 'Deployment', name: 'web' } })]);
    // A drain retrying while a PodDisruptionBudget refuses: admitted again, but one Event, not one per retry.
    now = NOW + 65_000;
    expect(JSON.parse((await send(evictionReview('web-7d9c-aaaaa'))).body).response.allowed).toBe(true);
    expect(io.warnings).toHaveLength(1);
    now = NOW;
  });

  it('dryRun: admitted, nothing written', async () => {
    io.pods.set('web-7d9c-ddddd', runningPod('web-7d9c-ddddd'));
    const before = io.patches.length;
    const out = JSON.parse((await send(evictionReview('web-7d9c-ddddd', { dryRun: true }))).body);
    expect(out.response).toMatchObject({ allowed: true, warnings: [expect.stringContaining('dry run: a real eviction would be held')] });
    expect(io.patches).toHaveLength(before);
    expect(io.pods.get('web-7d9c-ddddd')?.metadata.annotations).toBeUndefined();
  });

  it('an Event that never completes does not delay the answer', async () => {
    io.warnHangs = true;
    io.pods.set('web-7d9c-eeeee', { ...runningPod('web-7d9c-eeeee'), status: { phase: 'Pending' } });
    const out = JSON.parse((await send(evictionReview('web-7d9c-eeeee'))).body);
    expect(out.response).toMatchObject({ allowed: true, warnings: [expect.stringContaining('not Running')] });
    io.warnHangs = false;
  });

  it('the pod cannot be read: admitted with a warning, never held', async () => {
    io.failGet = true;
    const out = JSON.parse((await send(evictionReview('web-7d9c-fffff'))).body);
    expect(out.response).toMatchObject({ allowed: true, warnings: [expect.stringContaining('internal error (connect ECONNREFUSED)')] });
    io.failGet = false;
    // Nothing says the pod was opted in: no Event.
    expect(io.warnings.filter((w) => w.pod === 'web-7d9c-fffff')).toEqual([]);
  });

  it('the hold cannot be written: admitted with a warning, and an EvictionNotHeld Event on the pod and its workload', async () => {
    io.pods.set('web-7d9c-ggggg', runningPod('web-7d9c-ggggg'));
    io.failPatch = true;
    const out = JSON.parse((await send(evictionReview('web-7d9c-ggggg'))).body);
    io.failPatch = false;
    expect(out.response).toMatchObject({ allowed: true, warnings: [expect.stringContaining('internal error (pods "x" is forbidden: cannot patch pods)')] });
    expect(io.warnings.filter((w) => w.pod === 'web-7d9c-ggggg')).toEqual([{
      reason: 'EvictionNotHeld', pod: 'web-7d9c-ggggg', workload: { kind: 'Deployment', name: 'web' },
      message: expect.stringContaining('admitted without a fresh checkpoint: internal error') as unknown as string,
    }]);
  });

  it('counts held and admitted evictions by reason', async () => {
    const text = await registry.metrics();
    expect(text).toContain('lazarus_webhook_evictions_total{verdict="held",reason="requested"} 1');
    expect(text).toContain('lazarus_webhook_evictions_total{verdict="held",reason="in-progress"} 1');
    expect(text).toContain('lazarus_webhook_evictions_total{verdict="admitted",reason="timeout"} 2');
    expect(text).toContain('lazarus_webhook_evictions_total{verdict="admitted",reason="error"} 2');
    expect(text).toContain('lazarus_webhook_evictions_total{verdict="admitted",reason="invalid"} 3');
  });
});

describe('kubeEvictionIO: the requests it sends', () => {
  interface Sent { method: string; path: string; body?: unknown; contentType?: string }
  function fakeClient(answer: (s: Sent) => unknown): { client: KubeClient; sent: Sent[] } {
    const sent: Sent[] = [];
    const client: KubeClient = {
      server: 'https://127.0.0.1:6443',
      request: async <T>(method: string, p: string, options: RequestOptions = {}): Promise<T> => {
        await Promise.resolve();
        const s: Sent = { method, path: p, body: options.body, ...(options.contentType ? { contentType: options.contentType } : {}) };
        sent.push(s);
        return answer(s) as T;
      },
      watch: async () => { await Promise.resolve(); },
    };
    return { client, sent };
  }

  it('a Warning Event on the pod and on its Deployment', async () => {
    const { client, sent } = fakeClient(() => ({}));
    await kubeEvictionIO(client, { instance: 'wh-1', now: () => NOW }).warn('shop', 'uid-1', { reason: 'EvictionNotHeld', message: 'eviction of shop/web-1 admitted without a fresh checkpoint: timed out', pod: 'web-1', workload: { kind: 'Deployment', name: 'web' } });
    expect(sent.map((s) => [s.method, s.path])).toEqual([['POST', '/api/v1/namespaces/shop/events'], ['POST', '/api/v1/namespaces/shop/events']]);
    expect(sent.map((s) => (s.body as { involvedObject: unknown }).involvedObject)).toEqual([
      { apiVersion: 'v1', kind: 'Pod', name: 'web-1', namespace: 'shop', uid: 'uid-1' },
      { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' },
    ]);
    expect(sent[0]?.body).toMatchObject({ type: 'Warning', reason: 'EvictionNotHeld', source: { component: 'lazarus-webhook' }, reportingInstance: 'wh-1' });
  });

  it('a bare pod gets one Event; a lost patch race is false, a forbidden patch throws', async () => {
    const { client, sent } = fakeClient((s) => {
      if (s.method === 'PATCH' && s.path.endsWith('/raced')) throw new KubeError(422, 'Invalid', 'the server rejected our request: test operation failed');
      if (s.method === 'PATCH' && s.path.endsWith('/forbidden')) throw new KubeError(403, 'Forbidden', 'cannot patch pods');
      if (s.method === 'GET') throw new KubeError(404, 'NotFound', 'not found');
      return {};
    });
    const io = kubeEvictionIO(client, { instance: 'wh-1', now: () => NOW });
    await io.warn('shop', undefined, { reason: 'EvictionNotHeld', message: 'm', pod: 'solo', workload: { kind: 'Pod', name: 'solo' } });
    expect(sent).toHaveLength(1);
    const ops: Operation[] = [{ op: 'test', path: '/metadata/resourceVersion', value: '1' }];
    await expect(io.patchPod('shop', 'raced', ops)).resolves.toBe(false);
    await expect(io.patchPod('shop', 'forbidden', ops)).rejects.toThrow(/cannot patch pods/);
    expect(sent.filter((s) => s.method === 'PATCH').every((s) => s.contentType === 'application/json-patch+json')).toBe(true);
    await expect(io.getPod('shop', 'gone')).resolves.toBeUndefined();
  });
});
