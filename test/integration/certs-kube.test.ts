/**
 * Certificates against a real kube-apiserver (test/harness/control-plane.ts, the local control
 * plane): two replicas racing for one Secret, the real answer to a stale caBundle patch, and
 * the API server itself calling a webhook through the caBundle Lazarus injected, before and
 * after a rotation.
 *
 * The harness is imported by a computed path so this branch compiles on its own; when the
 * harness is absent the suite fails loudly (never skips).
 */
import { execFile } from 'node:child_process';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createCertSource, createKubeStore, type CertSource, type CertStore } from '../../certs/index.js';
import { decodeSecret } from '../../certs/manager.js';
import { StoreConflict, type SecretObject, type Webhook, type WebhookConfiguration } from '../../certs/store.js';
import type { KubeClient } from '../../kube/client.js';
import { silentLogger } from '../../runtime/log.js';

interface ControlPlaneLike { client: KubeClient; kubeconfigPath: string; stop(): Promise<void> }
type Start = (options?: { log?: (line: string) => void }) => Promise<ControlPlaneLike>;

async function loadStartControlPlane(): Promise<Start> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const modulePath = path.join(here, '..', 'harness', 'control-plane.js');
  try {
    const mod = (await import(modulePath)) as { startControlPlane?: Start };
    if (typeof mod.startControlPlane === 'function') return mod.startControlPlane;
  } catch (err) {
    throw new Error(`certs-kube needs the control-plane harness (${modulePath}): ${String(err)}`);
  }
  throw new Error(`${modulePath} does not export startControlPlane`);
}

const run = promisify(execFile);
const NS = 'lazarus-certs';
const MWC = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
let cp: ControlPlaneLike;

beforeAll(async () => {
  cp = await (await loadStartControlPlane())({ log: () => undefined });
  await cp.client.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
}, 180_000);
afterAll(async () => { await cp?.stop(); });
// Webhook configurations outlive a test; a stale one whose port gets reused by the next test's
// server would reject admissions with the wrong CA. Each test removes what it created.
const created: string[] = [];
afterEach(async () => {
  for (const name of created.splice(0)) await cp.client.request('DELETE', `${MWC}/${name}`).catch(() => undefined);
});
async function createWebhookConfig(config: WebhookConfiguration): Promise<void> {
  await cp.client.request('POST', MWC, { body: config });
  created.push(config.metadata.name);
}

function webhookConfiguration(name: string, port: number, failurePolicy: 'Fail' | 'Ignore'): WebhookConfiguration {
  const hook = (n: string): Webhook => ({
    name: n, admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy, timeoutSeconds: 5,
    clientConfig: { url: `https://127.0.0.1:${port}/mutate` },
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } },
    rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
  });
  return { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name }, webhooks: [hook('one.certs.lazarus.dev'), hook('two.certs.lazarus.dev')] };
}

/** A webhook that allows everything and counts the calls the API server makes. */
async function startWebhook(source: CertSource): Promise<{ port: number; calls: () => number; close(): Promise<void> }> {
  let calls = 0;
  const server = https.createServer(source.secureContextOptions(), (req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => { raw += c.toString(); });
    req.on('end', () => {
      calls++;
      const review = JSON.parse(raw) as { request: { uid: string } };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request.uid, allowed: true } }));
    });
  });
  const detach = source.attach(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    calls: () => calls,
    close: () => new Promise<void>((resolve) => { detach(); server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

async function createConfigMap(name: string): Promise<void> {
  await cp.client.request('POST', `/api/v1/namespaces/${NS}/configmaps`, { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } } });
}

it('two replicas started at once end with one Secret and one CA, injected into every webhook', async () => {
  await createWebhookConfig(webhookConfiguration('lazarus-race', 1, 'Ignore'));
  let conflicts = 0;
  const counting = (store: CertStore): CertStore => ({
    ...store,
    createSecret: (s) => store.createSecret(s).catch((err: unknown) => { if (err instanceof StoreConflict) conflicts++; throw err; }),
  });
  const start = (): Promise<CertSource> => createCertSource({
    mode: 'secret', store: counting(createKubeStore(cp.client)), secretNamespace: NS, secretName: 'race-tls', webhookConfigName: 'lazarus-race',
    identity: { service: 'wh', namespace: NS, ips: ['127.0.0.1'] }, checkIntervalMs: 60_000,
  }, { logger: silentLogger() });
  const [a, b] = await Promise.all([start(), start()]);
  try {
    expect(conflicts).toBe(1); // both created, the API server refused one
    const secret = await cp.client.request<SecretObject>('GET', `/api/v1/namespaces/${NS}/secrets/race-tls`);
    const stored = decodeSecret(secret);
    expect(secret.type).toBe('kubernetes.io/tls');
    expect([a.caBundle(), b.caBundle()]).toEqual([stored.ca, stored.ca]);
    expect(a.secureContextOptions()).toEqual(b.secureContextOptions());
    const mwc = await cp.client.request<WebhookConfiguration>('GET', `${MWC}/lazarus-race`);
    const b64 = Buffer.from(stored.ca ?? '').toString('base64');
    expect(mwc.webhooks?.map((w) => w.clientConfig?.caBundle)).toEqual([b64, b64]);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
}, 60_000);

it('a caBundle patch whose test operation is stale is reported as a conflict by the real API server', async () => {
  await createWebhookConfig(webhookConfiguration('lazarus-stale', 1, 'Ignore'));
  const store = createKubeStore(cp.client);
  await expect(store.patchWebhookConfig('lazarus-stale', [
    { op: 'test', path: '/webhooks/0/name', value: 'not-this-one' },
    { op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: 'Q0E=' },
  ])).rejects.toBeInstanceOf(StoreConflict);
  await expect(store.updateSecret({ metadata: { name: 'race-tls', namespace: NS, resourceVersion: '1' }, data: {} })).rejects.toBeInstanceOf(StoreConflict);
});

it('the API server calls the webhook through the injected caBundle, before and after a rotation', async () => {
  // failurePolicy Fail: a TLS failure would reject the ConfigMap instead of being ignored.
  const source = await createCertSource({
    mode: 'secret', store: createKubeStore(cp.client), secretNamespace: NS, secretName: 'live-tls', webhookConfigName: 'lazarus-live',
    identity: { service: 'wh', namespace: NS, ips: ['127.0.0.1'] }, certLifetimeMs: 6_000, checkIntervalMs: 200,
  }, { logger: silentLogger() });
  const webhook = await startWebhook(source);
  try {
    await createWebhookConfig(webhookConfiguration('lazarus-live', webhook.port, 'Fail'));
    // The configuration was created after the source started: its next pass injects the caBundle.
    await until(async () => {
      const mwc = await cp.client.request<WebhookConfiguration>('GET', `${MWC}/lazarus-live`);
      return mwc.webhooks?.every((w) => w.clientConfig?.caBundle) ?? false;
    });
    await until(async () => createConfigMap(`before-${Date.now()}`).then(() => true, () => false));
    const firstCert = source.secureContextOptions().cert;
    await until(() => source.secureContextOptions().cert !== firstCert, 15_000);
    const callsBefore = webhook.calls();
    await createConfigMap('after-rotation');
    expect(webhook.calls()).toBeGreaterThan(callsBefore);
  } finally {
    await webhook.close();
    await source.stop();
  }
}, 60_000);

it('the API server keeps admitting through a CA rotation: zero failed admissions with failurePolicy Fail', async () => {
  // CA of 20 s, serving cert of 10 s: the cert renews at ~6.7 s (same CA), the CA rotates at ~13 s
  // and is served from ~18 s. The 5 s propagation delay is how long the API server may take to see
  // the new caBundle: on a loaded 2-core machine its informer has lagged 2.5 s. The clock starts
  // with the source, so a slow warm-up cannot push the rotation out of the measured window.
  const sourceStarted = Date.now();
  const source = await createCertSource({
    mode: 'secret', store: createKubeStore(cp.client), secretNamespace: NS, secretName: 'rotate-tls', webhookConfigName: 'lazarus-rotate',
    identity: { service: 'wh', namespace: NS, ips: ['127.0.0.1'] }, caLifetimeMs: 20_000, certLifetimeMs: 10_000, checkIntervalMs: 200, caPropagationMs: 5_000,
  }, { logger: silentLogger() });
  const webhook = await startWebhook(source);
  const signer = (bundle: string): string => bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)?.[0] ?? '';
  const cas = new Set<string>([signer(source.caBundle())]);
  source.onRotate((s) => cas.add(signer(s.ca)));
  try {
    await createWebhookConfig(webhookConfiguration('lazarus-rotate', webhook.port, 'Fail'));
    await until(async () => createConfigMap(`warmup-${Date.now()}`).then(() => true, () => false));
    const failures: string[] = [];
    let admitted = 0;
    const start = Date.now();
    for (let i = 0; Date.now() - sourceStarted < 22_000; i++) {
      await createConfigMap(`rotate-${i}`).then(() => { admitted++; }, (err: unknown) => { failures.push(`${Date.now() - start} ms: ${String(err)}`); });
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(failures).toEqual([]);
    expect(admitted).toBeGreaterThan(30);
    expect(cas.size).toBeGreaterThanOrEqual(2); // a new signing CA was served during the run
    console.log(`CA rotation through the real API server: ${admitted} admissions, 0 failed, ${webhook.calls()} webhook calls, ${cas.size} signing CAs served`);
  } finally {
    await webhook.close();
    await source.stop();
  }
}, 90_000);

it('lazarus certs (the executable) installs the Secret and caBundle in one shot, and a second run reuses them', async () => {
  await createWebhookConfig(webhookConfiguration('lazarus-cli', 1, 'Ignore'));
  const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');
  const args = [main, 'certs', '--kubeconfig', cp.kubeconfigPath, '--service', 'wh', '--namespace', NS, '--secret', 'cli-tls', '--webhook-config', 'lazarus-cli'];
  await run(process.execPath, args);
  const first = await cp.client.request<SecretObject>('GET', `/api/v1/namespaces/${NS}/secrets/cli-tls`);
  const mwc = await cp.client.request<WebhookConfiguration>('GET', `${MWC}/lazarus-cli`);
  const b64 = Buffer.from(decodeSecret(first).ca ?? '').toString('base64');
  expect(mwc.webhooks?.map((w) => w.clientConfig?.caBundle)).toEqual([b64, b64]);
  await run(process.execPath, args);
  const second = await cp.client.request<SecretObject>('GET', `/api/v1/namespaces/${NS}/secrets/cli-tls`);
  expect(second.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
}, 60_000);

it('the eviction webhook\'s ValidatingWebhookConfiguration of the same name gets the same caBundle (lazarus certs, then a replica restores it)', async () => {
  const VWC = '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations';
  await createWebhookConfig(webhookConfiguration('lazarus-evict', 1, 'Ignore'));
  const evictions = {
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name: 'lazarus-evict' },
    webhooks: [{
      name: 'evictions.lazarus.dev', admissionReviewVersions: ['v1'], sideEffects: 'NoneOnDryRun', failurePolicy: 'Ignore', timeoutSeconds: 5,
      clientConfig: { url: 'https://127.0.0.1:1/validate-eviction' },
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } },
      rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods/eviction'] }],
    }],
  };
  await cp.client.request('POST', VWC, { body: evictions });
  try {
    const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');
    await run(process.execPath, [main, 'certs', '--kubeconfig', cp.kubeconfigPath, '--service', 'wh', '--namespace', NS, '--secret', 'evict-tls', '--webhook-config', 'lazarus-evict']);
    const b64 = Buffer.from(decodeSecret(await cp.client.request<SecretObject>('GET', `/api/v1/namespaces/${NS}/secrets/evict-tls`)).ca ?? '').toString('base64');
    const vwc = await cp.client.request<WebhookConfiguration>('GET', `${VWC}/lazarus-evict`);
    expect(vwc.webhooks?.map((w) => w.clientConfig?.caBundle)).toEqual([b64]);
    // Overwritten (a kubectl apply of the manifest): a secret-mode replica puts it back.
    await cp.client.request('PATCH', `${VWC}/lazarus-evict`, { contentType: 'application/json-patch+json', body: [{ op: 'remove', path: '/webhooks/0/clientConfig/caBundle' }] });
    const source = await createCertSource({
      mode: 'secret', store: createKubeStore(cp.client), secretNamespace: NS, secretName: 'evict-tls', webhookConfigName: 'lazarus-evict',
      identity: { service: 'wh', namespace: NS }, checkIntervalMs: 200,
    }, { logger: silentLogger() });
    try {
      await until(async () => (await cp.client.request<WebhookConfiguration>('GET', `${VWC}/lazarus-evict`)).webhooks?.[0]?.clientConfig?.caBundle === b64);
    } finally { await source.stop(); }
  } finally {
    await cp.client.request('DELETE', `${VWC}/lazarus-evict`).catch(() => undefined);
  }
}, 60_000);

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
