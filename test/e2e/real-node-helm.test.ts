/**
 * test/e2e/real-node.test.ts' restore, with Lazarus installed by `helm install` of charts/lazarus
 * instead of `kubectl apply -k` (the same environment overlay, as Helm's post-renderer): the
 * counter is checkpointed on one containerd node and keeps counting on the other. Then a real
 * `helm upgrade` (its certificate Job runs again) turns uninstall.deleteCheckpoints on, and
 * `helm uninstall` runs the pre-delete Job on a node: the Checkpoints are gone, their images are
 * still in the registry.
 *
 * Needs root and the tools of scripts/install-checkpoint-tools.sh; under CI=true a missing one
 * fails the run, elsewhere the suite is skipped with the reason.
 */
import path from 'node:path';
import type { ControlPlane } from '../harness/control-plane.js';
import { realNodePreflight, type RealCluster } from '../harness/real-node.js';
import { LAZARUS_NAMESPACE, startRealLazarus, type InstalledLazarus, type RealLazarus } from '../harness/install.js';
import { repoRoot } from '../harness/kube-bin.js';
import { createNamespace, waitFor } from '../harness/wait.js';
import { counterBreak, counterScenario, type CounterScenario } from '../harness/counter-scenario.js';
import * as K from '../../api/keys.js';

const why = await realNodePreflight();

let cp: ControlPlane;
let cluster: RealCluster;
let lazarus: InstalledLazarus;
let real: RealLazarus | undefined;
let sc: CounterScenario;

const NS = 'shop';

const suite = why && process.env.CI !== 'true' ? describe.skip : describe;
if (why) console.warn(`real-node suite: ${why}`);

suite('on real nodes, Lazarus installed with helm', () => {
  beforeAll(async () => {
    if (why) throw new Error(`cannot run real nodes here: ${why}`);
    real = await startRealLazarus({ log: () => undefined, installer: 'helm' });
    ({ cp, cluster, lazarus } = real);
    await createNamespace(cp.client, NS);
    sc = counterScenario(cp, cluster, NS);
  }, 600_000);

  afterAll(() => real?.stop(), 150_000);

  const helm = (args: readonly string[]): Promise<string> => {
    if (!lazarus.helm) throw new Error('installLazarus did not install with helm');
    return lazarus.helm(args);
  };

  it('the release is deployed, and what runs is the chart\'s', async () => {
    expect(await helm(['status', 'lazarus', '--namespace', LAZARUS_NAMESPACE])).toContain('STATUS: deployed');
    const managedBy = await lazarus.kubectl(['-n', LAZARUS_NAMESPACE, 'get', 'ds', 'lazarus-agent', '-o', 'jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}']);
    expect(managedBy).toBe('Helm');
  });

  it('a checkpoint on demand, restored on the other containerd node, keeps counting', async () => {
    await sc.createCounter('counter', 'node-a');
    const first = await sc.runningPod('counter');
    expect(first.spec.nodeName).toBe('node-a');
    await sc.waitForCount(first.metadata.name, 3);

    const checkpoint = await sc.checkpointNow(first.metadata.name);
    // The registry came from the chart's registry.url value.
    expect(checkpoint.spec.image).toMatch(new RegExp(`^${cluster.registry.replace(/\./g, '\\.')}/lazarus/${NS}/counter-app@sha256:[0-9a-f]{64}$`));
    const atCheckpoint = (await sc.counts(first.metadata.name)).at(-1) ?? 0;
    await sc.cordon('node-a', true);
    try {
      await sc.deletePod(first.metadata.name);
      const restored = await sc.runningPod('counter', first.metadata.name);
      expect(restored.spec.nodeName).toBe('node-b');
      const from = /^app=(.+)$/.exec(restored.metadata.annotations?.[K.RESTORED_FROM] ?? '')?.[1];
      const used = (await sc.checkpointsOf(first.metadata.name)).find((c) => c.metadata.name === from);
      expect(used?.spec.origin.node).toBe('node-a');
      expect(restored.spec.containers[0]?.image).toBe(used?.spec.image);
      const seen = await sc.waitForCount(restored.metadata.name, atCheckpoint + 3);
      expect(counterBreak(seen)).toBeUndefined();
    } finally {
      await sc.cordon('node-a', false);
    }
  }, 240_000);

  it('upgrade turns uninstall.deleteCheckpoints on; uninstall then deletes the Checkpoints and leaves their images', async () => {
    const checkpoints = async (): Promise<Array<{ spec: { image?: string } }>> =>
      (await cp.client.request<{ items: Array<{ spec: { image?: string } }> }>('GET', '/apis/lazarus.dev/v1alpha1/checkpoints')).items;
    const before = await checkpoints();
    expect(before.length).toBeGreaterThan(0);
    const upgraded = await helm(['upgrade', 'lazarus', path.join(repoRoot(), 'charts/lazarus'), '--namespace', LAZARUS_NAMESPACE, '--reuse-values',
      '--set', 'uninstall.deleteCheckpoints=true', '--post-renderer', path.join(lazarus.overlayDir, 'post-render.sh'), '--timeout', '3m']);
    expect(upgraded).toContain('DELETES EVERY CHECKPOINT OBJECT');
    await lazarus.kubectl(['-n', LAZARUS_NAMESPACE, 'rollout', 'status', '--timeout=120s', 'daemonset/lazarus-agent']);

    expect(await helm(['uninstall', 'lazarus', '--namespace', LAZARUS_NAMESPACE, '--wait', '--timeout', '3m'])).toContain('release "lazarus" uninstalled');
    expect(await checkpoints()).toEqual([]);
    for (const image of before.map((c) => c.spec.image ?? '').filter(Boolean)) {
      const [repo, digest] = image.slice(cluster.registry.length + 1).split('@') as [string, string];
      const manifest = await fetch(`http://${cluster.registry}/v2/${repo}/manifests/${digest}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect({ image, status: manifest.status }).toEqual({ image, status: 200 });
    }
    await waitFor(async () => (await lazarus.kubectl(['-n', LAZARUS_NAMESPACE, 'get', 'deploy,ds', '-o', 'name'])).trim() === '', { timeoutMs: 60_000, description: 'Lazarus\' workloads gone' });
  }, 420_000);
});
