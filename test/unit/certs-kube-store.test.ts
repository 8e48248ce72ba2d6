/**
 * The kube-backed store against a tiny local HTTP server playing the API server (real HTTP
 * through kube/client.ts, TLS with a generated CA, no mocks): the requests it sends, how it maps answers, and the
 * two-replica race carried over HTTP.
 */
import fs from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createKubeStore } from '../../certs/kube-store.js';
import { createCertSource } from '../../certs/index.js';
import { generateMaterial } from '../../certs/generate.js';
import { decodeSecret } from '../../certs/manager.js';
import { MemoryStore, StoreConflict, type CertStore, type PatchOperation, type SecretObject } from '../../certs/store.js';
import { createKubeClient, KubeError, loadKubeConfig } from '../../kube/client.js';
import { silentLogger } from '../../runtime/log.js';
import { liveEntropy } from './certs-helpers.js';

interface Seen { method: string; url: string; contentType: string | undefined; authorization: string | undefined; body: unknown }
type Answer = { status: number; body: unknown };

const SECRETS = '/api/v1/namespaces/lz/secrets';
const MWC = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';

let server: https.Server;
let seen: Seen[] = [];
let answer: (s: Seen) => Answer | Promise<Answer> = () => ({ status: 500, body: {} });
let store: CertStore;
let dir: string;

function status(code: number, reason: string, message: string): Answer {
  return { status: code, body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code } };
}

beforeAll(async () => {
  // HTTPS with our own certificates: the kubeconfig trusts only the generated CA.
  const tls = await generateMaterial({ service: 'kubernetes', namespace: 'default', ips: ['127.0.0.1'] }, { caLifetimeMs: 3_600_000, certLifetimeMs: 3_600_000 }, liveEntropy());
  server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => { raw += c.toString(); });
    req.on('end', () => {
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], authorization: req.headers.authorization, body: raw ? JSON.parse(raw) : undefined };
      seen.push(s);
      void Promise.resolve(answer(s)).then((a) => {
        res.writeHead(a.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(a.body));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lazarus-kube-store-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  await fs.writeFile(kubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: t',
    `clusters: [{name: t, cluster: {server: "https://127.0.0.1:${port}", certificate-authority-data: ${Buffer.from(tls.ca).toString('base64')}}}]`,
    'users: [{name: t, user: {token: test-token}}]',
    'contexts: [{name: t, context: {cluster: t, user: t}}]', '',
  ].join('\n'));
  store = createKubeStore(await createKubeClient(loadKubeConfig(kubeconfig)));
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await fs.rm(dir, { recursive: true, force: true });
});
beforeEach(() => { seen = []; });

const secret: SecretObject = { metadata: { name: 'wh-tls', namespace: 'lz', resourceVersion: '7' }, type: 'kubernetes.io/tls', data: { 'tls.crt': 'eA==' } };
const ops: PatchOperation[] = [{ op: 'test', path: '/webhooks/0/name', value: 'a' }, { op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: 'Q0E=' }];

describe('request shapes', () => {
  it.each([
    ['getSecret', () => store.getSecret('lz', 'wh-tls'), 'GET', `${SECRETS}/wh-tls`, undefined, undefined],
    ['createSecret', () => store.createSecret({ ...secret, metadata: { name: 'wh-tls', namespace: 'lz' } }), 'POST', SECRETS, 'application/json',
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'wh-tls', namespace: 'lz' }, type: 'kubernetes.io/tls', data: { 'tls.crt': 'eA==' } }],
    ['updateSecret', () => store.updateSecret(secret), 'PUT', `${SECRETS}/wh-tls`, 'application/json', { apiVersion: 'v1', kind: 'Secret', ...secret }],
    ['getWebhookConfig', () => store.getWebhookConfig('lazarus'), 'GET', `${MWC}/lazarus`, undefined, undefined],
    ['patchWebhookConfig', () => store.patchWebhookConfig('lazarus', ops), 'PATCH', `${MWC}/lazarus`, 'application/json-patch+json', ops],
  ])('%s', async (_name, call, method, url, contentType, body) => {
    answer = () => ({ status: 200, body: { metadata: { name: 'x' } } });
    await expect(call()).resolves.toEqual({ metadata: { name: 'x' } });
    expect(seen).toEqual([{ method, url, contentType, authorization: 'Bearer test-token', body }]);
  });

  it('updateSecret refuses to send an unconditional update', async () => {
    await expect(store.updateSecret({ ...secret, metadata: { name: 'wh-tls', namespace: 'lz' } })).rejects.toThrow(/resourceVersion/);
    expect(seen).toEqual([]);
  });
});

describe('answers', () => {
  it.each([
    ['getSecret 404 is "absent"', () => store.getSecret('lz', 'nope'), status(404, 'NotFound', 'secrets "nope" not found'), 'undefined'],
    ['getWebhookConfig 404 is "absent"', () => store.getWebhookConfig('nope'), status(404, 'NotFound', 'not found'), 'undefined'],
    ['createSecret 409 is a conflict', () => store.createSecret(secret), status(409, 'AlreadyExists', 'secrets "wh-tls" already exists'), 'conflict'],
    ['updateSecret 409 is a conflict', () => store.updateSecret(secret), status(409, 'Conflict', 'the object has been modified'), 'conflict'],
    ['patch 422 (failed test op) is a conflict', () => store.patchWebhookConfig('lazarus', ops), status(422, 'Invalid', 'testing value /webhooks/0/name failed'), 'conflict'],
    ['patch 409 is a conflict', () => store.patchWebhookConfig('lazarus', ops), status(409, 'Conflict', 'modified'), 'conflict'],
    ['createSecret 403 is an error', () => store.createSecret(secret), status(403, 'Forbidden', 'cannot create secrets'), 'error 403'],
    ['updateSecret 422 is an error (not a race)', () => store.updateSecret(secret), status(422, 'Invalid', 'data[tls.key]: Required value'), 'error 422'],
    ['getSecret 500 is an error', () => store.getSecret('lz', 'x'), status(500, 'InternalError', 'etcd down'), 'error 500'],
  ])('%s', async (_name, call, reply, kind) => {
    answer = () => reply;
    const outcome = await call().then((v: unknown) => (v === undefined ? 'undefined' : 'value'), (err: unknown) => {
      if (err instanceof StoreConflict) return 'conflict';
      if (err instanceof KubeError) return `error ${err.status}`;
      return `other ${String(err)}`;
    });
    expect(outcome).toBe(kind);
  });
});

describe('the race, carried over HTTP', () => {
  it('two replicas on kube-backed stores end with one Secret and one CA', async () => {
    // The "API server": routes to a MemoryStore with the real concurrency rules, answers like the API server.
    const backend = new MemoryStore();
    backend.putWebhookConfig({ metadata: { name: 'lazarus' }, webhooks: [{ name: 'a', clientConfig: { url: 'https://127.0.0.1:1/' } }] });
    answer = async (s) => {
      try {
        const name = s.url.split('/').pop() ?? '';
        if (s.method === 'GET' && s.url.startsWith(SECRETS)) {
          const got = await backend.getSecret('lz', name);
          return got ? { status: 200, body: got } : status(404, 'NotFound', 'not found');
        }
        if (s.method === 'POST' && s.url === SECRETS) return { status: 201, body: await backend.createSecret(s.body as SecretObject) };
        if (s.method === 'PUT') return { status: 200, body: await backend.updateSecret(s.body as SecretObject) };
        if (s.method === 'GET' && s.url.startsWith(MWC)) {
          const got = await backend.getWebhookConfig(name);
          return got ? { status: 200, body: got } : status(404, 'NotFound', 'not found');
        }
        if (s.method === 'PATCH') return { status: 200, body: await backend.patchWebhookConfig(name, s.body as PatchOperation[]) };
        return status(405, 'MethodNotAllowed', s.method);
      } catch (err) {
        if (err instanceof StoreConflict) return status(s.method === 'PATCH' ? 422 : 409, 'Conflict', err.message);
        return status(500, 'InternalError', String(err));
      }
    };
    const start = (): ReturnType<typeof createCertSource> => createCertSource({
      mode: 'secret', store, secretNamespace: 'lz', secretName: 'wh-tls', webhookConfigName: 'lazarus',
      identity: { service: 'wh', namespace: 'lz' }, checkIntervalMs: 60_000,
    }, { logger: silentLogger(), entropy: liveEntropy() });
    const [a, b] = await Promise.all([start(), start()]);
    try {
      expect(backend.secretCount()).toBe(1);
      expect(backend.conflicts).toBeGreaterThanOrEqual(1);
      const stored = decodeSecret(await backend.getSecret('lz', 'wh-tls'));
      expect([a.caBundle(), b.caBundle()]).toEqual([stored.ca, stored.ca]);
      expect(a.ready() && b.ready()).toBe(true);
      const mwc = await backend.getWebhookConfig('lazarus');
      expect(mwc?.webhooks?.[0]?.clientConfig?.caBundle).toBe(Buffer.from(stored.ca ?? '').toString('base64'));
      expect(seen.filter((s) => s.method === 'POST')).toHaveLength(2);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
