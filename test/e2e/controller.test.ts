/**
 * Issue 7 acceptance, against a real control plane (etcd, kube-apiserver, controller-manager,
 * scheduler): checkpoints through the API server's node proxy to a fake kubelet, restore
 * failure → fallback with the real ReplicaSet controller, retention, and two leader-elected
 * controllers. Issue 12 part 4: checkpoint on demand (`lazarus.dev/checkpoint: now` on a pod and
 * a Deployment, answered in the annotation) and `lazarus checkpoint pod … --wait`.
 */
import { serviceAccountToken, writeTokenKubeconfig } from '../harness/identity.js';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { applyObjects, installCrds, parseObjects } from '../harness/apply.js';
import { createNode, setUnschedulable } from '../harness/nodes.js';
import { createNamespace, listEvents, listPods, waitFor, waitForBoundPods } from '../harness/wait.js';
import { tearDown } from '../harness/teardown.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FAKE_NODE_ADDRESS, startConnectProxy, type ConnectProxy } from '../support/connect-proxy.js';
import { startFakeKubelet, type CheckpointHit, type FakeKubelet } from '../support/fake-kubelet.js';
import { parseControllerConfig, startController, type RunningController } from '../../controller/command.js';
import { pino } from 'pino';
import { silentLogger } from '../../runtime/log.js';
import type { Checkpoint } from '../../api/types.js';
import { createKubeClient, isNotFound, loadKubeConfig, type KubeClient } from '../../kube/client.js';
import { ClusterCache } from '../../kube/cluster-cache.js';
import { specHash } from '../../api/spec-hash.js';
import { createRegistry } from '../../runtime/metrics.js';
import { opsApp } from '../../runtime/ops-app.js';
import { createAdmissionHandler } from '../../webhook/handler.js';
import { startWebhookServer } from '../../webhook/server.js';
import { createAuthority, issueCertificate } from '../harness/pki.js';
import { freePort } from '../harness/processes.js';
import { repoRoot } from '../harness/kube-bin.js';

const CP_API = '/apis/lazarus.dev/v1alpha1';
const LEASE_SECONDS = 4;

let cp: ControlPlane;
let client: KubeClient;
/** The controllers' own client: the lazarus-controller ServiceAccount with manifests/base/rbac.yaml, nothing more. */
let controllerClient: KubeClient;
let controllerKubeconfig: string;
let kubelet: FakeKubelet;
let proxy: ConnectProxy | undefined;
let egressDir: string | undefined;
const controllers = new Map<string, RunningController>();
const children = new Set<ChildProcess>();

function startOne(id: string): Promise<RunningController> {
  const config = parseControllerConfig([
    '--id', id, '--namespace', 'lazarus-system', '--lease-duration', `${LEASE_SECONDS}s`, '--renew-deadline', '3s', '--retry-period', '500ms',
    '--tick', '300ms', '--retention-interval', '1s', '--restore-settle', '1s', '--early-exit', '5s',
    '--backoff-base', '2s', '--backoff-max', '8s', '--jitter-percent', '0', '--metrics-port', '0', '--max-concurrent', '4',
  ], {});
  // LAZARUS_TEST_LOG=/path: the controllers' JSON logs, for debugging.
  const log = process.env.LAZARUS_TEST_LOG ? pino({ level: 'debug', base: { id } }, pino.destination({ dest: process.env.LAZARUS_TEST_LOG, append: true, sync: true })) : silentLogger();
  return startController(config, { client: controllerClient, log }).then((c) => { controllers.set(id, c); return c; });
}

async function policy(name: string, namespaceLabel: string, checkpoint: Record<string, unknown>): Promise<void> {
  await client.request('POST', `${CP_API}/restorepolicies`, {
    body: { apiVersion: 'lazarus.dev/v1alpha1', kind: 'RestorePolicy', metadata: { name }, spec: { namespaceSelector: { matchLabels: { 'lazarus-test': namespaceLabel } }, checkpoint } },
  });
}

/** A running pod as a kubelet would report it: bound to `node`, status Running via the status subresource. */
async function runningPod(namespace: string, name: string, node: string, annotations: Record<string, string> = { 'lazarus.dev/restore': 'enabled' }): Promise<void> {
  await client.request('POST', `/api/v1/namespaces/${namespace}/pods`, {
    body: { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, annotations }, spec: { nodeName: node, containers: [{ name: 'app', image: 'registry.example/web:1.4' }] } },
  });
  await setRunning(namespace, name);
}

async function setRunning(namespace: string, name: string): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await client.request('PATCH', `/api/v1/namespaces/${namespace}/pods/${name}/status`, {
    contentType: 'application/merge-patch+json',
    body: { status: { phase: 'Running', startTime: now, containerStatuses: [{ name: 'app', ready: true, restartCount: 0, image: 'registry.example/web:1.4', imageID: '', state: { running: { startedAt: now } } }] } },
  });
}

function checkpointBody(namespace: string, name: string, workload: { kind: string; name: string }, sourcePod: string, takenAt: Date, hash: string): Record<string, unknown> {
  return {
    apiVersion: 'lazarus.dev/v1alpha1', kind: 'Checkpoint',
    metadata: { name, namespace, labels: { 'lazarus.dev/workload': workload.name, 'lazarus.dev/workload-kind': workload.kind, 'lazarus.dev/container': 'app' } },
    spec: {
      workload, container: 'app', sourcePod, image: `registry.example/lazarus/${namespace}/${name}@sha256:${'a'.repeat(64)}`,
      baseImage: 'registry.example/web:1.4', specHash: hash, takenAt: takenAt.toISOString().replace(/\.\d+Z$/, 'Z'),
      origin: { node: 'node-a', architecture: 'amd64', kernelVersion: '6.8.0-45-generic', criuVersion: 40101, runtime: 'cri-o://1.33.2', cpuFlags: [] },
    },
  };
}

/** Creates a Checkpoint and marks it Ready, as the agent does. */
async function readyCheckpoint(namespace: string, name: string, workload: { kind: string; name: string }, sourcePod: string, takenAt: Date, hash = '0123456789abcdef'): Promise<void> {
  const created = await client.request<Checkpoint>('POST', `${CP_API}/namespaces/${namespace}/checkpoints`, { body: checkpointBody(namespace, name, workload, sourcePod, takenAt, hash) });
  await client.request('PUT', `${CP_API}/namespaces/${namespace}/checkpoints/${name}/status`, { body: { ...created, status: { phase: 'Ready', restores: 0 } } });
}

/**
 * The real Lazarus webhook (webhook/), in-process, registered with the API server by URL and
 * the CA that signed its certificate, for pods in namespaces labelled lazarus-test=<label>.
 */
async function startWebhook(label: string): Promise<{ admissions(): number; stop(): Promise<void> }> {
  const ca = await createAuthority('lazarus-test-webhook-ca');
  const serving = await issueCertificate(ca, { commonName: 'lazarus-webhook', usage: 'server', ips: ['127.0.0.1'] });
  const stop = new AbortController();
  const log = silentLogger();
  const cache = new ClusterCache(client, log);
  cache.start(stop.signal);
  await waitFor(() => cache.notSynced() === undefined, { timeoutMs: 15_000, description: 'webhook caches' });
  const registry = createRegistry('webhook', false);
  const handle = createAdmissionHandler({ view: cache, notReady: () => cache.notSynced(), excludedNamespaces: new Set(['kube-system', 'lazarus-system']), defaultRegistry: 'registry.example/lazarus', clock: Date.now, log, registry });
  let admissions = 0;
  const server = await startWebhookServer({
    port: 0, host: '127.0.0.1', tls: { cert: serving.certPem, key: serving.keyPem },
    handle: (body) => { admissions++; return handle(body); },
    ops: opsApp({ registry, notReadyReason: () => cache.notSynced() }),
  });
  const name = `lazarus-test-${label}`;
  await client.request('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', {
    body: {
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name },
      webhooks: [{
        name: 'pods.lazarus.dev', admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Ignore', timeoutSeconds: 5,
        clientConfig: { url: `https://127.0.0.1:${server.port}/mutate`, caBundle: Buffer.from(ca.certPem).toString('base64') },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
        namespaceSelector: { matchLabels: { 'lazarus-test': label } },
      }],
    },
  });
  // The API server picks up a new webhook configuration asynchronously: probe with a dry-run pod until it is called.
  await waitFor(async () => {
    const before = admissions;
    await client.request('POST', `/api/v1/namespaces/${label}/pods`, {
      query: { dryRun: 'All' },
      body: { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'probe-' }, spec: { containers: [{ name: 'probe', image: 'probe' }] } },
    });
    return admissions > before;
  }, { timeoutMs: 15_000, description: 'the webhook to be called' });
  return {
    admissions: () => admissions,
    async stop() {
      await client.request('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${name}`).catch(() => undefined);
      await server.close();
      stop.abort();
    },
  };
}

/** Applies the shipped RBAC and returns a kubeconfig with a token of the lazarus-controller ServiceAccount. */
async function serviceAccountKubeconfig(file: string): Promise<string> {
  const rbac = parseObjects(await readFile(path.join(repoRoot(), 'manifests', 'base', 'rbac.yaml'), 'utf8'), 'rbac.yaml');
  await applyObjects(client, rbac, { namespace: 'lazarus-system' });
  const token = await serviceAccountToken(client, 'lazarus-system', 'lazarus-controller');
  return writeTokenKubeconfig(file, cp.server, cp.ca.certPem, 'lazarus-controller', token);
}

const hitsFor = (namespace: string, pod: string): CheckpointHit[] => kubelet.hits.filter((h) => h.namespace === namespace && h.pod === pod);

async function metric(c: RunningController, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await c.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want)).reduce((n, v) => n + v.value, 0);
}

const CHECKPOINT = 'lazarus.dev/checkpoint';
type Annotated = { metadata: { annotations?: Record<string, string> } };

async function annotate(objectPath: string, annotations: Record<string, string>): Promise<void> {
  await client.request('PATCH', objectPath, { contentType: 'application/merge-patch+json', body: { metadata: { annotations } } });
}

/** Waits for the controller's answer (`taken …` or `failed …`) in the object's lazarus.dev/checkpoint. */
function answerOf(objectPath: string, timeoutMs = 15_000): Promise<string> {
  return waitFor(async () => {
    const value = (await client.request<Annotated>('GET', objectPath)).metadata.annotations?.[CHECKPOINT];
    return value && /^(taken|failed) /.test(value) ? value : undefined;
  }, { timeoutMs, description: `an answer in ${CHECKPOINT} of ${objectPath}` });
}

/** `lazarus checkpoint …` as a user runs it: the built CLI, the admin kubeconfig. */
function runCli(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot(), 'dist', 'cli', 'main.js'), 'checkpoint', ...args, '--kubeconfig', cp.kubeconfigPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`lazarus checkpoint ${args.join(' ')} did not end in ${timeoutMs} ms: ${stdout}${stderr}`)); }, timeoutMs);
    child.once('exit', (code) => { clearTimeout(timer); children.delete(child); resolve({ code, stdout, stderr }); });
  });
}

const leaders = (): RunningController[] => [...controllers.values()].filter((c) => c.isLeader());

beforeAll(async () => {
  egressDir = await mkdtemp(path.join(os.tmpdir(), 'lazarus-egress-'));
  proxy = await startConnectProxy(path.join(egressDir, 'connect.sock'));
  await proxy.writeEgressConfig(path.join(egressDir, 'egress.yaml'));
  cp = await startControlPlane({ log: () => undefined, extraApiServerArgs: [`--egress-selector-config-file=${path.join(egressDir, 'egress.yaml')}`] });
  client = cp.client;
  await installCrds(client);
  kubelet = await startFakeKubelet();
  // The agent's part: every checkpoint the kubelet writes becomes a Ready Checkpoint object.
  let n = 0;
  kubelet.onCheckpoint = (hit) => readyCheckpoint(hit.namespace, `${hit.pod}-${hit.container}-${++n}`, { kind: 'Pod', name: hit.pod }, hit.pod, new Date(hit.at));
  // The node proxy dials only global unicast addresses: a documentation address, tunnelled by
  // the egress proxy to the fake kubelet on 127.0.0.1.
  await createNode(client, { name: 'node-a', criu: '4.1.1', kubeletPort: kubelet.port, address: FAKE_NODE_ADDRESS });
  await createNode(client, { name: 'node-b', criu: '4.1.1', kubeletPort: kubelet.port, address: FAKE_NODE_ADDRESS });
  await createNamespace(client, 'lazarus-system');
  controllerKubeconfig = await serviceAccountKubeconfig(path.join(egressDir, 'controller.kubeconfig'));
  controllerClient = await createKubeClient(loadKubeConfig(controllerKubeconfig));
  await createNamespace(client, 'periodic', { 'lazarus-test': 'periodic' });
  await createNamespace(client, 'drain', { 'lazarus-test': 'drain' });
  await createNamespace(client, 'restore', { 'lazarus-test': 'restore' });
  await createNamespace(client, 'retention', { 'lazarus-test': 'retention' });
  await policy('periodic', 'periodic', { interval: '3s', onDrain: false, timeoutSeconds: 7, retain: 50 });
  await policy('drain', 'drain', { interval: '', onDrain: true, timeoutSeconds: 7 });
  await policy('restore', 'restore', { interval: '', onDrain: false });
  await policy('retention', 'retention', { interval: '', onDrain: false, retain: 2 });
  await createNamespace(client, 'unschedulable', { 'lazarus-test': 'unschedulable' });
  await client.request('POST', `${CP_API}/restorepolicies`, {
    body: { apiVersion: 'lazarus.dev/v1alpha1', kind: 'RestorePolicy', metadata: { name: 'unschedulable' }, spec: { namespaceSelector: { matchLabels: { 'lazarus-test': 'unschedulable' } }, checkpoint: { interval: '', onDrain: false }, restore: { unschedulableTimeout: '3s' } } },
  });
  await createNamespace(client, 'ondemand', { 'lazarus-test': 'ondemand' });
  await policy('ondemand', 'ondemand', { interval: '', onDrain: false, timeoutSeconds: 9, retain: 50 });
  await startOne('controller-1');
  await startOne('controller-2');
  await waitFor(() => leaders().length === 1, { timeoutMs: 15_000, description: 'a leader' });
}, 120_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await tearDown([
    ['controllers', () => Promise.allSettled([...controllers.values()].map((c) => c.stop()))],
    ['fake kubelet', () => kubelet?.close()],
    ['control plane', () => cp?.stop()],
    ['egress proxy', () => proxy?.close()],
    ['egress dir', () => (egressDir ? rm(egressDir, { recursive: true, force: true }) : undefined)],
  ], { stepMs: 20_000 });
}, 110_000);

describe('controller against a real control plane', () => {
  it('periodic checkpoints reach the kubelet through the node proxy, one controller acting', async () => {
    await runningPod('periodic', 'web-1', 'node-a');
    await runningPod('periodic', 'off', 'node-b', { 'lazarus.dev/restore': 'disabled' });
    const first = await waitFor(() => hitsFor('periodic', 'web-1')[0], { timeoutMs: 15_000, description: 'a checkpoint of periodic/web-1' });
    expect(first).toMatchObject({ container: 'app', timeout: '7', status: 200 });
    // Through the API server: the kubelet sees the API server's kubelet client certificate.
    expect(first.clientCn).toBe('kube-apiserver-kubelet-client');
    await waitFor(() => hitsFor('periodic', 'web-1').length >= 3, { timeoutMs: 20_000, description: 'three periodic checkpoints' });
    const gaps = hitsFor('periodic', 'web-1').slice(0, 3).map((h, i, all) => (i ? h.at - (all[i - 1]?.at ?? 0) : 3000)).slice(1);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(2_500);
    expect(hitsFor('periodic', 'off')).toEqual([]);
    const events = await listEvents(client, 'periodic', { name: 'web-1', reason: 'CheckpointTaken' });
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(events[0]?.message).toContain(kubelet.dir);
  }, 60_000);

  it('on cordon with onDrain: a checkpoint at once, none before', async () => {
    await runningPod('drain', 'leaving', 'node-b');
    await new Promise((r) => setTimeout(r, 2_000));
    expect(hitsFor('drain', 'leaving')).toEqual([]);
    const cordonedAt = Date.now();
    await setUnschedulable(client, 'node-b', true);
    const hit = await waitFor(() => hitsFor('drain', 'leaving')[0], { timeoutMs: 10_000, description: 'a drain checkpoint' });
    expect(hit.at - cordonedAt).toBeLessThan(5_000);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(hitsFor('drain', 'leaving')).toHaveLength(1);
    const events = await listEvents(client, 'drain', { name: 'leaving', reason: 'CheckpointTaken' });
    expect(events[0]?.message).toContain('node node-b is cordoned');
    await setUnschedulable(client, 'node-b', false);
  }, 30_000);

  it('a 500 from the kubelet yields a Warning Event, a metric, and backoff', async () => {
    kubelet.answer = (_ns, pod) => (pod === 'broken' ? 500 : 200);
    await runningPod('periodic', 'broken', 'node-b');
    await waitFor(() => hitsFor('periodic', 'broken').length >= 3, { timeoutMs: 30_000, description: 'three attempts' });
    const at = hitsFor('periodic', 'broken').map((h) => h.at);
    const [a = 0, b = 0, c = 0] = at;
    // Backoff 2 s, then 4 s: never a tight loop.
    expect(b - a).toBeGreaterThanOrEqual(1_900);
    expect(c - b).toBeGreaterThanOrEqual(3_900);
    const events = await listEvents(client, 'periodic', { name: 'broken', reason: 'CheckpointFailed' });
    expect(events[0]).toMatchObject({ type: 'Warning' });
    expect(events[0]?.message).toContain('500');
    expect(events[0]?.message).toContain('criu failed');
    const leader = leaders()[0];
    if (!leader) throw new Error('no leader');
    expect(await metric(leader, 'lazarus_controller_checkpoints_failed_total', { code: '500' })).toBeGreaterThanOrEqual(2);
  }, 45_000);

  it('restore failure: the webhook restores, the runtime fails, the checkpoint is Failed, the pod deleted, the replacement starts cold', async () => {
    const webhook = await startWebhook('restore');
    try {
      const container = { name: 'app', image: 'registry.example/web:1.4' };
      await readyCheckpoint('restore', 'web-app-1', { kind: 'Deployment', name: 'web' }, 'web-old', new Date(), specHash(container));
      await client.request('POST', '/apis/apps/v1/namespaces/restore/deployments', {
        body: {
          apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'restore', annotations: { 'lazarus.dev/restore': 'enabled' } },
          spec: { replicas: 1, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [container] } } },
        },
      });
      type P = { metadata: { name: string; uid: string; annotations?: Record<string, string>; deletionTimestamp?: string }; spec: { nodeName?: string; containers: { image: string }[] } };
      const [pod] = await waitForBoundPods<P>(client, 'restore', 'app=web', 1, 30_000);
      if (!pod) throw new Error('no pod');
      // The real webhook restored it from the Ready checkpoint.
      expect(pod.metadata.annotations?.['lazarus.dev/restored-from']).toBe('app=web-app-1');
      expect(pod.spec.containers[0]?.image).toContain('registry.example/lazarus/restore/web-app-1@sha256:');
      // What the kubelet reports when CRI-O cannot restore (set through the status subresource).
      const failedAt = Date.now();
      await client.request('PATCH', `/api/v1/namespaces/restore/pods/${pod.metadata.name}/status`, {
        contentType: 'application/merge-patch+json',
        body: { status: { phase: 'Pending', containerStatuses: [{ name: 'app', ready: false, restartCount: 0, image: pod.spec.containers[0]?.image ?? '', imageID: '', state: { waiting: { reason: 'CreateContainerError', message: 'failed to restore container app: criu failed: type RESTORE errno 0' } } }] } },
      });
      const failed = await waitFor(async () => {
        const c = await client.request<Checkpoint>('GET', `${CP_API}/namespaces/restore/checkpoints/web-app-1`);
        return c.status?.phase === 'Failed' ? c : undefined;
      }, { timeoutMs: 10_000, description: 'checkpoint Failed' });
      const latency = Date.now() - failedAt;
    console.log(`[controller e2e] restore failure to checkpoint Failed: ${latency} ms`);
    expect(latency).toBeLessThan(10_000);
      expect(failed.status?.reason).toContain('criu failed: type RESTORE errno 0');
      expect(failed.status?.lastRestore).toMatchObject({ pod: pod.metadata.name, outcome: 'Failed' });
      await waitFor(async () => {
        try {
          const p = await client.request<P>('GET', `/api/v1/namespaces/restore/pods/${pod.metadata.name}`);
          return p.metadata.uid !== pod.metadata.uid || Boolean(p.metadata.deletionTimestamp);
        } catch (err) {
          return isNotFound(err);
        }
      }, { timeoutMs: 10_000, description: 'the failed pod deleted' });
      const replacement = await waitFor(async () => {
        const pods = await listPods<P>(client, 'restore', 'app=web');
        return pods.find((p) => p.metadata.uid !== pod.metadata.uid && !p.metadata.deletionTimestamp);
      }, { timeoutMs: 15_000, description: 'a replacement pod from the ReplicaSet controller' });
      // The webhook no longer picks the Failed checkpoint: the replacement starts cold, from the original image.
      expect(replacement.metadata.annotations?.['lazarus.dev/restored-from']).toBeUndefined();
      expect(replacement.spec.containers[0]?.image).toBe('registry.example/web:1.4');
      expect(webhook.admissions()).toBeGreaterThanOrEqual(2);
      const podEvents = await listEvents(client, 'restore', { kind: 'Pod', name: pod.metadata.name, reason: 'RestoreFailed' });
      expect(podEvents[0]).toMatchObject({ type: 'Warning' });
      const deployEvents = await listEvents(client, 'restore', { kind: 'Deployment', name: 'web', reason: 'RestoreFailed' });
      expect(deployEvents[0]?.message).toContain('starts cold');
    } finally {
      await webhook.stop();
    }
  }, 60_000);

  it('a restored pod the scheduler cannot place goes cold after restore.unschedulableTimeout; the checkpoint is Unavailable, not Failed', async () => {
    const webhook = await startWebhook('unschedulable');
    try {
      // No fake node has room for 1000 CPUs: the webhook restores (it does not weigh room), the scheduler cannot place it.
      const container = { name: 'app', image: 'registry.example/web:1.4', resources: { requests: { cpu: '1000' } } };
      await readyCheckpoint('unschedulable', 'big-app-1', { kind: 'Deployment', name: 'big' }, 'big-old', new Date(), specHash(container));
      await client.request('POST', '/apis/apps/v1/namespaces/unschedulable/deployments', {
        body: {
          apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'big', namespace: 'unschedulable', annotations: { 'lazarus.dev/restore': 'enabled' } },
          spec: { replicas: 1, selector: { matchLabels: { app: 'big' } }, template: { metadata: { labels: { app: 'big' } }, spec: { containers: [container] } } },
        },
      });
      type P = { metadata: { name: string; uid: string; annotations?: Record<string, string>; deletionTimestamp?: string }; spec: { nodeName?: string; containers: { image: string }[] }; status?: { conditions?: { type: string; status: string; reason?: string }[] } };
      const pod = await waitFor(async () => (await listPods<P>(client, 'unschedulable', 'app=big'))
        .find((p) => p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable')), { timeoutMs: 30_000, description: 'the restored pod Unschedulable' });
      expect(pod.metadata.annotations?.['lazarus.dev/restored-from']).toBe('app=big-app-1');
      const unavailable = await waitFor(async () => {
        const c = await client.request<Checkpoint>('GET', `${CP_API}/namespaces/unschedulable/checkpoints/big-app-1`);
        return c.status?.phase === 'Unavailable' ? c : undefined;
      }, { timeoutMs: 20_000, description: 'checkpoint Unavailable' });
      expect(unavailable.status?.reason).toMatch(/could not start: stayed Unschedulable for \d+s \(0\/2 nodes are available: 2 Insufficient cpu/);
      expect(unavailable.status?.lastRestore).toMatchObject({ pod: pod.metadata.name, outcome: 'Failed' });
      const replacement = await waitFor(async () => (await listPods<P>(client, 'unschedulable', 'app=big'))
        .find((p) => p.metadata.uid !== pod.metadata.uid && !p.metadata.deletionTimestamp), { timeoutMs: 15_000, description: 'a replacement pod' });
      expect(replacement.metadata.annotations?.['lazarus.dev/restored-from']).toBeUndefined();
      expect(replacement.spec.containers[0]?.image).toBe('registry.example/web:1.4');
      // The bound is validated like the other durations: the API server refuses a bad one.
      await expect(client.request('POST', `${CP_API}/restorepolicies`, {
        body: { apiVersion: 'lazarus.dev/v1alpha1', kind: 'RestorePolicy', metadata: { name: 'bad-bound' }, spec: { restore: { unschedulableTimeout: 'a minute' } } },
      })).rejects.toMatchObject({ status: 422, message: expect.stringContaining('spec.restore.unschedulableTimeout') });
      for (const kind of ['Pod', 'Deployment']) {
        const events = await listEvents(client, 'unschedulable', { kind, name: kind === 'Pod' ? pod.metadata.name : 'big', reason: 'RestoreUnschedulable' });
        expect(events[0]).toMatchObject({ type: 'Warning' });
        expect(events[0]?.message).toContain('set aside (Unavailable)');
      }
    } finally {
      await webhook.stop();
    }
  }, 60_000);

  it('checkpoint.maxParallelPerNode: the API server fills the default 4 and refuses 0, 65 and a string, naming the field', async () => {
    const created = await client.request<{ spec: { checkpoint: { maxParallelPerNode: number } } }>('POST', `${CP_API}/restorepolicies`, {
      body: { apiVersion: 'lazarus.dev/v1alpha1', kind: 'RestorePolicy', metadata: { name: 'parallel-default' }, spec: { namespaceSelector: { matchLabels: { 'lazarus-test': 'none' } } } },
    });
    expect(created.spec.checkpoint.maxParallelPerNode).toBe(4);
    for (const bad of [0, 65, 'four']) {
      await expect(client.request('POST', `${CP_API}/restorepolicies`, {
        body: { apiVersion: 'lazarus.dev/v1alpha1', kind: 'RestorePolicy', metadata: { name: 'parallel-bad' }, spec: { checkpoint: { maxParallelPerNode: bad } } },
      })).rejects.toMatchObject({ status: 422, message: expect.stringContaining('spec.checkpoint.maxParallelPerNode') });
    }
    await client.request('DELETE', `${CP_API}/restorepolicies/parallel-default`);
  }, 30_000);

  it('drain of a node with 9 opted-in pods, maxParallelPerNode 3: 3 at a time through the node proxy, never more, ≈3 rounds', async () => {
    const DELAY = 1_500;
    await createNamespace(client, 'parallel', { 'lazarus-test': 'parallel' });
    await policy('parallel', 'parallel', { interval: '', onDrain: true, timeoutSeconds: 7, maxParallelPerNode: 3 });
    await createNode(client, { name: 'node-c', criu: '4.1.1', kubeletPort: kubelet.port, address: FAKE_NODE_ADDRESS });
    const names = Array.from({ length: 9 }, (_, i) => `p${i}`);
    for (const name of names) await runningPod('parallel', name, 'node-c');
    kubelet.delayMs = DELAY;
    try {
      await new Promise((r) => setTimeout(r, 2_000));
      const cordonedAt = Date.now();
      await setUnschedulable(client, 'node-c', true);
      const hits = await waitFor(() => {
        const h = kubelet.hits.filter((x) => x.namespace === 'parallel');
        return h.length === 9 && h.every((x) => x.doneAt !== undefined) ? h : undefined;
      }, { timeoutMs: 30_000, description: 'nine drain checkpoints answered' });
      expect(new Set(hits.map((h) => h.pod))).toEqual(new Set(names));
      // The most checkpoints in flight at once, from the kubelet's own start and answer times.
      const overlap = Math.max(...hits.map((h) => hits.filter((o) => o.at <= h.at && (o.doneAt ?? 0) > h.at).length));
      expect(overlap).toBe(3);
      const took = Math.max(...hits.map((h) => h.doneAt ?? 0)) - cordonedAt;
      expect(took).toBeGreaterThanOrEqual(3 * DELAY);
      expect(took).toBeLessThan(6 * DELAY); // one at a time would be 9 × 1.5 s
    } finally {
      kubelet.delayMs = 0;
      await setUnschedulable(client, 'node-c', false);
    }
  }, 60_000);

  it('retention with retain 2 over five checkpoints leaves the two newest', async () => {
    const base = Date.now() - 10 * 60_000;
    for (let i = 1; i <= 5; i++) await readyCheckpoint('retention', `web-app-${i}`, { kind: 'Deployment', name: 'web' }, 'web-x', new Date(base + i * 60_000));
    const left = await waitFor(async () => {
      const list = await client.request<{ items: Checkpoint[] }>('GET', `${CP_API}/namespaces/retention/checkpoints`);
      return list.items.length === 2 ? list.items : undefined;
    }, { timeoutMs: 15_000, description: 'two checkpoints left' });
    expect(left.map((c) => c.metadata.name).sort()).toEqual(['web-app-4', 'web-app-5']);
    expect(left.every((c) => c.status?.phase === 'Ready')).toBe(true);
  }, 30_000);

  it('checkpoint on demand: a pod annotated `now` is checkpointed through the node proxy and answered `taken …`', async () => {
    await runningPod('ondemand', 'od-1', 'node-a');
    await new Promise((r) => setTimeout(r, 1_000));
    expect(hitsFor('ondemand', 'od-1')).toEqual([]);
    const podPath = '/api/v1/namespaces/ondemand/pods/od-1';
    const asked = Date.now();
    await annotate(podPath, { [CHECKPOINT]: 'now' });
    const answer = await answerOf(podPath);
    const hits = hitsFor('ondemand', 'od-1');
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ container: 'app', timeout: '9', status: 200, clientCn: 'kube-apiserver-kubelet-client' });
    expect(answer).toMatch(/^taken \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: app=/);
    expect(answer).toContain(hits[0]?.path ?? 'no path');
    expect(answer).toContain('on node node-a; the agent on the node turns each archive into an image and a Checkpoint (Ready later)');
    expect(Date.parse(answer.slice('taken '.length, answer.indexOf(': ')))).toBeGreaterThanOrEqual(Math.floor(asked / 1000) * 1000);
    const requested = await listEvents(client, 'ondemand', { name: 'od-1', reason: 'CheckpointRequested' });
    expect(requested[0]?.message).toContain('1 running container(s) of 1 pod(s)');
    const taken = await listEvents(client, 'ondemand', { name: 'od-1', reason: 'CheckpointTaken' });
    expect(taken.map((e) => e.message).join('\n')).toContain('requested with lazarus.dev/checkpoint');
    const leader = leaders()[0];
    if (!leader) throw new Error('no leader');
    expect(await metric(leader, 'lazarus_controller_checkpoint_requests_total', { kind: 'Pod', result: 'taken' })).toBe(1);
    expect(await metric(leader, 'lazarus_controller_checkpoints_taken_total', { reason: 'demand' })).toBe(1);
    // The answer does not ask again; `now` again (kubectl annotate --overwrite) does.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(hitsFor('ondemand', 'od-1')).toHaveLength(1);
    await annotate(podPath, { [CHECKPOINT]: 'now' });
    await waitFor(() => hitsFor('ondemand', 'od-1').length === 2, { timeoutMs: 10_000, description: 'a second checkpoint' });
    expect(await answerOf(podPath)).toMatch(/^taken /);
  }, 45_000);

  it('checkpoint on demand: a pod of a workload that is not opted in, and that workload, are answered `failed …: not opted in`', async () => {
    await client.request('POST', '/apis/apps/v1/namespaces/ondemand/deployments', {
      body: {
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'plain', namespace: 'ondemand' },
        spec: { replicas: 1, selector: { matchLabels: { app: 'od-plain' } }, template: { metadata: { labels: { app: 'od-plain' } }, spec: { containers: [{ name: 'app', image: 'registry.example/web:1.4' }] } } },
      },
    });
    const [plain] = await waitForBoundPods<{ metadata: { name: string } }>(client, 'ondemand', 'app=od-plain', 1, 30_000);
    if (!plain) throw new Error('no pod');
    await setRunning('ondemand', plain.metadata.name);
    const podPath = `/api/v1/namespaces/ondemand/pods/${plain.metadata.name}`;
    await annotate(podPath, { [CHECKPOINT]: 'now' });
    const answer = await answerOf(podPath);
    expect(answer).toMatch(/^failed \S+Z: not opted in: annotate lazarus.dev\/restore=enabled on the pod or its workload \(lazarus.dev\/restore not set and RestorePolicy ondemand has mode OptIn\)$/);
    const failed = await listEvents(client, 'ondemand', { name: plain.metadata.name, reason: 'CheckpointFailed' });
    expect(failed[0]).toMatchObject({ type: 'Warning' });
    const deployPath = '/apis/apps/v1/namespaces/ondemand/deployments/plain';
    await annotate(deployPath, { [CHECKPOINT]: 'now' });
    expect(await answerOf(deployPath)).toMatch(/^failed \S+Z: not opted in: annotate lazarus.dev\/restore=enabled/);
    // A bare pod without the annotation, for the CLI below.
    await runningPod('ondemand', 'od-off', 'node-b', {});
    await new Promise((r) => setTimeout(r, 1_000));
    expect(hitsFor('ondemand', plain.metadata.name)).toEqual([]);
  }, 45_000);

  it('checkpoint on demand: a Deployment annotated `now` checkpoints each of its pods once and answers `taken 2/2 …` on the Deployment', async () => {
    await client.request('POST', '/apis/apps/v1/namespaces/ondemand/deployments', {
      body: {
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'ondemand', annotations: { 'lazarus.dev/restore': 'enabled' } },
        spec: { replicas: 2, selector: { matchLabels: { app: 'od-web' } }, template: { metadata: { labels: { app: 'od-web' } }, spec: { containers: [{ name: 'app', image: 'registry.example/web:1.4' }] } } },
      },
    });
    type P = { metadata: { name: string } };
    const pods = await waitForBoundPods<P>(client, 'ondemand', 'app=od-web', 2, 30_000);
    for (const p of pods) await setRunning('ondemand', p.metadata.name);
    const names = pods.map((p) => p.metadata.name).sort();
    const deployPath = '/apis/apps/v1/namespaces/ondemand/deployments/web';
    await annotate(deployPath, { [CHECKPOINT]: 'now' });
    const answer = await answerOf(deployPath, 20_000);
    expect(answer).toMatch(new RegExp(`^taken \\S+Z: 2/2 pods \\(${names.join(', ')}\\), archives on their nodes; `));
    for (const name of names) expect(hitsFor('ondemand', name)).toHaveLength(1);
    // The Deployment controller copies the annotation onto the ReplicaSet; that copy is not a second request.
    await new Promise((r) => setTimeout(r, 2_000));
    for (const name of names) expect(hitsFor('ondemand', name)).toHaveLength(1);
    const events = await listEvents(client, 'ondemand', { kind: 'Deployment', name: 'web' });
    expect(events.map((e) => e.reason)).toEqual(expect.arrayContaining(['CheckpointRequested', 'CheckpointTaken']));
  }, 60_000);

  it('lazarus checkpoint pod NS/NAME --wait: asks, waits for the answer and the agent\'s Ready Checkpoint, prints it, exits 0; not opted in exits 1', async () => {
    await runningPod('ondemand', 'od-cli', 'node-b');
    const ok = await runCli(['pod', 'ondemand/od-cli', '--wait', '--timeout', '40s']);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    const hit = hitsFor('ondemand', 'od-cli')[0];
    expect(hit).toBeDefined();
    const lines = ok.stdout.trim().split('\n');
    expect(lines[0]).toBe('pod ondemand/od-cli: lazarus.dev/checkpoint=now');
    expect(lines[1]).toMatch(/^controller: taken \S+Z: app=/);
    expect(lines[2]).toMatch(/^NAME +CONTAINER +IMAGE +PHASE$/);
    // The stand-in agent (kubelet.onCheckpoint) created it: `<pod>-<container>-<n>`, Ready.
    expect(lines[3]).toMatch(/^od-cli-app-\d+ +app +registry\.example\/lazarus\/ondemand\/od-cli-app-\d+@sha256:a{64} +Ready$/);
    expect(lines.at(-1)).toBe('ok: 1 checkpoint(s) Ready');

    const off = await runCli(['pod', 'ondemand/od-off', '--wait', '--timeout', '20s']);
    expect(off.code).toBe(1);
    expect(off.stdout.trim().split('\n').at(-1)).toMatch(/^failed: the controller answered: failed: not opted in: annotate lazarus.dev\/restore=enabled/);
  }, 90_000);

  it('leader election: one acts; stop it and the other takes over within the lease duration, no double checkpoints', async () => {
    const [leader] = leaders();
    if (!leader) throw new Error('no leader');
    expect(leaders()).toHaveLength(1);
    const follower = [...controllers.values()].find((c) => c !== leader);
    if (!follower) throw new Error('no follower');
    expect(await metric(follower, 'lazarus_controller_checkpoints_taken_total')).toBe(0);
    await runningPod('periodic', 'web-2', 'node-a');
    await waitFor(() => hitsFor('periodic', 'web-2').length >= 1, { timeoutMs: 15_000, description: 'a checkpoint of web-2' });

    const stoppedAt = Date.now();
    await leader.stop();
    for (const [id, c] of controllers) if (c === leader) controllers.delete(id);
    await waitFor(() => follower.isLeader(), { timeoutMs: LEASE_SECONDS * 1000 + 2_000, description: 'the follower to lead' });
    const handover = Date.now() - stoppedAt;
    console.log(`[controller e2e] takeover after a clean stop (lease released): ${handover} ms`);
    expect(handover).toBeLessThanOrEqual(LEASE_SECONDS * 1000);
    const lease = await client.request<{ spec: { holderIdentity: string; leaseTransitions: number } }>('GET', '/apis/coordination.k8s.io/v1/namespaces/lazarus-system/leases/lazarus-controller');
    expect(lease.spec.holderIdentity).toBe([...controllers.keys()][0]);
    expect(lease.spec.leaseTransitions).toBeGreaterThanOrEqual(1);

    const before = hitsFor('periodic', 'web-2').length;
    await waitFor(() => hitsFor('periodic', 'web-2').length >= before + 2, { timeoutMs: 15_000, description: 'checkpoints by the new leader' });
    expect(await metric(follower, 'lazarus_controller_checkpoints_taken_total')).toBeGreaterThanOrEqual(2);
    // No double checkpoints: consecutive checkpoints of a container are an interval apart, across the handover too.
    const at = hitsFor('periodic', 'web-2').map((h) => h.at);
    for (let i = 1; i < at.length; i++) expect((at[i] ?? 0) - (at[i - 1] ?? 0)).toBeGreaterThanOrEqual(2_500);
  }, 60_000);
  it('a controller process killed with SIGKILL (no release) is replaced within the lease duration', async () => {
    await Promise.all([...controllers.values()].map((c) => c.stop()));
    controllers.clear();
    const metricsPort = await freePort();
    const child = spawn(process.execPath, [
      path.join(repoRoot(), 'dist', 'cli', 'main.js'), 'controller', '--kubeconfig', controllerKubeconfig, '--id', 'process-1',
      '--namespace', 'lazarus-system', '--lease-duration', `${LEASE_SECONDS}s`, '--renew-deadline', '3s', '--retry-period', '500ms',
      '--tick', '300ms', '--metrics-port', String(metricsPort), '--bind-address', '127.0.0.1', '--log-level', 'warn',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const lease = (): Promise<{ spec: { holderIdentity?: string; leaseTransitions?: number } }> =>
      client.request('GET', '/apis/coordination.k8s.io/v1/namespaces/lazarus-system/leases/lazarus-controller');
    await waitFor(async () => (await lease()).spec.holderIdentity === 'process-1', { timeoutMs: 20_000, description: `process-1 to lead (stderr: ${stderr})` });
    const metrics = await waitFor(async () => {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      const text = await res.text();
      return /^lazarus_controller_leader\{[^}]*\} 1$/m.test(text) ? text : undefined;
    }, { timeoutMs: 10_000, description: 'the process to report leading on /metrics' });
    expect(metrics).toContain('lazarus_controller_checkpoints_taken_total');
    expect(metrics).toContain('lazarus_controller_checkpoint_age_seconds');

    const successor = await startOne('controller-3');
    await new Promise((r) => setTimeout(r, 1_000));
    expect(successor.isLeader()).toBe(false);
    const transitions = (await lease()).spec.leaseTransitions ?? 0;
    const killedAt = Date.now();
    child.kill('SIGKILL');
    await waitFor(() => successor.isLeader(), { timeoutMs: LEASE_SECONDS * 1000 + 3_000, intervalMs: 50, description: 'controller-3 to take over' });
    const took = Date.now() - killedAt;
    console.log(`[controller e2e] takeover after SIGKILL: ${took} ms (lease ${LEASE_SECONDS} s)`);
    // Not before the lease could have expired, and within the lease duration plus the retry period(s).
    expect(took).toBeGreaterThanOrEqual(LEASE_SECONDS * 1000 - 1_000);
    expect(took).toBeLessThanOrEqual(LEASE_SECONDS * 1000 + 1_000);
    expect((await lease()).spec).toMatchObject({ holderIdentity: 'controller-3', leaseTransitions: transitions + 1 });
  }, 60_000);
});
