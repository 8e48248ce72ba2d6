/**
 * The watcher path end to end over real HTTP: archive dropped in the directory → image in a real
 * docker-registry → Checkpoint Ready with this node's facts → archive gone; and the failure cases
 * (corrupt archive, registry outage, crash mid-push, crash between create and status).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { specHash } from '../../api/spec-hash.js';
import type { Checkpoint, Pod } from '../../api/types.js';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../kube/client.js';
import { pino } from 'pino';
import { silentLogger } from '../../runtime/log.js';
import { sleep } from '../../runtime/sleep.js';
import type { LocalFacts } from '../../agent/node-facts.js';
import { restoreSupport, type ConfigFile } from '../../agent/runtime-restore.js';
import { Agent, type AgentOptions } from '../../agent/watcher.js';
import { parseRuntime } from '../../api/versions.js';
import { PodMemory } from '../../agent/pod-memory.js';
import { checkpointEntries, writeArchive } from '../unit/agent-fixtures.js';
import { FakeKube } from './agent-fake-kube.js';
import { describeWithTools, freePort, startRegistry, tempDir, waitUntil, type Registry } from './agent-env.js';

const NS = 'shop';
const CK_BASE = `/apis/lazarus.dev/v1alpha1/namespaces/${NS}/checkpoints`;
const ARCHIVE = 'checkpoint-web-7d9c-abcde_shop-app-2026-11-27T12:00:00Z.tar';
const FACTS: LocalFacts = { criuVersion: '4.1.1', criuCheckPassed: true, cpuFlags: ['avx2', 'fpu', 'sse4_2'], cgroup: 'v2' };
/** The host's CRI-O configuration, as the agent would read it: restore switched on. */
let crioConfig: ConfigFile[] = [{ path: '/etc/crio/crio.conf', text: '[crio.checkpoint_restore]\ncontainer_level_enabled = "checkpoint_restore"\n' }];

/** The pod UID the recorded CRI-O/containerd dumps carry (test/fixtures/agent). */
const POD_UID = '1b2c3d4e-0000-4000-8000-000000000001';
/** Checkpoint name and image tag of ARCHIVE: workload-container-time-<pod UID prefix>. */
const CK_NAME = 'web-app-20261127t120000z-1b2c3d4e';
const TAG = '20261127t120000z-1b2c3d4e';

const POD: Pod = {
  metadata: {
    name: 'web-7d9c-abcde', namespace: NS, uid: POD_UID, labels: { app: 'web', 'pod-template-hash': '7d9c' },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9c', controller: true }],
  },
  spec: { containers: [{ name: 'app', image: 'registry.example/web:1.4', args: ['--port', '8080'], env: [{ name: 'MODE', value: 'prod' }] }] },
};

function seed(kube: FakeKube, registry: string): void {
  kube.put('/api/v1/nodes/node-a', {
    metadata: { name: 'node-a', labels: { 'kubernetes.io/arch': 'amd64' } },
    status: { nodeInfo: { architecture: 'amd64', kernelVersion: '6.8.0-45-generic', containerRuntimeVersion: 'cri-o://1.33.2' } },
  });
  kube.put(`/api/v1/namespaces/${NS}`, { metadata: { name: NS, labels: { team: 'shop' } } });
  kube.put('/api/v1/namespaces/lazarus', { metadata: { name: 'lazarus' } });
  kube.put(`/apis/apps/v1/namespaces/${NS}/deployments/web`, { metadata: { name: 'web', labels: { app: 'web' } } });
  kube.put(`/apis/apps/v1/namespaces/${NS}/replicasets/web-7d9c`, {
    metadata: { name: 'web-7d9c', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] },
  });
  kube.put(`/api/v1/namespaces/${NS}/pods/web-7d9c-abcde`, POD as unknown as Record<string, unknown>);
  kube.put('/apis/lazarus.dev/v1alpha1/restorepolicies/default', { metadata: { name: 'default' }, spec: { checkpoint: { registry: `${registry}/lazarus` } } });
}

describeWithTools('agent watcher against a fake Kubernetes API and a real registry', ['docker-registry'], false, () => {
  let dir = '';
  let checkpointDir = '';
  let kube: FakeKube;
  let client: KubeClient;
  let registry: Registry | undefined;
  let nowMs = Date.parse('2026-11-27T12:05:00Z');

  function agent(registryHost: string, extra: Partial<AgentOptions> = {}): Agent {
    return new Agent({
      kube: client, nodeName: 'node-a', checkpointDir, namespace: 'lazarus',
      insecureRegistries: new Set([registryHost]), log: silentLogger(),
      now: () => new Date(nowMs), sleep: () => Promise.resolve(),
      readFacts: () => Promise.resolve(FACTS),
      runtimeSupport: (runtime) => Promise.resolve(restoreSupport(parseRuntime(runtime), crioConfig)),
      hostFacts: (local) => Promise.resolve({ criuVersion: local.criuVersion ?? '', kernel: '6.8.0-45-generic', arch: 'amd64', cgroup: 'v2' }),
      settleMs: 0, scanIntervalMs: 60_000, factsIntervalMs: 60_000, retryBaseMs: 1_000, retryMaxMs: 60_000,
      registryRetry: { attempts: 2, baseMs: 1, maxMs: 1 },
      ...extra,
    });
  }

  async function dropArchive(name = ARCHIVE, pages?: Buffer): Promise<string> {
    const path = join(checkpointDir, name);
    await writeArchive(path, checkpointEntries('crio', pages));
    const old = new Date(nowMs - 10_000);
    await utimes(path, old, old);
    return path;
  }

  async function tags(host: string, repo: string): Promise<string[]> {
    const r = await fetch(`http://${host}/v2/${repo}/tags/list`);
    if (r.status === 404) return [];
    return ((await r.json()) as { tags?: string[] | null }).tags ?? [];
  }

  beforeEach(async () => {
    dir = await tempDir('agent-watcher');
    checkpointDir = join(dir, 'checkpoints');
    await mkdir(checkpointDir);
    kube = new FakeKube();
    await kube.start();
    client = await createKubeClient(loadKubeConfig(await kube.kubeconfig(dir)));
    nowMs = Date.parse('2026-11-27T12:05:00Z');
  });

  afterEach(async () => {
    await registry?.stop();
    registry = undefined;
    await kube.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('archive dropped in the directory → image pushed → Checkpoint Ready with origin facts → archive gone', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    const a = agent(registry.host, { settleMs: 50, now: () => new Date(), sleep });
    const ac = new AbortController();
    const running = a.run(ac.signal);
    try {
      await waitUntil(async () => kube.get<{ metadata: { labels?: Record<string, string> } }>('/api/v1/nodes/node-a')?.metadata.labels?.['lazarus.dev/criu-version'], 10_000, 'node facts');
      const path = join(checkpointDir, ARCHIVE);
      await writeArchive(path, checkpointEntries('crio'));
      const ck = await waitUntil(async () => {
        const c = kube.get<Checkpoint>(`${CK_BASE}/${CK_NAME}`);
        return c?.status?.phase === 'Ready' ? c : undefined;
      }, 20_000, 'the Checkpoint to be Ready');
      expect(ck.spec).toMatchObject({
        workload: { kind: 'Deployment', name: 'web' },
        container: 'app',
        sourcePod: 'web-7d9c-abcde',
        baseImage: 'registry.example/web:1.4',
        specHash: specHash(POD.spec.containers[0] ?? { name: '' }),
        takenAt: '2026-11-27T12:00:00.500Z',
        origin: { node: 'node-a', architecture: 'amd64', kernelVersion: '6.8.0-45-generic', criuVersion: 40101, runtime: 'cri-o://1.33.2', cgroup: 'v2', cpuFlags: ['avx2', 'fpu', 'sse4_2'] },
      });
      expect(ck.metadata.labels).toEqual({ 'lazarus.dev/workload': 'web', 'lazarus.dev/workload-kind': 'Deployment', 'lazarus.dev/container': 'app', 'lazarus.dev/source-pod-uid': POD_UID });
      expect(ck.spec.image).toMatch(new RegExp(`^${registry.host}/lazarus/shop/web-app@sha256:[0-9a-f]{64}$`));
      const digest = ck.spec.image.split('@')[1] ?? '';
      const manifest = await fetch(`http://${registry.host}/v2/lazarus/shop/web-app/manifests/${digest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect(manifest.status).toBe(200);
      expect(((await manifest.json()) as { annotations: Record<string, string> }).annotations).toMatchObject({
        'io.kubernetes.cri-o.annotations.checkpoint.name': 'app',
        'org.criu.checkpoint.pod.name': 'web-7d9c-abcde',
        'org.criu.checkpoint.pod.namespace': 'shop',
      });
      expect(existsSync(path)).toBe(false);
      expect(kube.get<{ metadata: { labels: Record<string, string> } }>('/api/v1/nodes/node-a')?.metadata.labels).toMatchObject({
        'lazarus.dev/criu-version': '40101', 'lazarus.dev/restore-capable': 'true',
      });
    } finally {
      ac.abort();
      await running;
    }
  }, 60_000);

  it('a corrupt archive becomes a Failed Checkpoint with the reason, and is kept aside', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    const path = join(checkpointDir, ARCHIVE);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path, randomBytes(5000));
    const old = new Date(nowMs - 10_000);
    await utimes(path, old, old);
    const a = agent(registry.host);
    expect(await a.scanOnce()).toEqual(new Map([[ARCHIVE, 'failed']]));
    const failed = kube.list<Checkpoint>(CK_BASE);
    expect(failed).toHaveLength(1);
    expect(failed[0]?.status).toMatchObject({ phase: 'Failed' });
    expect(failed[0]?.status?.reason).toMatch(/not a readable tar archive/);
    expect(failed[0]?.spec).toMatchObject({ sourcePod: 'web-7d9c-abcde', container: 'app', origin: { node: 'node-a', criuVersion: 40101 } });
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.failed`)).toBe(true);
    expect(await a.scanOnce()).toEqual(new Map());
    expect(await tags(registry.host, 'lazarus/shop/web-app')).toEqual([]);
  }, 30_000);

  it('a registry outage keeps the archive and retries after a backoff until the registry is back', async () => {
    const port = await freePort();
    const host = `127.0.0.1:${String(port)}`;
    seed(kube, host);
    const path = await dropArchive();
    const a = agent(host);
    expect(await a.scanOnce()).toEqual(new Map([[ARCHIVE, 'retry']]));
    expect(existsSync(path)).toBe(true);
    expect(kube.list(CK_BASE)).toEqual([]);
    expect(await a.scanOnce()).toEqual(new Map([[ARCHIVE, 'skipped']])); // backing off

    registry = await startRegistry({ port });
    nowMs += 2_000;
    expect(await a.scanOnce()).toEqual(new Map([[ARCHIVE, 'ready']]));
    expect(existsSync(path)).toBe(false);
    expect(kube.list<Checkpoint>(CK_BASE).map((c) => c.status?.phase)).toEqual(['Ready']);
  }, 60_000);

  it('a push Secret the agents may not read keeps the archive, and the log names the Role to change', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    kube.put('/apis/lazarus.dev/v1alpha1/restorepolicies/default', { metadata: { name: 'default' }, spec: { checkpoint: { registry: `${registry.host}/lazarus`, pushSecret: 'team-robot' } } });
    kube.forbidden.push(/^GET \/api\/v1\/namespaces\/lazarus\/secrets\/team-robot$/);
    const path = await dropArchive();
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } });
    expect(await agent(registry.host, { log }).scanOnce()).toEqual(new Map([[ARCHIVE, 'retry']]));
    expect(existsSync(path)).toBe(true);
    expect(kube.list(CK_BASE)).toEqual([]);
    const retry = lines.map((l) => JSON.parse(l) as { msg: string; err?: string }).find((l) => l.msg === 'archive kept for a retry');
    expect(retry?.err).toContain('lazarus/team-robot: forbidden');
    expect(retry?.err).toContain('Role lazarus-agent-push-secret');
  }, 60_000);

  it('a crash mid-push leaves the archive; the restart ends with exactly one image and one Checkpoint', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    // 96 MiB so the upload is still running when the process "dies".
    const big = Buffer.alloc(96 << 20);
    for (let i = 0; i < big.length; i += 1 << 20) randomBytes(4096).copy(big, i);
    const path = await dropArchive(ARCHIVE, big);
    const reg = registry;
    const ac = new AbortController();
    const first = agent(registry.host, { registryRetry: { attempts: 1, baseMs: 1, maxMs: 1 } });
    const crashed = first.scanOnce(ac.signal).catch((e: unknown) => e);
    await waitUntil(async () => {
      const uploads = await fetch(`http://${reg.host}/v2/_catalog`).then((r) => r.json() as Promise<{ repositories?: string[] }>);
      return (uploads.repositories ?? []).length > 0 || existsSync(join(reg.dir, 'data/docker/registry/v2/repositories/lazarus/shop/web-app/_uploads')) ? true : undefined;
    }, 20_000, 'the upload to start');
    ac.abort();
    await crashed;
    expect(existsSync(path)).toBe(true);
    expect(kube.list(CK_BASE)).toEqual([]);

    const second = agent(registry.host);
    expect(await second.scanOnce()).toEqual(new Map([[ARCHIVE, 'ready']]));
    expect(existsSync(path)).toBe(false);
    expect(await tags(registry.host, 'lazarus/shop/web-app')).toEqual([TAG]);
    expect(kube.list<Checkpoint>(CK_BASE).map((c) => [c.metadata.name, c.status?.phase])).toEqual([[CK_NAME, 'Ready']]);
  }, 90_000);

  it('a crash between creating the Checkpoint and its status converges on one Ready Checkpoint and one image', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    const path = await dropArchive();
    kube.failOnce.push(/^PATCH .*\/checkpoints\/[^/]+\/status$/);
    const a = agent(registry.host);
    expect(await a.scanOnce()).toEqual(new Map([[ARCHIVE, 'retry']]));
    expect(existsSync(path)).toBe(true);
    expect(kube.list<Checkpoint>(CK_BASE).map((c) => c.status?.phase)).toEqual([undefined]);

    const restarted = agent(registry.host);
    expect(await restarted.scanOnce()).toEqual(new Map([[ARCHIVE, 'ready']]));
    expect(existsSync(path)).toBe(false);
    expect(kube.list<Checkpoint>(CK_BASE).map((c) => c.status?.phase)).toEqual(['Ready']);
    expect(await tags(registry.host, 'lazarus/shop/web-app')).toEqual([TAG]);
    // The restart adopted the Checkpoint the first run created (POST → 409) instead of making a second.
    expect(kube.requests.filter((r) => r.startsWith('POST /apis/lazarus.dev')).length).toBe(2);
    // ...and never patched its spec (a ValidatingAdmissionPolicy forbids any spec change).
    expect(kube.requests.filter((r) => /^(PATCH|PUT) .*\/checkpoints\/[^/]+$/.test(r))).toEqual([]);
  }, 60_000);

  it('a restored pod hashes its original image, and a podman archive (no pod) becomes a Failed Checkpoint', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    const original = 'registry.example/web:1.4';
    const restored: Pod = structuredClone(POD);
    restored.metadata.annotations = { 'lazarus.dev/original-images': `app=${original}`, 'lazarus.dev/restored-from': 'app=web-app-20261126t000000z' };
    const first = restored.spec.containers[0];
    if (!first) throw new Error('fixture');
    first.image = `${registry.host}/lazarus/shop/web-app@sha256:${'1'.repeat(64)}`;
    kube.put(`/api/v1/namespaces/${NS}/pods/web-7d9c-abcde`, restored as unknown as Record<string, unknown>);
    await dropArchive();
    const podmanArchive = 'podman-export.tar';
    await writeArchive(join(checkpointDir, podmanArchive), checkpointEntries('podman'));
    const old = new Date(nowMs - 5_000);
    await utimes(join(checkpointDir, podmanArchive), old, old);

    const outcomes = await agent(registry.host).scanOnce();
    expect(outcomes).toEqual(new Map([[ARCHIVE, 'ready'], [podmanArchive, 'failed']]));
    const ck = kube.get<Checkpoint>(`${CK_BASE}/${CK_NAME}`);
    expect(ck?.spec.specHash).toBe(specHash(first, original));
    expect(ck?.spec.specHash).toBe(specHash(POD.spec.containers[0] ?? { name: '' }));
    expect(ck?.spec.baseImage).toBe(original);
    const failed = kube.list<Checkpoint>('/apis/lazarus.dev/v1alpha1/namespaces/lazarus/checkpoints');
    expect(failed.map((c) => [c.status?.phase, c.status?.reason])).toEqual([['Failed', expect.stringMatching(/Podman archive names no Kubernetes pod/)]]);
  }, 30_000);

  it('a pod evicted right after its checkpoint (a drain) still yields a Ready Checkpoint from the remembered spec', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    kube.put(`/api/v1/namespaces/${NS}/pods/web-7d9c-abcde`, { ...(POD as unknown as Record<string, unknown>), spec: { ...POD.spec, nodeName: 'node-a' } });
    kube.put(`/api/v1/namespaces/${NS}/pods/elsewhere`, { metadata: { name: 'elsewhere', namespace: NS }, spec: { nodeName: 'node-b', containers: [] } });
    const memory = new PodMemory({ kube: client, nodeName: 'node-a', log: silentLogger(), now: () => nowMs, retainMs: 3_600_000, sleep });
    const ac = new AbortController();
    const watching = memory.run(ac.signal);
    try {
      await waitUntil(async () => (memory.synced ? true : undefined), 10_000, 'the pod list');
      expect(memory.get(NS, 'elsewhere')).toBeUndefined();
      await dropArchive();
      const r = await fetch(`${kube.url}/api/v1/namespaces/${NS}/pods/web-7d9c-abcde`, { method: 'DELETE' });
      expect(r.status).toBe(200);
      expect(kube.get(`/api/v1/namespaces/${NS}/pods/web-7d9c-abcde`)).toBeUndefined();
      await waitUntil(async () => (memory.get(NS, 'web-7d9c-abcde') ? true : undefined), 10_000, 'the pod to be remembered');

      expect(await agent(registry.host, { pods: memory }).scanOnce()).toEqual(new Map([[ARCHIVE, 'ready']]));
      const ck = kube.get<Checkpoint>(`${CK_BASE}/${CK_NAME}`);
      expect(ck?.status?.phase).toBe('Ready');
      expect(ck?.spec.specHash).toBe(specHash(POD.spec.containers[0] ?? { name: '' }));
      expect(ck?.spec.workload).toEqual({ kind: 'Deployment', name: 'web' });
    } finally {
      ac.abort();
      await watching;
    }
  }, 30_000);

  it('without the remembered spec, an archive of a vanished pod is a Failed Checkpoint saying why', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    kube.delete(`/api/v1/namespaces/${NS}/pods/web-7d9c-abcde`);
    await dropArchive();
    expect(await agent(registry.host).scanOnce()).toEqual(new Map([[ARCHIVE, 'failed']]));
    expect(kube.list<Checkpoint>(CK_BASE).map((c) => c.status?.reason)).toEqual([expect.stringMatching(/web-7d9c-abcde no longer exists/)]);
  }, 30_000);

  /** A CRI-O archive of another pod of the same ReplicaSet: the recorded dumps with its name and UID. */
  async function dropReplicaArchive(pod: string, uid: string, name = `checkpoint-${pod}_shop-app-2026-11-27T12:00:00Z.tar`): Promise<string> {
    const entries = checkpointEntries('crio').map((e) => (typeof e.body === 'string'
      ? { ...e, body: e.body.replaceAll('web-7d9c-abcde', pod).replaceAll(POD_UID, uid) } : e));
    const path = join(checkpointDir, name);
    await writeArchive(path, entries);
    const old = new Date(nowMs - 10_000);
    await utimes(path, old, old);
    return path;
  }

  it('issue 13 point 6: two replicas checkpointed in the same second get two Checkpoints and two images', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    const uidB = '9f8e7d6c-0000-4000-8000-000000000002';
    kube.put(`/api/v1/namespaces/${NS}/pods/web-7d9c-fghij`, { ...(POD as unknown as Record<string, unknown>), metadata: { ...POD.metadata, name: 'web-7d9c-fghij', uid: uidB } });
    await dropArchive();
    const other = 'checkpoint-web-7d9c-fghij_shop-app-2026-11-27T12:00:00Z.tar';
    await dropReplicaArchive('web-7d9c-fghij', uidB, other);

    expect(await agent(registry.host).scanOnce()).toEqual(new Map([[ARCHIVE, 'ready'], [other, 'ready']]));
    const cks = kube.list<Checkpoint>(CK_BASE).sort((a, b) => a.spec.sourcePod.localeCompare(b.spec.sourcePod));
    expect(cks.map((c) => [c.metadata.name, c.spec.sourcePod, c.status?.phase])).toEqual([
      [CK_NAME, 'web-7d9c-abcde', 'Ready'],
      ['web-app-20261127t120000z-9f8e7d6c', 'web-7d9c-fghij', 'Ready'],
    ]);
    expect(cks[0]?.spec.takenAt).toBe(cks[1]?.spec.takenAt);
    expect((await tags(registry.host, 'lazarus/shop/web-app')).sort()).toEqual([TAG, '20261127t120000z-9f8e7d6c']);
    expect(kube.requests.filter((r) => /^(PATCH|PUT) .*\/checkpoints\/[^/]+$/.test(r))).toEqual([]);
  }, 30_000);

  it('issue 13 point 6: a name held by another pod\'s Checkpoint is never overwritten; the archive is recorded Failed', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    const theirs = {
      apiVersion: 'lazarus.dev/v1alpha1', kind: 'Checkpoint',
      metadata: { name: CK_NAME, namespace: NS, labels: { 'lazarus.dev/source-pod-uid': '1b2c3d4e-ffff-4000-8000-00000000000f' } },
      spec: { workload: { kind: 'Deployment', name: 'web' }, container: 'app', sourcePod: 'web-7d9c-zzzzz', image: 'theirs@sha256:' + 'f'.repeat(64), baseImage: 'x', specHash: 'ffffffffffffffff', takenAt: '2026-11-27T12:00:00.500Z', origin: {} },
      status: { phase: 'Ready', restores: 3 },
    };
    kube.put(`${CK_BASE}/${CK_NAME}`, theirs);
    await dropArchive();

    expect(await agent(registry.host).scanOnce()).toEqual(new Map([[ARCHIVE, 'failed']]));
    const kept = kube.get<Checkpoint>(`${CK_BASE}/${CK_NAME}`);
    expect(kept?.spec).toEqual(theirs.spec);
    expect(kept?.status).toEqual(theirs.status);
    const failed = kube.list<Checkpoint>(CK_BASE).filter((c) => c.metadata.name !== CK_NAME);
    expect(failed.map((c) => [c.status?.phase, c.status?.reason])).toEqual([['Failed', expect.stringMatching(/already exists for pod web-7d9c-zzzzz .*not overwriting it with pod web-7d9c-abcde's/)]]);
    expect(kube.requests.filter((r) => /^(PATCH|PUT) .*\/checkpoints\/[^/]+$/.test(r))).toEqual([]);
  }, 30_000);

  it('issue 13 point 7: a pod recreated under the same name (StatefulSet) before its archive is processed → Failed, saying why', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    const recreated = structuredClone(POD);
    recreated.metadata.uid = '77777777-0000-4000-8000-000000000007';
    const c = recreated.spec.containers[0];
    if (!c) throw new Error('fixture');
    c.image = 'registry.example/web:2.0';
    kube.put(`/api/v1/namespaces/${NS}/pods/web-7d9c-abcde`, recreated as unknown as Record<string, unknown>);
    await dropArchive();

    expect(await agent(registry.host).scanOnce()).toEqual(new Map([[ARCHIVE, 'failed']]));
    const cks = kube.list<Checkpoint>(CK_BASE);
    expect(cks.map((ck) => [ck.status?.phase, ck.spec.specHash, ck.status?.reason])).toEqual([
      ['Failed', '', expect.stringMatching(/web-7d9c-abcde was recreated before its checkpoint was processed \(the archive's pod UID is 1b2c3d4e-0000-4000-8000-000000000001, the pod's now 77777777/)],
    ]);
    expect(await tags(registry.host, 'lazarus/shop/web-app')).toEqual([]);
  }, 30_000);

  it('issue 13 point 7: with the old pod remembered after its deletion, the archive is stamped with the old pod\'s hash', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    kube.put(`/api/v1/namespaces/${NS}/pods/web-7d9c-abcde`, { ...(POD as unknown as Record<string, unknown>), spec: { ...POD.spec, nodeName: 'node-a' } });
    const memory = new PodMemory({ kube: client, nodeName: 'node-a', log: silentLogger(), now: () => nowMs, retainMs: 3_600_000, sleep });
    const ac = new AbortController();
    const watching = memory.run(ac.signal);
    try {
      await waitUntil(async () => (memory.synced ? true : undefined), 10_000, 'the pod list');
      await dropArchive();
      kube.delete(`/api/v1/namespaces/${NS}/pods/web-7d9c-abcde`);
      const recreated = structuredClone(POD);
      recreated.metadata.uid = '77777777-0000-4000-8000-000000000007';
      const c = recreated.spec.containers[0];
      if (!c) throw new Error('fixture');
      c.image = 'registry.example/web:2.0';
      kube.put(`/api/v1/namespaces/${NS}/pods/web-7d9c-abcde`, { ...(recreated as unknown as Record<string, unknown>), spec: { ...recreated.spec, nodeName: 'node-a' } });
      await waitUntil(async () => (memory.get(NS, 'web-7d9c-abcde')?.metadata.uid === recreated.metadata.uid ? true : undefined), 10_000, 'the new pod');

      expect(await agent(registry.host, { pods: memory }).scanOnce()).toEqual(new Map([[ARCHIVE, 'ready']]));
      const ck = kube.get<Checkpoint>(`${CK_BASE}/${CK_NAME}`);
      expect(ck?.spec.specHash).toBe(specHash(POD.spec.containers[0] ?? { name: '' }));
      expect(ck?.spec.specHash).not.toBe(specHash(c));
    } finally {
      ac.abort();
      await watching;
    }
  }, 30_000);

  it('issue 13 point 9: the spec hash the webhook stamped at admission wins over env and mounts injected after it', async () => {
    registry = await startRegistry();
    seed(kube, registry.host);
    const admitted = POD.spec.containers[0] ?? { name: '' };
    const running = structuredClone(POD);
    running.metadata.annotations = { 'lazarus.dev/spec-hashes': `app=${specHash(admitted)}` };
    const c = running.spec.containers[0];
    if (!c) throw new Error('fixture');
    c.env = [...(c.env ?? []), { name: 'INJECTED_BY_MESH', value: '1' }];
    c.volumeMounts = [{ name: 'mesh-certs', mountPath: '/etc/mesh' }];
    kube.put(`/api/v1/namespaces/${NS}/pods/web-7d9c-abcde`, running as unknown as Record<string, unknown>);
    await dropArchive();

    expect(await agent(registry.host).scanOnce()).toEqual(new Map([[ARCHIVE, 'ready']]));
    expect(kube.get<Checkpoint>(`${CK_BASE}/${CK_NAME}`)?.spec.specHash).toBe(specHash(admitted));
    expect(specHash(c)).not.toBe(specHash(admitted));
  }, 30_000);

  it('publishes node facts only when they change', async () => {
    seed(kube, '127.0.0.1:1');
    const a = agent('127.0.0.1:1');
    expect(await a.refreshFacts()).toBe(true);
    const node = kube.get<{ metadata: { labels: Record<string, string>; annotations: Record<string, string> } }>('/api/v1/nodes/node-a');
    expect(node?.metadata.labels).toMatchObject({ 'kubernetes.io/arch': 'amd64', 'lazarus.dev/criu-version': '40101', 'lazarus.dev/restore-capable': 'true' });
    expect(node?.metadata.annotations).toEqual({
      'lazarus.dev/restore-capable-reason': 'restore enabled (CRI-O 1.33.2, container_level_enabled = "checkpoint_restore")',
      'lazarus.dev/criu': '4.1.1', 'lazarus.dev/cpu-flags': 'avx2 fpu sse4_2', 'lazarus.dev/cgroup': 'v2',
    });
    expect(await a.refreshFacts()).toBe(false);
    expect(kube.requests.filter((r) => r.startsWith('PATCH /api/v1/nodes'))).toHaveLength(1);
  }, 30_000);

  it('turns restore-capable off, with the reason, when the runtime\'s restore switch goes off', async () => {
    seed(kube, '127.0.0.1:1');
    const a = agent('127.0.0.1:1');
    const saved = crioConfig;
    try {
      expect(await a.refreshFacts()).toBe(true);
      crioConfig = [{ path: '/etc/crio/crio.conf', missing: true }];
      expect(await a.refreshFacts()).toBe(true);
      const node = kube.get<{ metadata: { labels: Record<string, string>; annotations: Record<string, string> } }>('/api/v1/nodes/node-a');
      expect(node?.metadata.labels['lazarus.dev/restore-capable']).toBe('false');
      expect(node?.metadata.annotations['lazarus.dev/restore-capable-reason']).toMatch(/^CRI-O 1\.33\.2: restore is off: container_level_enabled is not set/);
    } finally {
      crioConfig = saved;
    }
  }, 30_000);
});

