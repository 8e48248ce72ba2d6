/**
 * A rollout of Lazarus itself skips no restore (issue 13, housekeeping), on real nodes with
 * Lazarus installed from its own image (test/harness/install.ts): while pods of an opted-in
 * Deployment with a Ready checkpoint keep being created, `kubectl rollout restart` replaces both
 * webhook replicas. Every pod admitted during the rollout must carry the webhook's mutation (the
 * `lazarus.dev/restored-from` annotation): with `failurePolicy: Ignore`, a replica that stopped
 * answering before the API server stopped calling it would let pods through unmutated, silently.
 *
 * The pods are created the way the ReplicaSet controller creates them (its template, its
 * controller reference, `generateName`) as server-side dry runs: they pass the whole admission
 * chain, webhook included (`sideEffects: None`), but are not stored, so hundreds can be created
 * without hundreds of real restores.
 */
import type { ControlPlane } from '../harness/control-plane.js';
import { realNodePreflight, type RealCluster } from '../harness/real-node.js';
import { LAZARUS_NAMESPACE, startRealLazarus, type InstalledLazarus, type RealLazarus } from '../harness/install.js';
import { createNamespace } from '../harness/wait.js';
import { counterScenario, type Pod } from '../harness/counter-scenario.js';
import * as K from '../../api/keys.js';

const why = await realNodePreflight();

let cp: ControlPlane;
let cluster: RealCluster;
let lazarus: InstalledLazarus;
let real: RealLazarus | undefined;

const NS = 'rollout';
const APP = 'steady';

interface ReplicaSet { metadata: { name: string; uid: string; namespace: string }; spec: { template: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: Record<string, unknown> } } }

const suite = why && process.env.CI !== 'true' ? describe.skip : describe;
if (why) console.warn(`real-node suite: ${why}`);

suite('a rolling restart of the webhook, on real nodes', () => {
  beforeAll(async () => {
    if (why) throw new Error(`cannot run real nodes here: ${why}`);
    real = await startRealLazarus({ log: () => undefined });
    ({ cp, cluster, lazarus } = real);
    await createNamespace(cp.client, NS);
  }, 600_000);

  afterAll(() => real?.stop(), 150_000);

  it('misses no admission: every pod created while both replicas are replaced is restored', async () => {
    const sc = counterScenario(cp, cluster, NS);
    await sc.createCounter(APP, 'node-a');
    const first = await sc.runningPod(APP);
    await sc.waitForCount(first.metadata.name, 2);
    await sc.checkpointNow(first.metadata.name);

    // The ReplicaSet's own pod, as its controller would send it, but a dry run.
    const rs = (await cp.client.request<{ items: ReplicaSet[] }>('GET', `/apis/apps/v1/namespaces/${NS}/replicasets`, { query: { labelSelector: `app=${APP}` } })).items[0];
    if (!rs) throw new Error('no ReplicaSet');
    const template = rs.spec.template;
    const body = {
      apiVersion: 'v1', kind: 'Pod',
      metadata: {
        generateName: `${rs.metadata.name}-`, namespace: NS, labels: template.metadata.labels ?? {}, annotations: template.metadata.annotations ?? {},
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs.metadata.name, uid: rs.metadata.uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: template.spec,
    };
    const admit = async (): Promise<{ restored: boolean; detail: string }> => {
      try {
        const pod = await cp.client.request<Pod>('POST', `/api/v1/namespaces/${NS}/pods`, { body, query: { dryRun: 'All' } });
        const from = pod.metadata.annotations?.[K.RESTORED_FROM];
        return { restored: from !== undefined, detail: from ?? 'no restored-from annotation' };
      } catch (err) {
        return { restored: false, detail: `create failed: ${err instanceof Error ? err.message : String(err)}` };
      }
    };
    // Before the rollout: the webhook's caches have the Ready checkpoint.
    const warm = Date.now() + 30_000;
    while (!(await admit()).restored) {
      if (Date.now() > warm) throw new Error(`pods are not restored even before the rollout: ${(await admit()).detail}`);
      await new Promise((r) => setTimeout(r, 500));
    }

    const webhookPods = async (): Promise<string[]> => (await cp.client.request<{ items: Pod[] }>('GET', `/api/v1/namespaces/${LAZARUS_NAMESPACE}/pods`, { query: { labelSelector: 'app.kubernetes.io/name=lazarus-webhook' } }))
      .items.map((p) => p.metadata.name).sort();
    const before = await webhookPods();
    expect(before).toHaveLength(2);

    const outcomes: Array<{ at: number; restored: boolean; detail: string }> = [];
    let probing = true;
    const start = Date.now();
    const prober = (async () => {
      while (probing) {
        outcomes.push({ at: Date.now() - start, ...(await admit()) });
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      await lazarus.kubectl(['-n', LAZARUS_NAMESPACE, 'rollout', 'restart', 'deployment/lazarus-webhook']);
      await lazarus.kubectl(['-n', LAZARUS_NAMESPACE, 'rollout', 'status', '--timeout=180s', 'deployment/lazarus-webhook']);
      // The old replicas are still draining after the rollout reports done; keep creating pods until they are gone.
      const gone = Date.now() + 60_000;
      while ((await webhookPods()).some((p) => before.includes(p)) && Date.now() < gone) await new Promise((r) => setTimeout(r, 500));
      await new Promise((r) => setTimeout(r, 2_000));
    } finally {
      probing = false;
      await prober;
    }
    const after = await webhookPods();
    expect(after.filter((p) => before.includes(p))).toEqual([]); // both replicas were replaced
    const missed = outcomes.filter((o) => !o.restored);
    console.log(`webhook rollout on real nodes: ${outcomes.length} pods created over ${Math.round((Date.now() - start) / 1000)} s while ${before.join(', ')} were replaced by ${after.join(', ')}; ${missed.length} missed`);
    expect(missed).toEqual([]);
    expect(outcomes.length).toBeGreaterThan(100);
  }, 420_000);
});
