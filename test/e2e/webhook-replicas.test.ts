/**
 * Two webhook replicas + certificate rotation while pods are being created: no pod misses its
 * mutation (issue 5), against a real kube-apiserver, controller-manager and scheduler.
 *
 * Both replicas run in this process as the Deployment runs them: secret mode (certs/), with
 * the lazarus-webhook ServiceAccount's token and the RBAC of manifests/base/rbac.yaml, so the
 * manifest is proven to grant what the certificate manager and the informers use. They sit
 * behind ONE loopback address — a round-robin TCP proxy standing in for the Service — which is
 * the configuration's clientConfig.url; the caBundle is the one the replicas inject. The
 * certificates live seconds, so serving certificates and the CA rotate while a Deployment
 * scales up and bare pods are created; every pod must arrive restored.
 */
import { tearDown } from '../harness/teardown.js';
import { serviceAccountToken, writeTokenKubeconfig } from '../harness/identity.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { createNode } from '../harness/nodes.js';
import { createNamespace, waitFor } from '../harness/wait.js';
import { applyObjects, installCrds, parseObjects } from '../harness/apply.js';
import { repoRoot } from '../harness/kube-bin.js';
import { freePort } from '../harness/processes.js';
import { registerWebhook, startWebhook, TEST_REGISTRY, WEBHOOK_CONFIG_NAME, type RunningWebhook } from '../harness/lazarus.js';
import { testTls } from '../support/tls.js';
import { createCertSource, createKubeStore, type CertSource } from '../../certs/index.js';
import type { WebhookConfiguration } from '../../certs/store.js';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../kube/client.js';
import { silentLogger } from '../../runtime/log.js';
import { specHash } from '../../api/spec-hash.js';
import * as K from '../../api/keys.js';
import type { Container, Pod } from '../../api/types.js';

const NS = 'rotation';
const LAZARUS_NS = 'lazarus-system';
const SECRET = 'lazarus-webhook-tls';
const MWC = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${WEBHOOK_CONFIG_NAME}`;
const IMAGE = 'registry.example/web:1.4';
const CONTAINER: Container = { name: 'app', image: IMAGE, args: ['--serve'] };
const ORIGIN = { node: 'node-lost', architecture: 'amd64', kernelVersion: '6.8.0-45-generic', criuVersion: 40101, runtime: 'cri-o://1.33.2', cgroup: 'v2', cpuFlags: ['fpu', 'sse4_2'] };
// Lifetimes of seconds: the serving certificate is renewed every ~4 s, the CA once ~13 s after it was made.
const CERT_LIFETIME_MS = 6_000;
const CA_LIFETIME_MS = 20_000;
const CHECK_INTERVAL_MS = 500;
const CA_PROPAGATION_MS = 3_000;
const BARE_PODS = 120;

type LivePod = Pod & { metadata: Pod['metadata'] & { deletionTimestamp?: string } };

// ------------------------------------------------------------------ a Service on loopback

interface Proxy {
  port: number;
  /** Connections handed to each backend so far. */
  connections: number[];
  setBackends(ports: readonly number[]): void;
  close(): Promise<void>;
}

/** Round-robin TCP proxy: each connection goes to the next backend, like a Service's endpoints. */
async function startProxy(): Promise<Proxy> {
  let backends: readonly number[] = [];
  const connections: number[] = [];
  const sockets = new Set<net.Socket>();
  let next = 0;
  const server = net.createServer((client) => {
    if (backends.length === 0) { client.destroy(); return; }
    const i = next++ % backends.length;
    connections[i] = (connections[i] ?? 0) + 1;
    const upstream = net.connect(backends[i] ?? 0, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port, connections,
    // Like an endpoints change: open connections (the API server keeps them alive) are dropped,
    // so the next requests reach the new backends.
    setBackends(ports) {
      backends = [...ports];
      connections.splice(0, connections.length, ...ports.map(() => 0));
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** What a TLS client that trusts `caPem` and dials 127.0.0.1 is shown: the certificate's fingerprint and issuer. */
function presented(port: number, caPem: string): Promise<{ fingerprint: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, timeout: 5_000 }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve({ fingerprint: cert.fingerprint256, issuer: JSON.stringify(cert.issuer) });
    });
    socket.on('error', reject);
    socket.on('timeout', () => { socket.destroy(); reject(new Error('TLS handshake timed out')); });
  });
}

// ------------------------------------------------------------------ cluster objects

let cp: ControlPlane;

async function readyCheckpoint(name: string, workload: { kind: 'Deployment' | 'Pod'; name: string }): Promise<void> {
  const body = {
    apiVersion: 'lazarus.dev/v1alpha1', kind: 'Checkpoint',
    metadata: { name, namespace: NS, labels: { [K.CHECKPOINT_WORKLOAD]: workload.name, [K.CHECKPOINT_CONTAINER]: CONTAINER.name } },
    spec: {
      workload, container: CONTAINER.name, sourcePod: `${workload.name}-old`,
      image: `${TEST_REGISTRY}/${NS}/${name}@sha256:${'c'.repeat(64)}`,
      baseImage: IMAGE, specHash: specHash(CONTAINER), takenAt: new Date(Date.now() - 60_000).toISOString(), origin: ORIGIN,
    },
  };
  await cp.client.request('POST', `/apis/lazarus.dev/v1alpha1/namespaces/${NS}/checkpoints`, { body });
  await cp.client.request('PATCH', `/apis/lazarus.dev/v1alpha1/namespaces/${NS}/checkpoints/${name}/status`, {
    body: { status: { phase: 'Ready', restores: 0 } }, contentType: 'application/merge-patch+json',
  });
}

function barePod(name: string): Record<string, unknown> {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: NS, labels: { kind: 'bare' }, annotations: { [K.RESTORE]: 'enabled' } },
    spec: { containers: [CONTAINER] },
  };
}

async function livePods(): Promise<LivePod[]> {
  const list = await cp.client.request<{ items: LivePod[] }>('GET', `/api/v1/namespaces/${NS}/pods`);
  return list.items.filter((p) => !p.metadata.deletionTimestamp);
}

async function scale(replicas: number): Promise<void> {
  await cp.client.request('PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/web`, {
    body: { spec: { replicas } }, contentType: 'application/merge-patch+json',
  });
}

/** The shipped RBAC, and a client that authenticates as the webhook's ServiceAccount. */
async function webhookServiceAccount(): Promise<{ client: KubeClient; kubeconfig: string }> {
  const rbac = parseObjects(await readFile(path.join(repoRoot(), 'manifests', 'base', 'rbac.yaml'), 'utf8'), 'rbac.yaml');
  await applyObjects(cp.client, rbac, { namespace: LAZARUS_NS });
  const token = await serviceAccountToken(cp.client, LAZARUS_NS, 'lazarus-webhook');
  const file = await writeTokenKubeconfig(path.join(cp.dir, 'webhook-sa.kubeconfig'), cp.server, cp.ca.certPem, 'lazarus-webhook', token);
  return { client: await createKubeClient(loadKubeConfig(file)), kubeconfig: file };
}

// ------------------------------------------------------------------ two replicas

interface Replica { certs: CertSource; webhook: Omit<RunningWebhook, 'tls'> }

async function startReplica(client: KubeClient): Promise<Replica> {
  // As `lazarus webhook --cert-secret=lazarus-webhook-tls --webhook-config=lazarus --service=lazarus-webhook` builds it,
  // plus the IP SAN the loopback URL needs and lifetimes of seconds.
  const certs = await createCertSource({
    mode: 'secret', store: createKubeStore(client), secretNamespace: LAZARUS_NS, secretName: SECRET, webhookConfigName: WEBHOOK_CONFIG_NAME,
    identity: { service: 'lazarus-webhook', namespace: LAZARUS_NS, ips: ['127.0.0.1'] },
    caLifetimeMs: CA_LIFETIME_MS, certLifetimeMs: CERT_LIFETIME_MS, checkIntervalMs: CHECK_INTERVAL_MS, caPropagationMs: CA_PROPAGATION_MS,
  }, { logger: silentLogger() });
  try {
    return { certs, webhook: await startWebhook(client, { certs }) };
  } catch (err) {
    await certs.stop();
    throw err;
  }
}

let replicas: Replica[] = [];
let proxy: Proxy | undefined;
let serviceAccountKubeconfig = '';
let executable: ChildProcess | undefined;

async function caBundleInConfig(): Promise<string> {
  const mwc = await cp.client.request<WebhookConfiguration>('GET', MWC);
  return Buffer.from(mwc.webhooks?.[0]?.clientConfig?.caBundle ?? '', 'base64').toString('utf8');
}

beforeAll(async () => {
  cp = await startControlPlane({ schedulerConfig: { podInitialBackoffSeconds: 1, podMaxBackoffSeconds: 2 } });
  await installCrds(cp.client);
  await createNamespace(cp.client, LAZARUS_NS);
  await createNamespace(cp.client, NS);
  await createNode(cp.client, { name: 'node-a', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'cri-o://1.33.2', cpuFlags: ['fpu', 'sse4_2', 'avx2'], pods: '1000' });
  const sa = await webhookServiceAccount();
  const saClient = sa.client;
  serviceAccountKubeconfig = sa.kubeconfig;

  // The configuration exists first, without a caBundle; the replicas inject it.
  proxy = await startProxy();
  await registerWebhook(cp.client, proxy.port);
  // Started at once: they race for the Secret, one CA wins, both serve it.
  const started = await Promise.allSettled([startReplica(saClient), startReplica(saClient)]);
  replicas = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  for (const r of started) if (r.status === 'rejected') throw r.reason;
  proxy.setBackends(replicas.map((r) => r.webhook.port));
  await waitFor(async () => (await caBundleInConfig()) === replicas[0]?.certs.caBundle(), { timeoutMs: 15_000, description: 'the caBundle injected by the replicas' });

  // Workloads with Ready checkpoints whose spec hash matches, known to both replicas' caches.
  await cp.client.request('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, { body: {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name: 'web', namespace: NS, annotations: { [K.RESTORE]: 'enabled' } },
    spec: { replicas: 0, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [CONTAINER] } } },
  } });
  await readyCheckpoint('web-app-1', { kind: 'Deployment', name: 'web' });
  for (let i = 0; i < BARE_PODS; i++) await readyCheckpoint(`solo-${i}-app-1`, { kind: 'Pod', name: `solo-${i}` });
  await readyCheckpoint('warmup-app-1', { kind: 'Pod', name: 'warmup' });
  await waitFor(() => replicas.every((r) => r.webhook.cache.checkpoints(NS, { kind: 'Pod', name: `solo-${BARE_PODS - 1}` }, 'app').length === 1
    && r.webhook.cache.checkpoints(NS, { kind: 'Deployment', name: 'web' }, 'app').length === 1
    && r.webhook.cache.get('Deployment', NS, 'web') !== undefined), { timeoutMs: 30_000, description: 'checkpoints and the Deployment in both replicas\' caches' });
  // The API server calls through the proxy with the injected caBundle: a dry-run pod comes back restored.
  await waitFor(async () => {
    const pod = await cp.client.request<LivePod>('POST', `/api/v1/namespaces/${NS}/pods`, { body: barePod('warmup'), query: { dryRun: 'All' } });
    return pod.metadata.annotations?.[K.RESTORED_FROM] !== undefined;
  }, { timeoutMs: 20_000, description: 'a dry-run pod mutated through the proxy' });
}, 180_000);

afterAll(() => tearDown([
  ['webhook executable', async () => {
    if (!executable || executable.exitCode !== null) return;
    const exited = new Promise((resolve) => executable?.once('exit', resolve));
    executable.kill('SIGKILL');
    await exited;
  }],
  ['proxy', () => proxy?.close()],
  ...replicas.flatMap((r, i) => [[`replica ${i} webhook`, () => r.webhook.stop()], [`replica ${i} certificates`, () => r.certs.stop()]] as const),
  ['control plane', () => cp?.stop()],
]), 180_000);

it('two replicas behind one address, certificates rotating while pods are created: every pod is restored', async () => {
  if (!proxy) throw new Error('no proxy');
  const port = proxy.port;
  const seen: Array<{ at: number; fingerprint: string; issuer: string }> = [];
  const handshakeFailures: string[] = [];
  const started = Date.now();
  const stopSampling = new AbortController();
  // A TLS client that trusts only what the API server trusts (the configuration's caBundle), several times a second.
  const sampler = (async () => {
    while (!stopSampling.signal.aborted) {
      try {
        seen.push({ at: Date.now() - started, ...(await presented(port, await caBundleInConfig())) });
      } catch (err) {
        handshakeFailures.push(`${Date.now() - started} ms: ${String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const distinct = (key: 'fingerprint' | 'issuer'): number => new Set(seen.map((s) => s[key])).size;

  // Steady creation: a bare annotated pod every ~150 ms, the Deployment scaled up by 8 every 2 s.
  // It runs until the CA has rotated and enough pods exist (at most 60 s).
  let bare = 0;
  let deploymentReplicas = 0;
  const createErrors: string[] = [];
  try {
    for (let tick = 0; Date.now() - started < 60_000; tick++) {
      if (bare < BARE_PODS) {
        await cp.client.request('POST', `/api/v1/namespaces/${NS}/pods`, { body: barePod(`solo-${bare}`) }).catch((err: unknown) => { createErrors.push(String(err)); });
        bare++;
      }
      if (tick % 13 === 0 && deploymentReplicas < 120) {
        deploymentReplicas += 8;
        await scale(deploymentReplicas);
      }
      const enough = bare >= BARE_PODS && deploymentReplicas >= 48 && distinct('issuer') >= 2 && distinct('fingerprint') >= 4;
      if (enough) break;
      await new Promise((r) => setTimeout(r, 150));
    }
    // Every pod the ReplicaSet controller was asked for exists.
    await waitFor(async () => (await livePods()).filter((p) => p.metadata.labels?.app === 'web').length === deploymentReplicas, { timeoutMs: 60_000, description: `${deploymentReplicas} pods of the Deployment` });
  } finally {
    stopSampling.abort();
    await sampler;
  }

  const pods = await livePods();
  const missed = pods.filter((p) => p.metadata.annotations?.[K.RESTORED_FROM] === undefined).map((p) => p.metadata.name);
  const admissions = replicas.map((r) => r.webhook.admissions());
  console.log(`webhook replicas under rotation: ${pods.length} pods (${bare} bare, ${deploymentReplicas} from the Deployment) in ${Date.now() - started} ms; `
    + `${missed.length} missed; admissions per replica ${admissions.join('/')}; proxy connections ${proxy.connections.join('/')}; `
    + `${seen.length} TLS samples, ${distinct('fingerprint')} serving certificates, ${distinct('issuer')} CAs, ${handshakeFailures.length} handshake failures`);

  expect(createErrors).toEqual([]);
  expect(pods.length).toBeGreaterThanOrEqual(BARE_PODS + 48);
  expect(missed).toEqual([]);
  for (const p of pods) expect(p.spec.containers[0]?.image).toMatch(/^registry\.example\/lazarus\/rotation\//);
  // The served certificate changed while pods were created, the CA too, and a client trusting the
  // injected caBundle never failed a handshake.
  expect(seen[0]?.fingerprint).not.toBe(seen[seen.length - 1]?.fingerprint);
  expect(distinct('fingerprint')).toBeGreaterThanOrEqual(4);
  expect(distinct('issuer')).toBeGreaterThanOrEqual(2);
  expect(handshakeFailures).toEqual([]);
  // Both replicas served admissions.
  for (const n of admissions) expect(n).toBeGreaterThan(0);
}, 180_000);

it('restores the caBundle after someone overwrites it, and pods are restored again', async () => {
  const foreign = testTls().ca;
  const mwc = await cp.client.request<WebhookConfiguration>('GET', MWC);
  const patched = await cp.client.request<WebhookConfiguration>('PATCH', MWC, {
    body: (mwc.webhooks ?? []).map((_, i) => ({ op: 'replace', path: `/webhooks/${i}/clientConfig/caBundle`, value: Buffer.from(foreign).toString('base64') })),
    contentType: 'application/json-patch+json',
  });
  const overwritten = Date.now();
  expect(patched.webhooks?.map((w) => Buffer.from(w.clientConfig?.caBundle ?? '', 'base64').toString('utf8'))).toEqual([foreign]);
  const restored = await waitFor(async () => {
    const bundle = await caBundleInConfig();
    return bundle !== foreign && bundle === replicas[0]?.certs.caBundle() ? bundle : undefined;
  }, { timeoutMs: 10_000, intervalMs: 50, description: 'the replicas to restore the caBundle' });
  console.log(`caBundle restored ${Date.now() - overwritten} ms after it was overwritten`);
  expect(restored).toContain('BEGIN CERTIFICATE');

  // Through the API server again: a new pod is mutated (retried while the API server reloads its webhook client).
  await readyCheckpoint('after-overwrite-app-1', { kind: 'Pod', name: 'after-overwrite' });
  await waitFor(() => replicas.every((r) => r.webhook.cache.checkpoints(NS, { kind: 'Pod', name: 'after-overwrite' }, 'app').length === 1), { description: 'the checkpoint in both caches' });
  const pod = await waitFor(async () => {
    const p = await cp.client.request<LivePod>('POST', `/api/v1/namespaces/${NS}/pods`, { body: barePod('after-overwrite'), query: { dryRun: 'All' } });
    return p.metadata.annotations?.[K.RESTORED_FROM] ? p : undefined;
  }, { timeoutMs: 10_000, description: 'a pod mutated after the caBundle was restored' });
  expect(pod.metadata.annotations?.[K.RESTORED_FROM]).toBe('app=after-overwrite-app-1');
}, 60_000);

it('the lazarus webhook executable in secret mode (manifests/base args) joins: same Secret, rotating, admitting through the caBundle', async () => {
  if (!proxy) throw new Error('no proxy');
  const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');
  const metricsPort = await freePort();
  const proc = spawn(process.execPath, [main, 'webhook', `--kubeconfig=${serviceAccountKubeconfig}`, '--port=0', `--metrics-port=${metricsPort}`, '--bind-address=127.0.0.1',
    '--cert-secret=lazarus-webhook-tls', '--webhook-config=lazarus', '--service=lazarus-webhook',
    '--cert-ip=127.0.0.1', '--cert-lifetime=6s', '--ca-lifetime=20s', '--cert-check-interval=500ms',
    // The checkpoints below are pushed there (as the in-process replicas are told): a webhook that
    // trusts no registry restores nothing.
    `--registry=${TEST_REGISTRY}`], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, POD_NAMESPACE: LAZARUS_NS } });
  executable = proc;
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: proc.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number; certificates?: string };
        if (entry.msg === 'webhook serving' && entry.port && entry.certificates === 'secret') resolve(entry.port);
      } catch { /* not JSON */ }
    });
    proc.once('exit', (code) => reject(new Error(`lazarus webhook exited early with ${String(code)}`)));
  });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status === 200, { timeoutMs: 20_000, description: 'the executable ready' });

  // Its certificate is trusted through the injected caBundle and changes as the Secret rotates.
  const first = await presented(port, await caBundleInConfig());
  const later = await waitFor(async () => {
    const now = await presented(port, await caBundleInConfig());
    return now.fingerprint !== first.fingerprint ? now : undefined;
  }, { timeoutMs: 15_000, intervalMs: 200, description: 'the executable to serve a renewed certificate' });
  expect(later.fingerprint).not.toBe(first.fingerprint);

  // The API server admits through it alone.
  proxy.setBackends([port]);
  try {
    await readyCheckpoint('via-executable-app-1', { kind: 'Pod', name: 'via-executable' });
    const pod = await waitFor(async () => {
      const p = await cp.client.request<LivePod>('POST', `/api/v1/namespaces/${NS}/pods`, { body: barePod('via-executable'), query: { dryRun: 'All' } });
      return p.metadata.annotations?.[K.RESTORED_FROM] ? p : undefined;
    }, { timeoutMs: 15_000, description: 'a pod mutated by the executable' });
    expect(pod.metadata.annotations?.[K.RESTORED_FROM]).toBe('app=via-executable-app-1');
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/lazarus_webhook_admissions_total\{outcome="restored"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/lazarus_webhook_certificate_rotations_total\{[^}]*\} [1-9]/);
    expect(metrics).toMatch(/lazarus_webhook_certificate_expiry_timestamp_seconds\{[^}]*\} \d/);
  } finally {
    proxy.setBackends(replicas.map((r) => r.webhook.port));
  }

  const exit = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  expect(await exit).toBe(0);
}, 90_000);
