import https from 'node:https';
import { readFileSync } from 'node:fs';
import jsonPatch from 'fast-json-patch';
import { Registry } from 'prom-client';
import { createAdmissionHandler } from '../../webhook/handler.js';
import { startWebhookServer, type RunningServer } from '../../webhook/server.js';
import { opsApp } from '../../runtime/ops-app.js';
import { silentLogger } from '../../runtime/log.js';
import { specHash } from '../../api/spec-hash.js';
import type { Pod } from '../../api/types.js';
import { decide, type ClusterView } from '../../webhook/decide.js';
import { NOW, REGISTRY, checkpoint, view } from '../support/builders.js';
import { testTls } from '../support/tls.js';
import { mutate, post, prng } from '../support/http.js';

interface Review { apiVersion: string; kind: string; request: { uid: string; namespace: string; object: Pod } }
const fixture = (name: string): Review => JSON.parse(readFileSync(`test/fixtures/${name}.json`, 'utf8')) as Review;

/** A cluster in which the fixture's pod has one Ready checkpoint per container. */
function clusterFor(review: Review): ClusterView {
  const pod = review.request.object;
  const ns = review.request.namespace;
  const rs = pod.metadata.ownerReferences?.[0]?.name ?? '';
  const deployment = rs.replace(/-[^-]+$/, '');
  return view({
    owners: {
      ReplicaSet: { [`${ns}/${rs}`]: { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment, controller: true }] } },
      Deployment: { [`${ns}/${deployment}`]: { annotations: { 'lazarus.dev/restore': 'enabled' } } },
    },
    checkpoints: pod.spec.containers.map((c) => checkpoint(`${deployment}-${c.name}-1`, {
      namespace: ns, container: c, workload: { kind: 'Deployment', name: deployment }, specHash: specHash(c),
    })),
  });
}

describe('webhook over HTTPS', () => {
  const tls = testTls();
  const review = fixture('admission-review-replicaset');
  let server: RunningServer;
  let ready: string | undefined;
  let explode = false;
  let generation = 0;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 16 });

  beforeAll(async () => {
    const registry = new Registry();
    const log = silentLogger();
    const handle = createAdmissionHandler({
      // As in production: sibling pods reuse answers while the generation stands.
      view: clusterFor(review), generation: () => generation, notReady: () => ready, excludedNamespaces: new Set(['kube-system']),
      defaultRegistry: REGISTRY, clock: () => NOW, log, registry,
      decideFn: (input, v) => {
        if (explode) throw new Error('boom');
        return decide(input, v);
      },
    });
    server = await startWebhookServer({ port: 0, host: '127.0.0.1', tls, handle, ops: opsApp({ registry, notReadyReason: () => ready }), bodyTimeoutMs: 300 });
  });
  afterAll(async () => { agent.destroy(); await server.close(); });
  const send = (body: string | Buffer, opts: { contentType?: string | null; method?: string; path?: string } = {}) =>
    post(server.port, opts.path ?? '/mutate', body, { ca: tls.ca, agent, ...opts });

  it('restores a pod from a ReplicaSet: one UID, a JSONPatch that swaps the image', async () => {
    const reply = await send(JSON.stringify(review));
    expect(reply.status).toBe(200);
    const out = JSON.parse(reply.body);
    expect(out).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request.uid, allowed: true, patchType: 'JSONPatch' } });
    expect(reply.body.split(review.request.uid)).toHaveLength(2); // echoed in exactly one place
    const patch = JSON.parse(Buffer.from(out.response.patch, 'base64').toString()) as jsonPatch.Operation[];
    const pod = jsonPatch.applyPatch(structuredClone(review.request.object), patch).newDocument;
    expect(pod.spec.containers[0]?.image).toMatch(/@sha256:/);
    expect(pod.metadata.annotations?.['lazarus.dev/restored-from']).toMatch(/^app=/);
    expect(out.response.warnings).toEqual([expect.stringMatching(/restored from checkpoint/)]);
  });

  it('dry-run requests get the same answer (the webhook has no side effects)', async () => {
    const dry = structuredClone(review) as Review & { request: { dryRun: boolean } };
    dry.request.dryRun = true;
    const out = JSON.parse((await send(JSON.stringify(dry))).body);
    expect(out.response.patchType).toBe('JSONPatch');
  });

  it.each([
    ['GET', { method: 'GET' }, '', 405, /POST/],
    ['wrong content type', { contentType: 'text/plain' }, '{}', 415, /application\/json/],
    ['no content type', { contentType: null }, '{}', 415, /application\/json/],
    ['empty body', {}, '', 400, /empty body/],
    ['malformed JSON', {}, '{"apiVersion": ', 400, /malformed JSON/],
    ['a JSON array', {}, '[]', 400, /AdmissionReview object/],
    ['wrong apiVersion', {}, JSON.stringify({ ...review, apiVersion: 'admission.k8s.io/v1beta1' }), 400, /expected apiVersion admission.k8s.io\/v1/],
    ['wrong kind', {}, JSON.stringify({ ...review, kind: 'Pod' }), 400, /kind AdmissionReview/],
    ['no request', {}, JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), 400, /no request/],
    ['no uid', {}, JSON.stringify({ ...review, request: { ...review.request, uid: undefined } }), 400, /uid/],
    ['object is not a pod', {}, JSON.stringify({ ...review, request: { ...review.request, object: { spec: 'x' } } }), 400, /not a Pod/],
    ['over the size limit', {}, Buffer.alloc(4 * 1024 * 1024, 0x20), 413, /limit/],
  ] as const)('%s → %s', async (_name, opts, body, status, message) => {
    const reply = await send(body, opts);
    expect(reply.status).toBe(status);
    const out = JSON.parse(reply.body);
    expect(out).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { allowed: false, status: { code: status } } });
    expect(out.response.status.message).toMatch(message);
  });

  it('a client that stops sending mid-body gets 408, not a hung socket', async () => {
    const reply = await new Promise<number>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: server.port, path: '/mutate', method: 'POST', ca: tls.ca, headers: { 'content-type': 'application/json', 'content-length': '1000' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('error', reject);
      req.write('{"apiVersion":');
    });
    expect(reply).toBe(408);
  });

  it('before caches sync: admitted unchanged with a warning', async () => {
    ready = 'caches not synced: checkpoints';
    try {
      const out = JSON.parse((await send(JSON.stringify(review))).body);
      expect(out.response).toEqual({ uid: review.request.uid, allowed: true, warnings: [expect.stringMatching(/not ready.*admitted unchanged/)] });
      expect((await send('', { method: 'GET', path: '/readyz' })).status).toBe(503);
    } finally {
      ready = undefined;
    }
    expect((await send('', { method: 'GET', path: '/readyz' })).status).toBe(200);
  });

  it('an internal error admits unchanged, with the request UID in the warning', async () => {
    explode = true;
    generation++; // the view changed: no reusing the answer decided before
    try {
      const out = JSON.parse((await send(JSON.stringify(review))).body);
      expect(out.response).toEqual({ uid: review.request.uid, allowed: true, warnings: [`lazarus: internal error, pod admitted unchanged (request ${review.request.uid})`] });
    } finally {
      explode = false;
    }
  });

  it('UPDATE and non-pod requests pass untouched', async () => {
    for (const request of [{ ...review.request, operation: 'UPDATE' }, { ...review.request, kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }]) {
      const out = JSON.parse((await send(JSON.stringify({ ...review, request }))).body);
      expect(out.response).toEqual({ uid: review.request.uid, allowed: true });
    }
  });

  it('serves /healthz and Prometheus /metrics', async () => {
    expect((await send('', { method: 'GET', path: '/healthz' })).body).toBe('ok');
    const metrics = (await send('', { method: 'GET', path: '/metrics' })).body;
    expect(metrics).toMatch(/lazarus_webhook_admissions_total\{outcome="restored"\} [1-9]/);
  });

  it('fuzz: 10,000 mutated requests, zero crashes, every answer a valid AdmissionReview or a 4xx', async () => {
    const rand = prng(20261127);
    const base = JSON.stringify(review);
    let restored = 0;
    const statuses = new Map<number, number>();
    for (let batch = 0; batch < 100; batch++) {
      const bodies = Array.from({ length: 100 }, () => {
        const r = rand();
        if (r < 0.1) return base.slice(0, Math.floor(rand() * base.length)); // truncated
        if (r < 0.15) return Buffer.from(Array.from({ length: 64 }, () => Math.floor(rand() * 256))).toString('latin1');
        return JSON.stringify(mutate(review, rand));
      });
      const replies = await Promise.all(bodies.map((b) => send(b)));
      for (const reply of replies) {
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        expect([200, 400]).toContain(reply.status);
        const out = JSON.parse(reply.body);
        expect(out.apiVersion).toBe('admission.k8s.io/v1');
        expect(out.kind).toBe('AdmissionReview');
        expect(typeof out.response.uid).toBe('string');
        expect(typeof out.response.allowed).toBe('boolean');
        if (reply.status === 200) expect(out.response.allowed).toBe(true);
        if (out.response.patch) restored++;
      }
    }
    expect((statuses.get(200) ?? 0) + (statuses.get(400) ?? 0)).toBe(10_000);
    expect(restored).toBeGreaterThan(100); // the mutations did not all miss the interesting path
    // the server is still healthy after all that
    expect((await send(JSON.stringify(review))).status).toBe(200);
  }, 120_000);
});
