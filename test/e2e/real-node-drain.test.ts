/**
 * Issue 14 on real nodes: the stock `kubectl drain` loses nothing of a pod's state newer than a
 * few seconds. Lazarus holds each eviction (429, which drain retries) until a checkpoint taken
 * after the drain began is Ready, so the replacement continues from moments before the eviction,
 * not from an old periodic checkpoint; and it never holds longer than `evictionTimeout`, nor at
 * all when it is down.
 *
 * Real kubelets, containerd and CRI-O, real CRIU, a real registry, Lazarus installed from its own
 * image and manifests (test/harness/install.ts). Under CI=true a missing tool fails the run.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { ControlPlane } from '../harness/control-plane.js';
import { realNodePreflight, type RealCluster } from '../harness/real-node.js';
import { startRealLazarus, type InstalledLazarus, type RealLazarus } from '../harness/install.js';
import { createNamespace, listEvents, waitFor } from '../harness/wait.js';
import { counterBreak, counterScenario, restoreSeam, type CounterScenario } from '../harness/counter-scenario.js';
import * as K from '../../api/keys.js';
import type { Checkpoint } from '../../api/types.js';

const why = await realNodePreflight();

let cp: ControlPlane;
let cluster: RealCluster;
let lazarus: InstalledLazarus;
let real: RealLazarus | undefined;
let sc: CounterScenario;

const NS = 'drain';
/** The hold message of webhook/eviction.ts, as kubectl drain prints it between its retries. */
const HELD = /Lazarus is checkpointing/;

const suite = why && process.env.CI !== 'true' ? describe.skip : describe;
if (why) console.warn(`real-node drain suite: ${why}`);

interface Drain { code: number | null; output: string; ms: number }

/** `kubectl drain NODE` as an operator types it; resolves when it exits. */
function drain(node: string): Promise<Drain> {
  const started = Date.now();
  const child = spawn(path.join(cluster.binaries.kube, 'kubectl'), [
    `--kubeconfig=${cp.kubeconfigPath}`, 'drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=240s',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (b: Buffer) => { output += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { output += b.toString(); });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output, ms: Date.now() - started })));
}

/** The last count a pod printed before it went away (polled until its log is gone or `stop`). */
function lastCountOf(pod: string): { stop(): Promise<number> } {
  let last = 0;
  let stopped = false;
  const polling = (async () => {
    while (!stopped) {
      try {
        // Once the container is gone the kubelet may answer with words, not counts.
        const seen = (await sc.counts(pod)).filter(Number.isFinite).at(-1);
        if (seen !== undefined && seen > last) last = seen;
      } catch { /* evicted: its log is gone */ }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return { stop: async () => { stopped = true; await polling; return last; } };
}

const uncordon = (node: string): Promise<unknown> => sc.cordon(node, false);

const setPolicy = (checkpoint: Record<string, unknown>): Promise<string> =>
  lazarus.kubectl(['patch', 'restorepolicy', 'default', '--type=merge', '-p', JSON.stringify({ spec: { checkpoint } })]);

async function checkpointOf(restoredFrom: string | undefined): Promise<Checkpoint | undefined> {
  const name = /^app=(.+)$/.exec(restoredFrom ?? '')?.[1];
  if (!name) return undefined;
  return cp.client.request<Checkpoint>('GET', `/apis/lazarus.dev/v1alpha1/namespaces/${NS}/checkpoints/${name}`);
}

suite('kubectl drain on real nodes, Lazarus installed from its own image', () => {
  beforeAll(async () => {
    if (why) throw new Error(`cannot run real nodes here: ${why}`);
    real = await startRealLazarus({ log: () => undefined });
    ({ cp, cluster, lazarus } = real);
    await createNamespace(cp.client, NS);
    sc = counterScenario(cp, cluster, NS);
    // No periodic checkpoints: a restore can only come from the checkpoint a drain asked for.
    await setPolicy({ interval: '' });
  }, 600_000);

  afterAll(() => real?.stop(), 150_000);

  it('holds the eviction until a checkpoint newer than the drain is Ready; the replacement restores it on node-b and counts on from there', async () => {
    await sc.createCounter('counter', 'node-a');
    const first = await sc.runningPod('counter');
    expect(first.spec.nodeName).toBe('node-a');
    await sc.waitForCount(first.metadata.name, 5);

    const last = lastCountOf(first.metadata.name);
    const drainStart = Date.now();
    const result = await drain('node-a');
    const atEviction = await last.stop();
    try {
      expect(result.code).toBe(0);
      expect(result.output).toMatch(HELD);

      const restored = await sc.runningPod('counter', first.metadata.name);
      expect(restored.spec.nodeName).toBe('node-b');
      const used = await checkpointOf(restored.metadata.annotations?.[K.RESTORED_FROM]);
      expect(used?.spec.sourcePod).toBe(first.metadata.name);
      // Taken after the drain began (takenAt has whole seconds).
      expect(Date.parse(used?.spec.takenAt ?? '')).toBeGreaterThanOrEqual(drainStart - 1000);
      // The controller records which path took it (the hold, or the cordon), and explain says so.
      const trigger = await waitFor(async () => (await checkpointOf(restored.metadata.annotations?.[K.RESTORED_FROM]))?.status?.trigger, { timeoutMs: 30_000, description: 'the checkpoint\'s trigger' });
      expect(['eviction', 'drain']).toContain(trigger);
      expect(await sc.explain(restored.metadata.name)).toMatch(/\((eviction held for it|node cordoned)\): restored from this/);

      await sc.waitForCount(restored.metadata.name, atEviction + 2);
      expect(counterBreak(await sc.counts(restored.metadata.name))).toBeUndefined();
      const seam = restoreSeam(await sc.timedCounts(restored.metadata.name));
      const gap = atEviction - (seam?.held ?? 0);
      console.log(`[drain] node-a drained in ${String(result.ms)} ms; counter at eviction ${String(atEviction)}, checkpoint held ${String(seam?.held)}: state gap ${String(gap)} counts (~s); restore pause ${String(seam?.pauseMs)} ms`);
      // The checkpoint is from this drain, seconds before the eviction: never more than the
      // hold's bound behind, and never ahead of what the pod had printed.
      expect(gap).toBeGreaterThanOrEqual(0);
      expect(gap).toBeLessThanOrEqual(20);

      // Lazarus' own pods left node-a within their budgets and run elsewhere.
      await waitFor(async () => {
        const pods = (await cp.client.request<{ items: { metadata: { name: string; ownerReferences?: { kind: string }[] }; spec: { nodeName?: string }; status?: { phase?: string } }[] }>('GET', '/api/v1/namespaces/lazarus-system/pods')).items
          .filter((p) => !p.metadata.ownerReferences?.some((o) => o.kind === 'DaemonSet' || o.kind === 'Job'));
        return pods.length > 0 && pods.every((p) => p.spec.nodeName !== 'node-a' && p.status?.phase === 'Running') ? pods : undefined;
      }, { timeoutMs: 120_000, description: "Lazarus' own pods running off node-a" });
    } finally {
      await uncordon('node-a');
    }
  }, 420_000);

  it('with the registry down, the eviction is held at most evictionTimeout, then admitted with an Event saying why', async () => {
    const before = await sc.runningPod('counter');
    const node = before.spec.nodeName ?? '';
    expect(node).toBe('node-b');
    // A short bound, so the case ends in seconds.
    await setPolicy({ evictionTimeout: '20s' });
    cluster.freezeRegistry(true);
    let result: Drain;
    try {
      result = await drain(node);
    } finally {
      cluster.freezeRegistry(false);
      await uncordon(node);
    }
    expect(result.code).toBe(0);
    expect(result.output).toMatch(HELD);
    // Held, then let go: the 20 s bound plus kubectl's 5 s retry step and a slow CRIU.
    expect(result.ms).toBeGreaterThanOrEqual(20_000);
    const events = await waitFor(async () => {
      const list = (await listEvents(cp.client, NS, { kind: 'Pod', name: before.metadata.name })).filter((e) => e.type === 'Warning' && /evict/i.test(e.message ?? ''));
      return list.length ? list : undefined;
    }, { timeoutMs: 30_000, description: 'the Warning Event on the evicted pod' });
    expect(events[0]?.message).toMatch(/evictionTimeout|20s/);

    // The replacement: from the newest older checkpoint, or cold — running either way.
    const after = await sc.runningPod('counter', before.metadata.name, 240_000);
    const used = await checkpointOf(after.metadata.annotations?.[K.RESTORED_FROM]);
    if (used) expect(used.status?.phase).not.toBe('Failed');
  }, 420_000);

  it('with the webhook down, a drain is not held at all', async () => {
    const before = await sc.runningPod('counter');
    const node = before.spec.nodeName ?? '';
    await lazarus.kubectl(['-n', 'lazarus-system', 'scale', 'deployment/lazarus-webhook', '--replicas=0']);
    try {
      await waitFor(async () => {
        const pods = (await cp.client.request<{ items: unknown[] }>('GET', '/api/v1/namespaces/lazarus-system/pods', { query: { labelSelector: 'app.kubernetes.io/name=lazarus-webhook' } })).items;
        return pods.length === 0 ? true : undefined;
      }, { timeoutMs: 90_000, description: 'no webhook pods' });
      const result = await drain(node);
      expect(result.code).toBe(0);
      expect(result.output).not.toMatch(HELD);
      expect(result.output).not.toMatch(/will retry after/);
      console.log(`[drain] ${node} drained with the webhook down in ${String(result.ms)} ms`);
    } finally {
      await uncordon(node);
      await lazarus.kubectl(['-n', 'lazarus-system', 'scale', 'deployment/lazarus-webhook', '--replicas=2']);
    }
  }, 300_000);
});
