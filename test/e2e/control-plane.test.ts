/**
 * The local control plane is real: the ReplicaSet controller makes pods, the scheduler binds
 * them and calls extenders, the API server calls admission webhooks and proxies to kubelets.
 * Also records the wire data (ExtenderArgs, AdmissionReview) into test/fixtures/ when
 * LAZARUS_RECORD=1 or a fixture is missing.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { tearDown } from '../harness/teardown.js';
import { startControlPlane, isAlive, type ControlPlane } from '../harness/control-plane.js';
import { createNode } from '../harness/nodes.js';
import { createNamespace, listEvents, waitFor, waitForBoundPods } from '../harness/wait.js';
import { installCrds } from '../harness/apply.js';
import { repoRoot } from '../harness/kube-bin.js';
import { startFakeKubelet, startRecordingExtender, startRecordingWebhook, type ExtenderArgs, type RecordingServer, type RecordingWebhook } from '../harness/fakes.js';
import { NODE_CRIU_VERSION, ORIGIN_ARCH, ORIGIN_CPU_FLAGS, ORIGIN_CRIU, ORIGIN_KERNEL, ORIGIN_NODE, ORIGIN_RUNTIME, ORIGINAL_IMAGES, RESTORE, RESTORED_FROM, LABEL_ARCH } from '../../api/keys.js';

const AVOID = 'test.lazarus.dev/avoid';
const fixtures = path.join(repoRoot(), 'test', 'fixtures');
const record = process.env.LAZARUS_RECORD === '1';

async function saveFixture(name: string, value: unknown): Promise<void> {
  const file = path.join(fixtures, name);
  if (record || !existsSync(file)) await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

let cp: ControlPlane;
let extender: RecordingServer;
let webhook: RecordingWebhook;
let kubelet: RecordingServer;

beforeAll(async () => {
  // The extender must listen before the scheduler starts: its URL is in the scheduler config.
  // "/full" fails the nodes a pod's test.lazarus.dev/avoid annotation names, with a reason.
  extender = await startRecordingExtender((args, prefix) => {
    if (prefix !== 'full') return {};
    const avoid = (args.Pod.metadata.annotations?.[AVOID] ?? '').split(',').filter(Boolean);
    return Object.fromEntries(avoid.map((n) => [n, `test extender: ${n} is avoided`]));
  });
  webhook = await startRecordingWebhook();
  cp = await startControlPlane({
    // Each controller with its own service account, as in real clusters: the recorded
    // AdmissionReviews then carry the userInfo a real webhook sees.
    useServiceAccountCredentials: true,
    extenders: [
      { urlPrefix: `${extender.url}/nc`, nodeCacheCapable: true, weight: 1 },
      { urlPrefix: `${extender.url}/full`, nodeCacheCapable: false, weight: 1 },
    ],
    // A second scheduler with its own extender, for one schedulerName only.
    additionalSchedulers: [{ profiles: ['lazarus-scheduler'], extenders: [{ urlPrefix: `${extender.url}/second`, nodeCacheCapable: true }] }],
  });
  kubelet = await startFakeKubelet(cp.ca, (call) => ({ status: 200, body: call.path.startsWith('/checkpoint/') ? '{"items":["/var/lib/kubelet/checkpoints/x.tar"]}' : 'ok' }));
  // Two schedulable nodes that differ the way Lazarus cares about, and a cordoned one whose
  // kubelet is the fake above (for the node proxy).
  await createNode(cp.client, { name: 'node-a', arch: 'amd64', kernel: '6.8.0-45-generic', runtime: 'cri-o://1.33.2', criu: '4.1.1', cpuFlags: ['fpu', 'sse4_2', 'avx2'], cgroup: 'v2', images: ['registry.example/web:1.4'] });
  await createNode(cp.client, { name: 'node-b', arch: 'amd64', kernel: '6.1.0-26-amd64', runtime: 'containerd://2.1.4', criu: '4.1.2', cpuFlags: ['fpu', 'sse4_2'], cgroup: 'v2' });
  // Never reaches an extender for restored pods: the webhook's required affinity (criu Gt) excludes it.
  await createNode(cp.client, { name: 'node-old', arch: 'amd64', kernel: '6.1.0-26-amd64', runtime: 'cri-o://1.30.1', criu: '3.17.1', cpuFlags: ['fpu', 'sse4_2', 'avx2'] });
  await createNode(cp.client, { name: 'node-k', criu: '4.1.1', kubeletPort: kubelet.port, unschedulable: true });
}, 15 * 60_000);

afterAll(() => tearDown([
  ['control plane', () => cp?.stop()],
  ['extender, webhook and kubelet', () => Promise.all([extender?.close(), webhook?.close(), kubelet?.close()])],
]), 60_000);

interface PodView { metadata: { name: string; annotations?: Record<string, string>; ownerReferences?: Array<{ kind: string; name: string }> }; spec: { nodeName?: string } }

function deployment(name: string, namespace: string, image: string, extra: { annotations?: Record<string, string>; podAnnotations?: Record<string, string>; affinity?: unknown } = {}): unknown {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name, namespace, annotations: extra.annotations ?? {} },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: extra.podAnnotations ?? {} },
        spec: { containers: [{ name: 'app', image, ports: [{ containerPort: 8080 }], env: [{ name: 'MODE', value: 'prod' }] }], ...(extra.affinity ? { affinity: extra.affinity } : {}) },
      },
    },
  };
}

describe('local control plane', () => {
  it('serves a sane /version', async () => {
    const v = await cp.client.request<{ gitVersion: string; major: string; minor: string }>('GET', '/version');
    expect(v).toMatchObject({ gitVersion: 'v1.35.4', major: '1', minor: '35' });
  });

  it('keeps fake nodes Ready and untainted', async () => {
    // The node-lifecycle controller would mark heartbeat-less nodes NotReady and taint them.
    const node = await cp.client.request<{ spec: { taints?: unknown[] }; status: { conditions: Array<{ type: string; status: string }>; nodeInfo: { architecture: string } }; metadata: { labels: Record<string, string> } }>('GET', '/api/v1/nodes/node-a');
    expect(node.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(node.spec.taints ?? []).toEqual([]);
    expect(node.metadata.labels).toMatchObject({ [NODE_CRIU_VERSION]: '40101', [LABEL_ARCH]: 'amd64' });
    expect(node.status.nodeInfo.architecture).toBe('amd64');
  });

  it('runs the ReplicaSet controller and the scheduler: a Deployment gets a bound pod', async () => {
    await createNamespace(cp.client, 'basic');
    await cp.client.request('POST', '/apis/apps/v1/namespaces/basic/deployments', { body: deployment('web', 'basic', 'registry.example/web:1.0') });
    const [pod] = await waitForBoundPods<PodView>(cp.client, 'basic', 'app=web');
    expect(['node-a', 'node-b', 'node-old']).toContain(pod?.spec.nodeName);
    expect(pod?.metadata.ownerReferences?.[0]?.kind).toBe('ReplicaSet');
  });

  it('calls the configured extenders in both modes and honours their filter', async () => {
    await createNamespace(cp.client, 'sched');
    // A pod shaped like one Lazarus' webhook restored, so the recorded args are realistic.
    const restored = {
      [RESTORED_FROM]: 'app=web-app-20261127t120000z',
      [ORIGINAL_IMAGES]: 'app=registry.example/web:1.4',
      [ORIGIN_NODE]: 'node-7', [ORIGIN_ARCH]: 'amd64', [ORIGIN_KERNEL]: '6.8.0-45-generic',
      [ORIGIN_CRIU]: '4.1.1', [ORIGIN_RUNTIME]: 'cri-o://1.33.2', [ORIGIN_CPU_FLAGS]: 'fpu sse4_2 avx2',
      [AVOID]: 'node-b',
    };
    // ...including the required node affinity the webhook adds (arch, criu-version Gt origin-1).
    const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [
      { key: LABEL_ARCH, operator: 'In', values: ['amd64'] }, { key: NODE_CRIU_VERSION, operator: 'Gt', values: ['40100'] },
    ] }] } } };
    const checkpointImage = `registry.example/lazarus/sched/web-app@sha256:${'5e'.repeat(32)}`;
    await cp.client.request('POST', '/apis/apps/v1/namespaces/sched/deployments', {
      body: deployment('web', 'sched', checkpointImage, { annotations: { [RESTORE]: 'enabled' }, podAnnotations: restored, affinity }),
    });
    const [pod] = await waitForBoundPods<PodView>(cp.client, 'sched', 'app=web');
    expect(pod?.spec.nodeName).toBe('node-a');

    const argsFor = (prefix: string): ExtenderArgs => {
      const call = extender.calls.find((c) => c.path === `/${prefix}/filter` && (JSON.parse(c.body) as ExtenderArgs).Pod.metadata.name === pod?.metadata.name);
      if (!call) throw new Error(`no /${prefix}/filter call for ${pod?.metadata.name ?? '?'}`);
      return JSON.parse(call.body) as ExtenderArgs;
    };
    const nodeCache = argsFor('nc');
    const full = argsFor('full');
    expect(nodeCache.NodeNames?.slice().sort()).toEqual(['node-a', 'node-b']);
    expect(nodeCache.Nodes ?? null).toBeNull();
    expect(full.Nodes?.items.map((n) => n.metadata.name).sort()).toEqual(['node-a', 'node-b']);
    expect(full.NodeNames ?? null).toBeNull();
    expect(full.Pod.metadata.annotations?.[RESTORED_FROM]).toBe('app=web-app-20261127t120000z');
    await saveFixture('extender-args-nodecache.json', nodeCache);
    await saveFixture('extender-args-full.json', full);
  });

  it('shows the extender failure reasons in the scheduler events', async () => {
    await cp.client.request('POST', '/api/v1/namespaces/sched/pods', {
      body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'nowhere', annotations: { [AVOID]: 'node-a,node-b,node-old' } }, spec: { containers: [{ name: 'app', image: 'registry.example/web:1.4' }] } },
    });
    const events = await waitFor(async () => {
      const list = await listEvents(cp.client, 'sched', { kind: 'Pod', name: 'nowhere', reason: 'FailedScheduling' });
      return list.length > 0 ? list : undefined;
    }, { description: 'a FailedScheduling event for pod nowhere' });
    expect(events[0]?.message).toContain('test extender: node-a is avoided');
  });

  it('runs an additional scheduler whose extender sees only its own pods', async () => {
    await cp.client.request('POST', '/api/v1/namespaces/sched/pods', {
      body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'second' }, spec: { schedulerName: 'lazarus-scheduler', containers: [{ name: 'app', image: 'registry.example/web:1.4' }] } },
    });
    const pod = await waitFor(async () => {
      const p = await cp.client.request<PodView>('GET', '/api/v1/namespaces/sched/pods/second');
      return p.spec.nodeName ? p : undefined;
    }, { description: 'pod second to be bound by lazarus-scheduler' });
    expect(['node-a', 'node-b', 'node-old']).toContain(pod.spec.nodeName);
    const podsAt = (prefix: string): string[] => extender.calls.filter((c) => c.path.startsWith(`/${prefix}/`)).map((c) => (JSON.parse(c.body) as ExtenderArgs).Pod.metadata.name ?? '');
    expect(new Set(podsAt('second'))).toEqual(new Set(['second']));
    expect(podsAt('nc')).not.toContain('second');
  });

  it('calls a mutating webhook and records real AdmissionReviews', async () => {
    await createNamespace(cp.client, 'shop', { 'lazarus-test': 'admission' });
    await cp.client.request('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', {
      body: {
        apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration',
        metadata: { name: 'recorder' },
        webhooks: [{
          name: 'recorder.lazarus.dev',
          clientConfig: { url: `${webhook.url}/mutate`, caBundle: Buffer.from(webhook.caPem).toString('base64') },
          rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
          namespaceSelector: { matchLabels: { 'lazarus-test': 'admission' } },
          // Fail: a pod created without passing the recorder would make the test lie.
          failurePolicy: 'Fail', sideEffects: 'None', admissionReviewVersions: ['v1'], timeoutSeconds: 5,
        }],
      },
    });
    type Review = { request: { dryRun: boolean; namespace: string; object: PodView; userInfo: { username: string } } };
    const reviews = (): Review[] => webhook.calls.map((c) => JSON.parse(c.body) as Review);
    const bare = (name: string): unknown => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: name } }, spec: { containers: [{ name: 'app', image: 'registry.example/solo:1.0' }] } });

    // The API server picks up the configuration within a moment: dry-run until it calls.
    await waitFor(async () => {
      await cp.client.request('POST', '/api/v1/namespaces/shop/pods', { body: bare('dry'), query: { dryRun: 'All' } });
      return reviews().some((r) => r.request.dryRun);
    }, { description: 'the webhook to be called for a dry-run create' });
    await cp.client.request('POST', '/api/v1/namespaces/shop/pods', { body: bare('solo') });
    await cp.client.request('POST', '/apis/apps/v1/namespaces/shop/deployments', { body: deployment('web', 'shop', 'registry.example/web:1.4', { annotations: { [RESTORE]: 'enabled' } }) });
    await cp.client.request('POST', '/apis/apps/v1/namespaces/shop/statefulsets', {
      body: {
        apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db', namespace: 'shop', annotations: { [RESTORE]: 'enabled' } },
        spec: { serviceName: 'db', replicas: 1, selector: { matchLabels: { app: 'db' } }, template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'app', image: 'registry.example/db:2.0', args: ['--data', '/data'] }] } } },
      },
    });
    const find = (pred: (r: Review) => boolean, what: string): Promise<Review> => waitFor(() => reviews().find(pred), { description: what });
    const owner = (r: Review): string | undefined => r.request.object.metadata.ownerReferences?.[0]?.kind;
    const fromRs = await find((r) => owner(r) === 'ReplicaSet', 'an AdmissionReview for a ReplicaSet pod');
    const fromSts = await find((r) => owner(r) === 'StatefulSet', 'an AdmissionReview for a StatefulSet pod');
    const solo = await find((r) => !r.request.dryRun && r.request.object.metadata.name === 'solo', 'an AdmissionReview for the bare pod');
    const dry = await find((r) => r.request.dryRun, 'a dry-run AdmissionReview');

    expect(fromRs.request.object.metadata.name ?? '').toBe(''); // controllers use generateName
    expect(fromRs.request.namespace).toBe('shop');
    expect(fromRs.request.userInfo.username).toBe('system:serviceaccount:kube-system:replicaset-controller');
    expect(fromSts.request.object.metadata.name).toBe('db-0');
    expect(fromSts.request.userInfo.username).toBe('system:serviceaccount:kube-system:statefulset-controller');
    expect(solo.request.dryRun).toBe(false);
    expect(dry.request.object.metadata.name).toBe('dry');
    await saveFixture('admission-review-replicaset.json', fromRs);
    await saveFixture('admission-review-statefulset.json', fromSts);
    await saveFixture('admission-review-bare.json', solo);
    await saveFixture('admission-review-dryrun.json', dry);

    // The owners the webhook walks (Pod → ReplicaSet → Deployment; Pod → StatefulSet), as stored.
    const rsName = fromRs.request.object.metadata.ownerReferences?.[0]?.name ?? '';
    const rs = await cp.client.request<{ metadata: { ownerReferences?: Array<{ kind: string; name: string }> } }>('GET', `/apis/apps/v1/namespaces/shop/replicasets/${rsName}`);
    expect(rs.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Deployment', name: 'web' });
    const deploy = await cp.client.request<{ metadata: { annotations?: Record<string, string> } }>('GET', '/apis/apps/v1/namespaces/shop/deployments/web');
    expect(deploy.metadata.annotations?.[RESTORE]).toBe('enabled');
    await saveFixture('workload-replicaset.json', rs);
    await saveFixture('workload-deployment.json', deploy);
    await saveFixture('workload-statefulset.json', await cp.client.request('GET', '/apis/apps/v1/namespaces/shop/statefulsets/db'));
  });

  it('proxies to a node\'s kubelet with the kubelet client certificate (checkpoint API path)', async () => {
    const answer = await cp.client.request<{ items: string[] }>('POST', '/api/v1/nodes/node-k/proxy/checkpoint/shop/web-0/app', { query: { timeout: 30 } });
    expect(answer.items).toEqual(['/var/lib/kubelet/checkpoints/x.tar']);
    const call = kubelet.calls.at(-1);
    expect(call).toMatchObject({ method: 'POST', path: '/checkpoint/shop/web-0/app?timeout=30', clientCN: 'kube-apiserver-kubelet-client' });
  });

  it('installs CRDs from a directory and serves their objects', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lazarus-crds-'));
    await writeFile(path.join(dir, 'widgets.yaml'), [
      'apiVersion: apiextensions.k8s.io/v1', 'kind: CustomResourceDefinition', 'metadata: {name: widgets.test.lazarus.dev}',
      'spec:', '  group: test.lazarus.dev', '  scope: Namespaced', '  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}',
      '  versions:', '    - name: v1', '      served: true', '      storage: true',
      '      schema: {openAPIV3Schema: {type: object, properties: {spec: {type: object, properties: {size: {type: integer, minimum: 1}}}}}}', '',
    ].join('\n'));
    expect(await installCrds(cp.client, dir)).toEqual(['widgets.test.lazarus.dev']);
    const created = await cp.client.request<{ spec: { size: number } }>('POST', '/apis/test.lazarus.dev/v1/namespaces/default/widgets', { body: { apiVersion: 'test.lazarus.dev/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 3 } } });
    expect(created.spec.size).toBe(3);
    await expect(cp.client.request('POST', '/apis/test.lazarus.dev/v1/namespaces/default/widgets', { body: { apiVersion: 'test.lazarus.dev/v1', kind: 'Widget', metadata: { name: 'bad' }, spec: { size: 0 } } }))
      .rejects.toMatchObject({ status: 422 });
  });

  it('stop() ends every process it started, and is safe to call twice', async () => {
    const pids = cp.pids();
    expect(pids.length).toBe(6); // etcd, apiserver, controller-manager, two schedulers, reaper
    expect(pids.filter(isAlive).length).toBeGreaterThanOrEqual(5);
    await cp.stop();
    await cp.stop();
    expect(pids.filter(isAlive)).toEqual([]);
  });
});
