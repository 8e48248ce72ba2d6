/**
 * The mission, end to end, against a real kube-apiserver, controller-manager and scheduler:
 * an annotated Deployment's pod comes back from its checkpoint on the best node that can
 * restore it, and starts cold whenever restoring would be wrong.
 */
import { tearDown } from '../harness/teardown.js';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { createNode, setUnschedulable } from '../harness/nodes.js';
import { createNamespace, listEvents, waitFor } from '../harness/wait.js';
import { installCrds, applyObjects } from '../harness/apply.js';
import { freePort } from '../harness/processes.js';
import { startLazarus, startWebhook, WEBHOOK_CONFIG_NAME, type RunningExtender, type RunningWebhook } from '../harness/lazarus.js';
import { render, OVERLAYS } from '../support/kustomize.js';
import * as K from '../../api/keys.js';
import type { Checkpoint } from '../../api/types.js';
import { CONTAINER, IMAGE, boundPod as bound, createDeployment as createDeploymentIn, createReadyCheckpoint, livePods, type CheckpointOptions, type DeploymentOptions, type LivePod } from '../harness/scenario.js';
import { explainPod } from '../../explain/explain.js';

let cp: ControlPlane;
let webhook: RunningWebhook;
let extender: RunningExtender;

const createCheckpoint = (ns: string, name: string, opts: CheckpointOptions = {}): Promise<Checkpoint> => createReadyCheckpoint(cp.client, ns, name, opts);
const createDeployment = (ns: string, name: string, opts: DeploymentOptions = {}): Promise<void> => createDeploymentIn(cp.client, ns, name, opts);
const pods = (ns: string, app: string): Promise<LivePod[]> => livePods(cp.client, ns, app);
/** Waits for exactly one live, bound pod of `app` other than `not`. */
const boundPod = (ns: string, app: string, not?: string): Promise<LivePod> => bound(cp.client, ns, app, (p) => p.metadata.name !== not);

async function deletePod(ns: string, name: string): Promise<void> {
  await cp.client.request('DELETE', `/api/v1/namespaces/${ns}/pods/${name}`, { query: { gracePeriodSeconds: 0 } });
}

beforeAll(async () => {
  const extenderPort = await freePort();
  cp = await startControlPlane({
    extenders: [{ urlPrefix: `http://127.0.0.1:${extenderPort}`, nodeCacheCapable: true, weight: 5, ignorable: true }],
    // Extenders apply to every profile of a scheduler, so the policy's schedulerName goes to a second scheduler.
    additionalSchedulers: [{ profiles: ['lazarus-scheduler'], extenders: [{ urlPrefix: `http://127.0.0.1:${extenderPort}`, nodeCacheCapable: true, weight: 5, ignorable: true }] }],
    schedulerConfig: { podInitialBackoffSeconds: 1, podMaxBackoffSeconds: 2 },
  });
  await installCrds(cp.client);
  // Nodes that differ in every way Lazarus cares about. The checkpoint was taken on node-lost.
  const flags = ['fpu', 'sse4_2', 'avx2', 'avx512f'];
  await Promise.all([
    createNode(cp.client, { name: 'node-exact', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'cri-o://1.33.2', cpuFlags: flags }),
    createNode(cp.client, { name: 'node-newer', kernel: '6.8.0-50-generic', criu: '4.2.0', runtime: 'cri-o://1.34.1', cpuFlags: flags }),
    createNode(cp.client, { name: 'node-arm', arch: 'arm64', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'cri-o://1.33.2', cpuFlags: ['fp', 'asimd'] }),
    createNode(cp.client, { name: 'node-oldcriu', kernel: '6.8.0-45-generic', criu: '3.17.1', runtime: 'cri-o://1.33.2', cpuFlags: flags }),
    createNode(cp.client, { name: 'node-containerd', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'containerd://2.1.4', cpuFlags: flags }),
    createNode(cp.client, { name: 'node-noavx2', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'cri-o://1.33.2', cpuFlags: ['fpu', 'sse4_2'] }),
    createNode(cp.client, { name: 'node-incapable', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'cri-o://1.33.2', cpuFlags: flags, restoreCapable: false }),
  ]);
  ({ webhook, extender } = await startLazarus(cp.client, extenderPort));
}, 120_000);

afterAll(() => tearDown([
  ['webhook', () => webhook?.stop()],
  ['extender', () => extender?.stop()],
  ['control plane', () => cp?.stop()],
]), 90_000);

describe('an annotated Deployment', () => {
  const ns = 'shop';
  let first: LivePod;

  beforeAll(async () => {
    await createNamespace(cp.client, ns);
    await createCheckpoint(ns, 'web-app-older', { takenAt: new Date(Date.now() - 3_600_000), sourcePod: 'web-old-1' });
    await createCheckpoint(ns, 'web-app-newest', { sourcePod: 'web-old-2' });
    await createCheckpoint('default', 'web-app-newest-elsewhere', { sourcePod: 'web-old-3' }); // another namespace: never used
    // annotated on the Deployment's metadata, as `kubectl annotate deploy/web` does: no rollout
    await createDeployment(ns, 'web', { annotations: { [K.RESTORE]: 'enabled' } });
    first = await boundPod(ns, 'web');
  }, 60_000);

  it('starts from the newest checkpoint, with the origin stamped on the pod', () => {
    expect(first.spec.containers[0]?.image).toBe(`registry.example/lazarus/${ns}/web-app@sha256:${'b'.repeat(64)}`);
    expect(first.metadata.annotations).toMatchObject({
      [K.RESTORED_FROM]: 'app=web-app-newest', [K.ORIGINAL_IMAGES]: `app=${IMAGE}`, [K.ORIGIN_NODE]: 'node-lost',
      [K.ORIGIN_ARCH]: 'amd64', [K.ORIGIN_CRIU]: '4.1.1', [K.ORIGIN_KERNEL]: '6.8.0-45-generic', [K.ORIGIN_RUNTIME]: 'cri-o://1.33.2',
      [K.ORIGIN_CPU_FLAGS]: 'fpu sse4_2 avx2',
    });
  });

  it('is bound by the real scheduler to the best matching node', () => {
    expect(first.spec.nodeName).toBe('node-exact');
  });

  it('the extender told the scheduler why the others cannot restore it', async () => {
    expect(extender.filtered()).toEqual(expect.objectContaining({
      'node-noavx2': expect.stringMatching(/avx2/),
    }));
  });

  it('the required affinity alone keeps it off nodes that cannot restore: those never reach the extender', () => {
    // restore-capable and the runtime's name are node labels the affinity names (issue 13,
    // point 5), so with the (ignorable) extender down these nodes stay excluded.
    const terms = first.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
    expect(terms).toEqual([{ matchExpressions: expect.arrayContaining([
      { key: K.NODE_RESTORE_CAPABLE, operator: 'In', values: ['true'] },
      { key: K.NODE_RUNTIME, operator: 'In', values: ['cri-o'] },
    ]) }]);
    expect(Object.keys(extender.filtered())).not.toEqual(expect.arrayContaining(['node-containerd']));
    expect(Object.keys(extender.filtered())).not.toEqual(expect.arrayContaining(['node-incapable']));
  });

  it('a replacement is restored again; with the best node cordoned, the next best compatible node wins', async () => {
    await deletePod(ns, first.metadata.name ?? '');
    const second = await boundPod(ns, 'web', first.metadata.name);
    expect(second.metadata.annotations?.[K.RESTORED_FROM]).toBe('app=web-app-newest');
    expect(second.spec.nodeName).toBe('node-exact');

    await setUnschedulable(cp.client, 'node-exact', true);
    try {
      await deletePod(ns, second.metadata.name ?? '');
      const third = await boundPod(ns, 'web', second.metadata.name);
      expect(third.metadata.annotations?.[K.RESTORED_FROM]).toBe('app=web-app-newest');
      expect(third.spec.nodeName).toBe('node-newer');
    } finally {
      await setUnschedulable(cp.client, 'node-exact', false);
    }
  });

  it('FailedScheduling events carry the extender\'s reasons when no node can restore', async () => {
    // A pod restored from a checkpoint no node here can take (CRIU 5.0 origin), without the
    // webhook's affinity so that every node reaches the extender.
    await cp.client.request('POST', `/api/v1/namespaces/${ns}/pods`, { body: {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: 'stranded', annotations: {
        [K.RESTORED_FROM]: 'app=x', [K.ORIGINAL_IMAGES]: `app=${IMAGE}`, [K.ORIGIN_NODE]: 'node-future', [K.ORIGIN_ARCH]: 'amd64',
        [K.ORIGIN_KERNEL]: '6.12.0', [K.ORIGIN_CRIU]: '5.0.0', [K.ORIGIN_RUNTIME]: 'cri-o://1.35.0', [K.ORIGIN_CPU_FLAGS]: 'fpu',
      } },
      spec: { containers: [{ name: 'app', image: IMAGE }] },
    } });
    const events = await waitFor(async () => {
      const found = await listEvents(cp.client, ns, { name: 'stranded', reason: 'FailedScheduling' });
      return found.length ? found : undefined;
    }, { timeoutMs: 20_000, description: 'FailedScheduling for the stranded pod' });
    expect(events[0]?.message).toMatch(/criu 4\.1\.1 is older than the checkpoint's 5\.0\.0/);
  });

  it('lazarus explain shows the restored pod, its checkpoint and every node\'s verdict', async () => {
    const pod = await boundPod(ns, 'web');
    const e = explainPod(pod, ns, webhook.cache, (await cp.client.request<{ items: never[] }>('GET', '/api/v1/nodes')).items, Date.now());
    expect(e.restoredFrom).toEqual({ app: 'web-app-newest' });
    expect(e.nodes.find((n) => n.node === 'node-exact')).toMatchObject({ compatible: true, score: 8 });
    expect(e.nodes.find((n) => n.node === 'node-arm')).toMatchObject({ compatible: false, reasons: [expect.stringMatching(/architecture arm64/)] });
    expect(e.nodes[0]?.node).toBe('node-exact'); // best first
  });

  it('rolled to a new image, it starts cold (spec hash), and says why', async () => {
    const warnings: string[] = [];
    // What the ReplicaSet controller would send, dry-run, so that the warning reaches us.
    const current = await boundPod(ns, 'web');
    const { name: _n, ...meta } = current.metadata;
    await cp.client.request('POST', `/api/v1/namespaces/${ns}/pods`, {
      query: { dryRun: 'All' }, onWarning: (w) => warnings.push(w),
      body: { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-', labels: meta.labels, ownerReferences: meta.ownerReferences }, spec: { containers: [{ ...CONTAINER, image: 'registry.example/web:1.5' }] } },
    });
    expect(warnings).toEqual([expect.stringMatching(/has the pod's spec hash [0-9a-f]{16} \(the container changed since\); starting cold/)]);

    await cp.client.request('PATCH', `/apis/apps/v1/namespaces/${ns}/deployments/web`, {
      body: { spec: { template: { spec: { containers: [{ name: 'app', image: 'registry.example/web:1.5' }] } } } }, contentType: 'application/strategic-merge-patch+json',
    });
    const rolled = await waitFor(async () => (await pods(ns, 'web')).find((p) => p.spec.containers[0]?.image === 'registry.example/web:1.5' && p.spec.nodeName), { timeoutMs: 30_000, description: 'the rolled pod' });
    expect(rolled.metadata.annotations?.[K.RESTORED_FROM]).toBeUndefined();
  });
});

describe('policies', () => {
  it('mode All restores unannotated workloads in matching namespaces; disabled opts out', async () => {
    await createNamespace(cp.client, 'batch', { 'lazarus.dev/tier': 'stateful' });
    await cp.client.request('POST', '/apis/lazarus.dev/v1alpha1/restorepolicies', { body: {
      apiVersion: 'lazarus.dev/v1alpha1', kind: 'RestorePolicy', metadata: { name: 'stateful-all' },
      spec: { priority: 10, mode: 'All', namespaceSelector: { matchLabels: { 'lazarus.dev/tier': 'stateful' } } },
    } });
    await waitFor(() => webhook.cache.policies().some((p) => p.name === 'stateful-all'), { description: 'policy in the webhook cache' });
    for (const w of ['api', 'worker']) await createCheckpoint('batch', `${w}-app-1`, { workload: w });
    await createDeployment('batch', 'api');
    await createDeployment('batch', 'worker', { annotations: { [K.RESTORE]: 'disabled' } });
    expect((await boundPod('batch', 'api')).metadata.annotations?.[K.RESTORED_FROM]).toBe('app=api-app-1');
    expect((await boundPod('batch', 'worker')).metadata.annotations?.[K.RESTORED_FROM]).toBeUndefined();
  });

  it('schedulerName sends restored pods to the second scheduler, which uses the extender', async () => {
    await createNamespace(cp.client, 'managed', { 'lazarus.dev/scheduler': 'second' });
    await cp.client.request('POST', '/apis/lazarus.dev/v1alpha1/restorepolicies', { body: {
      apiVersion: 'lazarus.dev/v1alpha1', kind: 'RestorePolicy', metadata: { name: 'managed' },
      spec: { priority: 20, namespaceSelector: { matchLabels: { 'lazarus.dev/scheduler': 'second' } }, schedulerName: 'lazarus-scheduler' },
    } });
    await waitFor(() => webhook.cache.policies().some((p) => p.name === 'managed'), { description: 'policy in the webhook cache' });
    await createCheckpoint('managed', 'web-app-1');
    const before = extender.calls();
    await createDeployment('managed', 'web', { annotations: { [K.RESTORE]: 'enabled' } });
    const pod = await boundPod('managed', 'web');
    expect(pod.spec.schedulerName).toBe('lazarus-scheduler');
    expect(pod.spec.nodeName).toBe('node-exact');
    expect(extender.calls()).toBeGreaterThan(before);
  });
});

describe('failure is never an outage', () => {
  it('with the webhook stopped, pods are still created (cold) and scheduled', async () => {
    await createNamespace(cp.client, 'outage');
    await createCheckpoint('outage', 'web-app-1');
    await webhook.stop();
    try {
      await createDeployment('outage', 'web', { annotations: { [K.RESTORE]: 'enabled' } });
      const pod = await boundPod('outage', 'web');
      expect(pod.spec.containers[0]?.image).toBe(IMAGE);
      expect(pod.metadata.annotations?.[K.RESTORED_FROM]).toBeUndefined();
    } finally {
      webhook = await startWebhook(cp.client, { tls: webhook.tls, port: webhook.port });
    }
  });
});

describe('manifests', () => {
  // Dry-run creates nothing, so the namespace the namespaced objects live in must exist. The
  // loopback webhook registered above has the manifests' name with clientConfig.url; applied over
  // it, the manifests' clientConfig.service would merge into "both url and service" (422).
  beforeAll(async () => {
    await createNamespace(cp.client, 'lazarus-system');
    await cp.client.request('DELETE', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${WEBHOOK_CONFIG_NAME}`);
  });

  it.each(OVERLAYS)('%s applies with server-side dry-run', async (dir) => {
    const objects = render(dir).filter((o) => !String(o.apiVersion).startsWith('cert-manager.io/'));
    // CRDs must exist for the RestorePolicy to dry-run; they were installed above.
    await applyObjects(cp.client, objects, { dryRun: true });
  });
});
