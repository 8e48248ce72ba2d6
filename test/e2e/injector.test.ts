/**
 * Issue 13 point 9 against a real kube-apiserver: a second mutating webhook, ordered after
 * Lazarus (webhooks run in the order of their configurations' names), injects an env var and a
 * volume mount into every pod, as a service mesh or a secrets injector does. The webhook hashes
 * the pod as it sees it and stamps `lazarus.dev/spec-hashes`; the agent (in process, real
 * registry) stamps its Checkpoint with that, not with the hash of the injected pod it finds
 * running. So the replacement pod restores; a real template change still starts cold.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdir, rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import * as K from '../../api/keys.js';
import { specHash } from '../../api/spec-hash.js';
import type { Checkpoint, Container } from '../../api/types.js';
import { parseRuntime } from '../../api/versions.js';
import { restoreSupport } from '../../agent/runtime-restore.js';
import { Agent } from '../../agent/watcher.js';
import { silentLogger } from '../../runtime/log.js';
import { tearDown } from '../harness/teardown.js';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { installCrds } from '../harness/apply.js';
import { createNode } from '../harness/nodes.js';
import { createNamespace, waitFor } from '../harness/wait.js';
import { registerWebhook, startWebhook, type RunningWebhook } from '../harness/lazarus.js';
import { CONTAINER, boundPod, createDeployment, livePods, type LivePod } from '../harness/scenario.js';
import { testTls } from '../support/tls.js';
import { describeWithTools, startRegistry, tempDir, type Registry } from '../integration/agent-env.js';
import { checkpointEntries, writeArchive } from '../unit/agent-fixtures.js';

const NS = 'meshed';
const INJECTOR_CONFIG = 'zz-injector'; // sorts after "lazarus": called after it
const FLAGS = ['fpu', 'sse4_2', 'avx2'];

interface Review { request: { uid: string; object: { spec: { containers: Container[]; volumes?: unknown[] } } } }

/** The injector's answer: env INJECTED_BY=mesh and a mount of an emptyDir in every container. */
function injectionPatch(review: Review): unknown[] {
  const { containers, volumes } = review.request.object.spec;
  const ops: unknown[] = [volumes ? { op: 'add', path: '/spec/volumes/-', value: { name: 'mesh-certs', emptyDir: {} } }
    : { op: 'add', path: '/spec/volumes', value: [{ name: 'mesh-certs', emptyDir: {} }] }];
  containers.forEach((c, i) => {
    const env = { name: 'INJECTED_BY', value: 'mesh' };
    const mount = { name: 'mesh-certs', mountPath: '/etc/mesh' };
    ops.push(c.env ? { op: 'add', path: `/spec/containers/${i}/env/-`, value: env } : { op: 'add', path: `/spec/containers/${i}/env`, value: [env] });
    ops.push(c.volumeMounts ? { op: 'add', path: `/spec/containers/${i}/volumeMounts/-`, value: mount } : { op: 'add', path: `/spec/containers/${i}/volumeMounts`, value: [mount] });
  });
  return ops;
}

describeWithTools('a mutating webhook ordered after Lazarus (issue 13 point 9)', ['docker-registry'], false, () => {
  let cp: ControlPlane;
  let webhook: RunningWebhook;
  let injector: https.Server;
  let injected = 0;
  let registry: Registry;
  let dir = '';
  let agent: Agent;

  beforeAll(async () => {
    cp = await startControlPlane({ schedulerConfig: { podInitialBackoffSeconds: 1, podMaxBackoffSeconds: 2 } });
    await installCrds(cp.client);
    await createNode(cp.client, { name: 'node-a', criu: '4.1.1', runtime: 'cri-o://1.33.2', cpuFlags: FLAGS });
    registry = await startRegistry();
    // The webhook trusts what the agent pushes: the same --registry on both sides.
    webhook = await startWebhook(cp.client, { registry: `${registry.host}/lazarus` });
    await registerWebhook(cp.client, webhook.port, webhook.tls.ca);

    const tls = testTls();
    injector = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const review = JSON.parse(Buffer.concat(chunks).toString()) as Review;
        injected++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
          apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
          response: { uid: review.request.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(injectionPatch(review))).toString('base64') },
        }));
      });
    });
    await new Promise<void>((r) => injector.listen(0, '127.0.0.1', r));
    await cp.client.request('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', { body: {
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: INJECTOR_CONFIG },
      webhooks: [{
        name: 'inject.mesh.test', admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Fail', timeoutSeconds: 5, reinvocationPolicy: 'Never',
        clientConfig: { url: `https://127.0.0.1:${String((injector.address() as AddressInfo).port)}/inject`, caBundle: Buffer.from(tls.ca).toString('base64') },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } },
      }],
    } });

    dir = await tempDir('injector-e2e');
    await mkdir(join(dir, 'checkpoints'));
    agent = new Agent({
      kube: cp.client, nodeName: 'node-a', checkpointDir: join(dir, 'checkpoints'), namespace: 'lazarus-system',
      defaultRegistry: `${registry.host}/lazarus`, insecureRegistries: new Set([registry.host]), log: silentLogger(),
      now: () => new Date(), sleep: () => Promise.resolve(),
      readFacts: () => Promise.resolve({ criuVersion: '4.1.1', criuCheckPassed: true, cpuFlags: FLAGS, cgroup: 'v2' }),
      runtimeSupport: (runtime) => Promise.resolve(restoreSupport(parseRuntime(runtime), [{ path: '/etc/crio/crio.conf', text: '[crio.checkpoint_restore]\ncontainer_level_enabled = "checkpoint_restore"\n' }])),
      hostFacts: (local) => Promise.resolve({ criuVersion: local.criuVersion ?? '', kernel: '6.8.0-45-generic', arch: 'amd64', cgroup: 'v2' }),
      settleMs: 0, scanIntervalMs: 60_000, factsIntervalMs: 60_000, retryBaseMs: 1_000, retryMaxMs: 60_000,
    });
    await agent.refreshFacts();
    await createNamespace(cp.client, NS);
  }, 180_000);

  afterAll(() => tearDown([
    ['registry', () => registry?.stop()],
    ['injector', () => new Promise<void>((r) => { if (!injector) { r(); return; } injector.closeAllConnections(); injector.close(() => r()); })],
    ['webhook', () => webhook?.stop()],
    ['control plane', () => cp?.stop()],
    ['temp dir', () => rm(dir, { recursive: true, force: true })],
  ]), 90_000);

  /** What the kubelet would leave for this pod's container: a CRI-O archive naming it, taken now. */
  async function checkpointArchive(pod: LivePod): Promise<string> {
    const name = pod.metadata.name ?? '';
    const uid = pod.metadata.uid ?? '';
    const now = new Date().toISOString();
    const entries = checkpointEntries('crio').map((e) => (typeof e.body === 'string'
      ? { ...e, body: e.body.replaceAll('web-7d9c-abcde', name).replaceAll('1b2c3d4e-0000-4000-8000-000000000001', uid).replaceAll('shop', NS).replaceAll('2026-11-27T12:00:00.5Z', now) }
      : e));
    const file = `checkpoint-${name}_${NS}-app-${now.replace(/\.\d+Z$/, 'Z')}.tar`;
    const path = join(dir, 'checkpoints', file);
    await writeArchive(path, entries);
    const settled = new Date(Date.now() - 5_000);
    await utimes(path, settled, settled);
    return file;
  }

  const env = (p: LivePod): string[] => (p.spec.containers[0]?.env ?? []).map((e) => `${e.name}=${e.value ?? ''}`);

  it('the cold pod carries both webhooks\' changes; its checkpoint is stamped with the hash Lazarus saw, and the replacement restores', async () => {
    await createDeployment(cp.client, NS, 'web', { annotations: { [K.RESTORE]: 'enabled' } });
    const first = await boundPod(cp.client, NS, 'web');
    expect(first.metadata.annotations?.[K.RESTORED_FROM]).toBeUndefined();
    expect(env(first)).toContain('INJECTED_BY=mesh');
    expect((first.spec.containers[0]?.volumeMounts as { name: string }[] | undefined)?.map((m) => m.name)).toContain('mesh-certs');
    expect(first.metadata.annotations?.[K.SPEC_HASHES]).toBe(`app=${specHash(CONTAINER)}`);
    // What the agent used to hash: the running container, injected env and mount included.
    expect(specHash(first.spec.containers[0] ?? { name: '' })).not.toBe(specHash(CONTAINER));

    const file = await checkpointArchive(first);
    expect(await agent.scanOnce()).toEqual(new Map([[file, 'ready']]));
    const cks = (await cp.client.request<{ items: Checkpoint[] }>('GET', `/apis/${K.API_VERSION}/namespaces/${NS}/checkpoints`)).items;
    expect(cks.map((c) => [c.spec.sourcePod, c.spec.specHash, c.status?.phase])).toEqual([[first.metadata.name, specHash(CONTAINER), 'Ready']]);
    const ck = cks[0];
    await waitFor(() => webhook.cache.checkpoints(NS, { kind: 'Deployment', name: 'web' }, 'app').some((c) => c.status?.phase === 'Ready'), { description: 'the Checkpoint in the webhook cache' });

    await cp.client.request('DELETE', `/api/v1/namespaces/${NS}/pods/${first.metadata.name ?? ''}`, { query: { gracePeriodSeconds: 0 } });
    const second = await boundPod(cp.client, NS, 'web', (p) => p.metadata.name !== first.metadata.name);
    expect(second.metadata.annotations?.[K.RESTORED_FROM]).toBe(`app=${ck?.metadata.name ?? ''}`);
    expect(second.spec.containers[0]?.image).toBe(ck?.spec.image);
    expect(env(second)).toContain('INJECTED_BY=mesh');
    // The stamp is the pre-restore pod's hash (original image), as the first pod's was.
    expect(second.metadata.annotations?.[K.SPEC_HASHES]).toBe(`app=${specHash(CONTAINER)}`);
    expect(injected).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it('siblings created in a burst are all restored with the same stamp (the shared decision stays right)', async () => {
    await cp.client.request('PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/web`, { body: { spec: { replicas: 3 } }, contentType: 'application/merge-patch+json' });
    const all = await waitFor(async () => {
      const live = (await livePods(cp.client, NS, 'web')).filter((p) => p.spec.nodeName);
      return live.length === 3 ? live : undefined;
    }, { timeoutMs: 30_000, description: 'three bound pods' });
    for (const p of all) {
      expect(p.metadata.annotations?.[K.RESTORED_FROM]).toMatch(/^app=web-app-/);
      expect(p.metadata.annotations?.[K.SPEC_HASHES]).toBe(`app=${specHash(CONTAINER)}`);
    }
  }, 60_000);

  it('a real template change still starts cold, stamped with the new hash', async () => {
    const changed: Container = { ...CONTAINER, env: [{ name: 'MODE', value: 'v2' }] };
    await cp.client.request('PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/web`, {
      body: { spec: { replicas: 1, template: { spec: { containers: [{ name: 'app', env: [{ name: 'MODE', value: 'v2' }] }] } } } }, contentType: 'application/strategic-merge-patch+json',
    });
    const rolled = await waitFor(async () => (await livePods(cp.client, NS, 'web')).find((p) => env(p).includes('MODE=v2') && p.spec.nodeName), { timeoutMs: 30_000, description: 'the rolled pod' });
    expect(rolled.metadata.annotations?.[K.RESTORED_FROM]).toBeUndefined();
    expect(rolled.spec.containers[0]?.image).toBe(CONTAINER.image);
    expect(env(rolled)).toEqual(['MODE=v2', 'INJECTED_BY=mesh']);
    expect(rolled.metadata.annotations?.[K.SPEC_HASHES]).toBe(`app=${specHash(changed)}`);
  }, 60_000);

  it('an image changed in place on a running pod is not hidden by the stamp: its checkpoint gets the running hash', async () => {
    // The rolled pod (fake nodes never run pods, so the rollout keeps old ones alive beside it).
    const pod = await boundPod(cp.client, NS, 'web', (p) => env(p).includes('MODE=v2'));
    const stamp = pod.metadata.annotations?.[K.SPEC_HASHES];
    const patched = await cp.client.request<LivePod>('PATCH', `/api/v1/namespaces/${NS}/pods/${pod.metadata.name ?? ''}`, {
      body: { spec: { containers: [{ name: 'app', image: 'registry.example/web:9.9' }] } }, contentType: 'application/strategic-merge-patch+json',
    });
    expect(patched.metadata.generation).toBe(2);
    expect(patched.metadata.annotations?.[K.SPEC_HASHES]).toBe(stamp);
    const file = await checkpointArchive(patched);
    expect(await agent.scanOnce()).toEqual(new Map([[file, 'ready']]));
    const cks = (await cp.client.request<{ items: Checkpoint[] }>('GET', `/apis/${K.API_VERSION}/namespaces/${NS}/checkpoints`)).items;
    const ck = cks.find((c) => c.spec.sourcePod === pod.metadata.name);
    expect(ck?.spec.specHash).toBe(specHash(patched.spec.containers[0] ?? { name: '' }));
    expect(`app=${ck?.spec.specHash ?? ''}`).not.toBe(stamp);
  }, 60_000);
});
