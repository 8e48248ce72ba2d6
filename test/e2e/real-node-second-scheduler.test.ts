/**
 * manifests/overlays/second-scheduler on real nodes: for clusters whose default scheduler cannot
 * be configured. kube-scheduler runs as pods of its own image (scripts/images.sh kube-scheduler),
 * takes its `lazarus-scheduler` Lease, and the default RestorePolicy sends restored pods to it;
 * it calls the extender behind its Service. The restored counter lands on the other containerd
 * node through that scheduler and keeps counting.
 *
 * Needs root and the tools of scripts/install-checkpoint-tools.sh; under CI=true a missing one
 * fails the run, elsewhere the suite is skipped with the reason.
 */
import type { ControlPlane } from '../harness/control-plane.js';
import { realNodePreflight } from '../harness/real-node.js';
import { startRealLazarus, type RealLazarus } from '../harness/install.js';
import { createNamespace, waitFor } from '../harness/wait.js';
import { counterBreak, counterScenario, type CounterScenario } from '../harness/counter-scenario.js';
import * as K from '../../api/keys.js';

const why = await realNodePreflight();
const NS = 'second';
let cp: ControlPlane;
let real: RealLazarus | undefined;
let sc: CounterScenario;

const suite = why && process.env.CI !== 'true' ? describe.skip : describe;
if (why) console.warn(`second-scheduler real-node suite: ${why}`);

suite('the second-scheduler overlay on real nodes', () => {
  beforeAll(async () => {
    if (why) throw new Error(`cannot run real nodes here: ${why}`);
    // The control plane's own scheduler has no extender here: only the overlay's scheduler uses it.
    real = await startRealLazarus({ variant: 'second-scheduler', schedulerExtender: false, log: () => undefined });
    cp = real.cp;
    await createNamespace(cp.client, NS);
    sc = counterScenario(cp, real.cluster, NS);
  }, 600_000);

  afterAll(() => real?.stop(), 150_000);

  it('the scheduler pods hold their own Lease', async () => {
    const lease = await waitFor(async () => {
      const l = await cp.client.request<{ spec?: { holderIdentity?: string } }>('GET', '/apis/coordination.k8s.io/v1/namespaces/lazarus-system/leases/lazarus-scheduler').catch(() => undefined);
      return l?.spec?.holderIdentity ? l : undefined;
    }, { timeoutMs: 60_000, description: 'the lazarus-scheduler Lease to be held' });
    expect(lease.spec?.holderIdentity).toMatch(/^lazarus-scheduler-/);
  }, 90_000);

  it('a restored pod is placed by the second scheduler, through the extender, and keeps counting', async () => {
    await sc.createCounter('counter', 'node-a');
    const first = await sc.runningPod('counter');
    expect(first.spec.nodeName).toBe('node-a');
    // A cold pod is not the restore scheduler's: it goes to the default one.
    expect(first.spec.schedulerName).toBe('default-scheduler');
    await sc.waitForCount(first.metadata.name, 3);
    await sc.checkpointNow(first.metadata.name);
    const atCheckpoint = (await sc.counts(first.metadata.name)).at(-1) ?? 0;
    await sc.cordon('node-a', true);
    try {
      await sc.deletePod(first.metadata.name);
      const restored = await sc.runningPod('counter', first.metadata.name);
      expect(restored.spec.schedulerName).toBe('lazarus-scheduler');
      expect(restored.metadata.annotations?.[K.RESTORED_FROM]).toMatch(/^app=counter-app-/);
      // node-c (CRI-O) passes the webhook's required affinity; only the extender keeps it off.
      expect(restored.spec.nodeName).toBe('node-b');
      const seen = await sc.waitForCount(restored.metadata.name, atCheckpoint + 2);
      expect(counterBreak(seen)).toBeUndefined();
    } finally {
      await sc.cordon('node-a', false);
    }
  }, 240_000);
});
