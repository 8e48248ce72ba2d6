/**
 * The mission on real nodes, with nothing imitated: three kubelets (two on containerd 2.3.7, one
 * on CRI-O 1.34.0), real pods, CRIU 4.1, a loopback registry, and Lazarus installed from its own
 * image with `kubectl apply -k` (test/harness/install.ts). A counter Deployment is checkpointed
 * on demand through the kubelet API; its replacement comes back from that checkpoint on another
 * node and keeps counting — or starts cold wherever restoring would be wrong.
 *
 * Needs root and the tools of scripts/install-checkpoint-tools.sh; under CI=true a missing one
 * fails the run, elsewhere the suite is skipped with the reason.
 */
import path from 'node:path';
import type { ControlPlane } from '../harness/control-plane.js';
import { realNodePreflight, type RealCluster } from '../harness/real-node.js';
import { startRealLazarus, type InstalledLazarus, type RealLazarus } from '../harness/install.js';
import { createNamespace, listEvents, waitFor } from '../harness/wait.js';
import { counterBreak, counterScenario, type CounterScenario, type Pod } from '../harness/counter-scenario.js';
import * as K from '../../api/keys.js';
import type { Checkpoint } from '../../api/types.js';

const why = await realNodePreflight();

interface Node { metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> } }

let cp: ControlPlane;
let cluster: RealCluster;
let lazarus: InstalledLazarus;
let real: RealLazarus | undefined;
let sc: CounterScenario;

const NS = 'shop';

const suite = why && process.env.CI !== 'true' ? describe.skip : describe;
if (why) console.warn(`real-node suite: ${why}`);

suite('on real nodes, Lazarus installed from its own image', () => {
  beforeAll(async () => {
    if (why) throw new Error(`cannot run real nodes here: ${why}`);
    real = await startRealLazarus({ log: () => undefined });
    ({ cp, cluster, lazarus } = real);
    await createNamespace(cp.client, NS);
    sc = counterScenario(cp, cluster, NS);
  }, 600_000);

  afterAll(() => real?.stop(), 150_000);

  it('each node publishes what its CRIU, CPU and runtime really are', async () => {
    const nodes = (await cp.client.request<{ items: Node[] }>('GET', '/api/v1/nodes')).items;
    expect(nodes.map((n) => n.metadata.name).sort()).toEqual(['node-a', 'node-b', 'node-c']);
    for (const n of nodes) {
      expect(n.metadata.labels?.[K.NODE_RESTORE_CAPABLE]).toBe('true');
      expect(n.metadata.labels?.[K.NODE_CRIU_VERSION]).toBe('40101');
      expect(n.metadata.annotations?.[K.NODE_CRIU]).toBe('4.1.1');
      expect(n.metadata.annotations?.[K.NODE_CPU_FLAGS]?.split(' ')).toContain('sse2');
    }
    const reason = (name: string): string | undefined => nodes.find((n) => n.metadata.name === name)?.metadata.annotations?.[K.NODE_RESTORE_CAPABLE_REASON];
    expect(reason('node-a')).toMatch(/containerd 2\.3\.7.*enable_experimental_restore_via_create = true/);
    expect(reason('node-c')).toMatch(/CRI-O 1\.34\.0.*checkpoint_restore/);
  });

  it('a checkpoint on demand, restored on the other containerd node (never on CRI-O), keeps counting', async () => {
    await sc.createCounter('counter', 'node-a');
    const first = await sc.runningPod('counter');
    expect(first.spec.nodeName).toBe('node-a');
    // Admitted cold (nothing to restore yet), stamped with the hashes the webhook computed.
    expect(first.metadata.annotations?.[K.COLD_START]).toContain('no checkpoint of Deployment counter container app');
    expect(first.metadata.annotations?.[K.SPEC_HASHES]).toMatch(/^app=[0-9a-f]{16}$/);
    await sc.waitForCount(first.metadata.name, 3);

    const checkpoint = await sc.checkpointNow(first.metadata.name);
    expect(checkpoint.spec.image).toMatch(new RegExp(`^${cluster.registry.replace(/\./g, '\\.')}/lazarus/${NS}/counter-app@sha256:[0-9a-f]{64}$`));
    expect(checkpoint.spec.origin).toMatchObject({ node: 'node-a', runtime: 'containerd://2.3.7', criuVersion: 40101 });
    // Unique per source pod: replicas checkpointed in the same second never share a name.
    expect(checkpoint.metadata.name).toMatch(new RegExp(`-${(first.metadata.uid ?? '').slice(0, 8)}$`));
    // The image is really in the registry.
    const [repo, digest] = (checkpoint.spec.image ?? '').slice(cluster.registry.length + 1).split('@') as [string, string];
    const manifest = await fetch(`http://${cluster.registry}/v2/${repo}/manifests/${digest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(manifest.status).toBe(200);

    // The checkpointed count lies between what the log said just before and just after.
    const atCheckpoint = (await sc.counts(first.metadata.name)).at(-1) ?? 0;
    await sc.cordon('node-a', true);
    try {
      await sc.deletePod(first.metadata.name);
      const restored = await sc.runningPod('counter', first.metadata.name);
      expect(restored.spec.nodeName).toBe('node-b');
      // From the checkpoint taken on demand, or a fresher one the cordon made (onDrain).
      const from = /^app=(.+)$/.exec(restored.metadata.annotations?.[K.RESTORED_FROM] ?? '')?.[1];
      const used = (await sc.checkpointsOf(first.metadata.name)).find((c) => c.metadata.name === from);
      expect(used?.spec.origin.node).toBe('node-a');
      expect(restored.spec.containers[0]?.image).toBe(used?.spec.image);
      expect(restored.status?.containerStatuses?.[0]?.restartCount).toBe(0);
      // Placed safely even without the extender: the required affinity names every hard filter.
      const required = restored.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[0]?.matchExpressions ?? [];
      expect(required).toEqual(expect.arrayContaining([
        { key: K.NODE_RESTORE_CAPABLE, operator: 'In', values: ['true'] },
        { key: K.NODE_RUNTIME, operator: 'In', values: ['containerd'] },
      ]));
      // Continues from the checkpoint: one unbroken sequence 1, 2, … past the checkpointed value
      // (a cold start would begin again at 1 in a log of its own).
      const seen = await sc.waitForCount(restored.metadata.name, atCheckpoint + 3);
      expect(counterBreak(seen)).toBeUndefined();
      const why = await sc.explain(restored.metadata.name);
      expect(why).toMatch(/node-c\s+runtime cri-o differs from the checkpoint's containerd/);
      expect(why).toMatch(/node-b\s+score\s+\d+\s+← bound here/);
    } finally {
      await sc.cordon('node-a', false);
    }
  }, 240_000);

  it('a changed pod template starts cold', async () => {
    await cp.client.request('PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/counter`, {
      body: { spec: { template: { spec: { containers: [{ name: 'app', env: [{ name: 'VERSION', value: '2' }] }] } } } },
      contentType: 'application/strategic-merge-patch+json',
    });
    const fresh = await waitFor(async () => (await sc.podsOf('counter')).find((p) => p.status?.containerStatuses?.[0]?.state?.running && p.spec.containers[0]?.image === cluster.busybox && !p.metadata.annotations?.[K.RESTORED_FROM]), { timeoutMs: 90_000, description: 'a cold pod of the new template' });
    expect(fresh.metadata.annotations?.[K.RESTORED_FROM]).toBeUndefined();
    const seen = await sc.waitForCount(fresh.metadata.name, 1);
    expect(seen[0]).toBe(1);
  }, 120_000);

  it("a CRI-O workload's checkpoint, with no other CRI-O node to take it, starts cold on containerd", async () => {
    await sc.createCounter('crio-counter', 'node-c');
    const first = await sc.runningPod('crio-counter');
    expect(first.spec.nodeName).toBe('node-c');
    await sc.waitForCount(first.metadata.name, 2);
    const checkpoint = await sc.checkpointNow(first.metadata.name);
    expect(checkpoint.spec.origin).toMatchObject({ node: 'node-c', runtime: 'cri-o://1.34.0' });
    await sc.cordon('node-c', true);
    try {
      await sc.deletePod(first.metadata.name);
      const cold = await sc.runningPod('crio-counter', first.metadata.name);
      expect(['node-a', 'node-b']).toContain(cold.spec.nodeName);
      expect(cold.metadata.annotations?.[K.RESTORED_FROM]).toBeUndefined();
      expect(cold.spec.containers[0]?.image).toBe(cluster.busybox);
      expect((await sc.waitForCount(cold.metadata.name, 1))[0]).toBe(1);
    } finally {
      await sc.cordon('node-c', false);
    }
  }, 240_000);

  it('a restore that fails on the node ends in a cold start, and the Checkpoint is marked Failed with the reason', async () => {
    await sc.createCounter('fragile', 'node-a');
    const first = await sc.runningPod('fragile');
    await sc.waitForCount(first.metadata.name, 2);
    const checkpoint = await sc.checkpointNow(first.metadata.name);
    // The checkpoint image's layer disappears from the registry: node-b, which never pulled it,
    // cannot restore (node-a has it cached, so new pods are kept off it — by a taint, not a
    // cordon, which would take a fresh drain checkpoint).
    const [repo, digest] = (checkpoint.spec.image ?? '').slice(cluster.registry.length + 1).split('@') as [string, string];
    const manifest = await (await fetch(`http://${cluster.registry}/v2/${repo}/manifests/${digest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json() as { layers: Array<{ digest: string }> };
    for (const layer of manifest.layers) expect((await fetch(`http://${cluster.registry}/v2/${repo}/blobs/${layer.digest}`, { method: 'DELETE' })).status).toBe(202);
    await sc.taintAway('node-a', true);
    try {
      await sc.deletePod(first.metadata.name);
      const failed = await waitFor(async () => {
        const c = await cp.client.request<Checkpoint>('GET', `/apis/lazarus.dev/v1alpha1/namespaces/${NS}/checkpoints/${checkpoint.metadata.name}`);
        return c.status?.phase === 'Failed' ? c : undefined;
      }, { timeoutMs: 120_000, description: 'the Checkpoint to be marked Failed' });
      expect(failed.status?.reason ?? failed.status?.lastRestore?.message).toMatch(/ErrImagePull|ImagePullBackOff|not found|blob/i);
      const cold = await waitFor(async () => (await sc.podsOf('fragile')).find((p) => p.status?.containerStatuses?.[0]?.state?.running && !p.metadata.annotations?.[K.RESTORED_FROM]), { timeoutMs: 90_000, description: 'a cold replacement' });
      expect((await sc.waitForCount(cold.metadata.name, 1))[0]).toBe(1);
      const events = await listEvents(cp.client, NS, { reason: 'RestoreFailed' });
      expect(events.length).toBeGreaterThan(0);
    } finally {
      await sc.taintAway('node-a', false);
    }
  }, 300_000);

  it('the agent pod killed while an archive waits loses nothing: one image, one Checkpoint', async () => {
    await sc.createCounter('steady', 'node-b');
    const pod = await sc.runningPod('steady');
    expect(pod.spec.nodeName).toBe('node-b');
    await sc.waitForCount(pod.metadata.name, 2);
    const agent = async (): Promise<string | undefined> => (await cp.client.request<{ items: Pod[] }>('GET', '/api/v1/namespaces/lazarus-system/pods', { query: { labelSelector: 'app.kubernetes.io/name=lazarus-agent', fieldSelector: 'spec.nodeName=node-b' } }))
      .items.find((p) => !p.metadata.deletionTimestamp && p.status?.containerStatuses?.[0]?.state?.running)?.metadata.name;
    const before = await agent();
    expect(before).toBeDefined();
    const archives = path.join(cluster.nodes.find((n) => n.name === 'node-b')?.kubeletDir ?? '', 'checkpoints');
    const { readdir } = await import('node:fs/promises');
    await cp.client.request('PATCH', `/api/v1/namespaces/${NS}/pods/${pod.metadata.name}`, { body: { metadata: { annotations: { [K.CHECKPOINT_REQUEST]: 'now' } } }, contentType: 'application/merge-patch+json' });
    // The moment the kubelet's archive lands, the agent that should take it is killed.
    await waitFor(async () => (await readdir(archives).catch(() => [])).some((f) => f.includes(pod.metadata.name)), { timeoutMs: 30_000, intervalMs: 20, description: 'the archive' });
    await lazarus.kubectl(['-n', 'lazarus-system', 'delete', 'pod', before ?? '', '--grace-period=0', '--force']);
    const ready = await waitFor(async () => { const c = (await sc.checkpointsOf(pod.metadata.name)).filter((x) => x.status?.phase === 'Ready'); return c.length > 0 ? c : undefined; }, { timeoutMs: 120_000, description: 'a Ready Checkpoint from the new agent' });
    expect(await agent()).not.toBe(before);
    await new Promise((r) => setTimeout(r, 3000));
    expect(await sc.checkpointsOf(pod.metadata.name)).toHaveLength(1);
    expect(ready).toHaveLength(1);
    expect(await readdir(archives)).toEqual([]);
    const tags = await (await fetch(`http://${cluster.registry}/v2/lazarus/${NS}/steady-app/tags/list`)).json() as { tags: string[] | null };
    expect(tags.tags ?? []).toHaveLength(1);
  }, 240_000);

  it('a periodic policy takes checkpoints and retention keeps `retain` of them', async () => {
    await cp.client.request('POST', '/apis/lazarus.dev/v1alpha1/restorepolicies', {
      body: {
        apiVersion: 'lazarus.dev/v1alpha1', kind: 'RestorePolicy', metadata: { name: 'periodic' },
        spec: { priority: 10, workloadSelector: { matchLabels: { tier: 'periodic' } }, mode: 'OptIn', checkpoint: { interval: '10s', retain: 2, registry: `${cluster.registry}/lazarus` } },
      },
    });
    await sc.createCounter('ticker', 'node-a', { tier: 'periodic' });
    const pod = await sc.runningPod('ticker');
    // At least three checkpoints taken, one every interval…
    const seen: string[] = [];
    await waitFor(async () => {
      for (const c of await sc.checkpointsOf(pod.metadata.name)) if (c.status?.phase === 'Ready' && !seen.includes(c.metadata.name ?? '')) seen.push(c.metadata.name ?? '');
      return seen.length >= 3;
    }, { timeoutMs: 90_000, intervalMs: 500, description: 'three periodic checkpoints' });
    // …and retention (brought forward by each new checkpoint) leaves `retain` Ready ones, the oldest gone.
    await waitFor(async () => {
      const ready = (await sc.checkpointsOf(pod.metadata.name)).filter((c) => c.status?.phase === 'Ready');
      return ready.length <= 2 && !ready.some((c) => c.metadata.name === seen[0]);
    }, { timeoutMs: 30_000, intervalMs: 200, description: 'retention to keep 2 and drop the oldest' });
  }, 240_000);
});
