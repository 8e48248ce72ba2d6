/**
 * `npm run bench:drain` — issue 14 on real nodes (test/harness/real-node.ts: two containerd 2.3.7
 * nodes and one CRI-O node, Lazarus installed from its own image): how long the stock
 * `kubectl drain` of a node with 1, 5 and 20 opted-in counter pods takes with Lazarus holding
 * each eviction for a fresh checkpoint, against the same drain with Lazarus' webhook and
 * controller scaled to zero (no hold, no checkpoints: what a cluster without Lazarus sees), measured in the same run; and the state
 * gap each restored pod shows: the count its predecessor had printed when it was evicted minus
 * the count the checkpoint held (the restored log's seam, test/harness/counter-scenario.ts
 * restoreSeam). A counter prints once a second, so the gap is in seconds of lost state.
 *
 * The policy is the default one (onDrain: true, so the cordon also checkpoints) with no periodic
 * interval and `evictionTimeout: 5m`, so that no hold ends early. node-c (CRI-O) is tainted, so
 * replacements land on node-b; a first drain moves Lazarus' own pods off node-a, so every round
 * drains only the app's pods. Writes the `Drain` section of bench/RESULTS.md (`--no-write` to
 * skip). Not a test: no thresholds.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { recordSection } from './results.js';
import { median } from './restore-times.js';
import type { ControlPlane } from '../test/harness/control-plane.js';
import { realNodePreflight, type RealCluster } from '../test/harness/real-node.js';
import { startRealLazarus, type RealLazarus } from '../test/harness/install.js';
import { createNamespace, waitFor } from '../test/harness/wait.js';
import { COUNTER_SCRIPT, counterScenario, preferringDeployment, restoreSeam, type TimedCount } from '../test/harness/counter-scenario.js';
import * as K from '../api/keys.js';
import type { Checkpoint } from '../api/types.js';

const NS = 'drain-bench';
const ORIGIN = 'node-a';
const TARGET = 'node-b';
const AWAY = 'node-c';
const SIZES = (process.env.LAZARUS_BENCH_PODS ?? '1,5,20').split(',').map(Number);

type Mode = 'without' | 'with';
interface Pod {
  metadata: { name: string; annotations?: Record<string, string>; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status?: { containerStatuses?: Array<{ state?: { running?: unknown } }> };
}
interface Round { pods: number; mode: Mode; drainMs: number; restored: number; gaps: number[] }

const log = (line: string): void => { process.stderr.write(`${line}\n`); };
const secs = (ms: number): string => (ms / 1000).toFixed(1);

class Bench {
  constructor(private readonly cp: ControlPlane, private readonly cluster: RealCluster, private readonly signal: AbortSignal) {}

  private get client(): ControlPlane['client'] { return this.cp.client; }

  private wait<T>(check: () => Promise<T | undefined | false>, description: string, timeoutMs = 180_000, intervalMs = 250): Promise<T> {
    return waitFor(check, { timeoutMs, intervalMs, description, signal: this.signal });
  }

  kubectl(args: readonly string[]): Promise<{ code: number | null; output: string; ms: number }> {
    const started = Date.now();
    const child = spawn(path.join(this.cluster.binaries.kube, 'kubectl'), [`--kubeconfig=${this.cp.kubeconfigPath}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'], signal: this.signal });
    let output = '';
    child.stdout.on('data', (b: Buffer) => { output += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { output += b.toString(); });
    return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output, ms: Date.now() - started })));
  }

  async drain(node: string): Promise<number> {
    const r = await this.kubectl(['drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=600s']);
    if (r.code !== 0) throw new Error(`kubectl drain ${node} exited ${String(r.code)}: ${r.output}`);
    return r.ms;
  }

  async cordon(node: string, on: boolean): Promise<void> {
    await this.client.request('PATCH', `/api/v1/nodes/${node}`, { body: { spec: { unschedulable: on } }, contentType: 'application/merge-patch+json' });
  }

  async taint(node: string, on: boolean): Promise<void> {
    await this.client.request('PATCH', `/api/v1/nodes/${node}`, { body: { spec: { taints: on ? [{ key: 'lazarus.bench/away', effect: 'NoSchedule' }] : null } }, contentType: 'application/merge-patch+json' });
  }

  async pods(app: string): Promise<Pod[]> {
    return (await this.client.request<{ items: Pod[] }>('GET', `/api/v1/namespaces/${NS}/pods`, { query: { labelSelector: `app=${app}` } })).items;
  }

  async running(app: string, n: number, not: ReadonlySet<string> = new Set()): Promise<Pod[]> {
    return this.wait(async () => {
      const pods = (await this.pods(app)).filter((p) => !p.metadata.deletionTimestamp && !not.has(p.metadata.name));
      return pods.length === n && pods.every((p) => p.status?.containerStatuses?.[0]?.state?.running) ? pods : undefined;
    }, `${String(n)} running pods of ${app}`);
  }

  counts(pod: string): Promise<TimedCount[]> {
    return counterScenario(this.cp, this.cluster, NS).timedCounts(pod);
  }

  /** The last count each pod printed before it went away, polled until `stop`. */
  lastCounts(pods: readonly string[]): { stop(): Promise<Map<string, number>> } {
    const last = new Map<string, number>();
    let stopped = false;
    const polling = (async () => {
      while (!stopped) {
        await Promise.all(pods.map(async (pod) => {
          try {
            const n = (await this.counts(pod)).at(-1)?.[1];
            if (n !== undefined && n > (last.get(pod) ?? 0)) last.set(pod, n);
          } catch { /* evicted */ }
        }));
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    return { stop: async () => { stopped = true; await polling; return last; } };
  }

  /** Scales Lazarus' webhook and controller (down: no hold, no drain checkpoints; up: as installed). */
  async lazarus(up: boolean): Promise<void> {
    for (const [name, replicas] of [['lazarus-webhook', 2], ['lazarus-controller', 1]] as const) {
      const n = up ? replicas : 0;
      const r = await this.kubectl(['-n', 'lazarus-system', 'scale', `deployment/${name}`, `--replicas=${String(n)}`]);
      if (r.code !== 0) throw new Error(r.output);
      await this.wait(async () => {
        const pods = (await this.client.request<{ items: Pod[] }>('GET', '/api/v1/namespaces/lazarus-system/pods', { query: { labelSelector: `app.kubernetes.io/name=${name}` } })).items;
        return pods.length === n && pods.every((p) => !p.metadata.deletionTimestamp && (n === 0 || p.status?.containerStatuses?.[0]?.state?.running));
      }, `${String(n)} pods of ${name}`);
    }
  }

  async round(pods: number, mode: Mode): Promise<Round> {
    const app = `c${String(pods)}-${mode}`;
    // Every pod on node-a: the other nodes are cordoned while they are placed.
    await this.cordon(TARGET, true);
    await this.client.request('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, {
      body: preferringDeployment({ name: app, image: this.cluster.busybox, command: COUNTER_SCRIPT, preferredNode: ORIGIN, replicas: pods }),
    });
    const before = await this.running(app, pods);
    await this.cordon(TARGET, false);
    await this.wait(async () => (await Promise.all(before.map(async (p) => (await this.counts(p.metadata.name)).at(-1)?.[1] ?? 0))).every((n) => n >= 3), `${app} counting`);
    if (mode === 'without') await this.lazarus(false);

    const names = before.map((p) => p.metadata.name);
    const watch = this.lastCounts(names);
    const drainMs = await this.drain(ORIGIN);
    const atEviction = await watch.stop();
    // Back up while node-a is still cordoned, so Lazarus' pods stay off it.
    if (mode === 'without') await this.lazarus(true);
    await this.cordon(ORIGIN, false);
    const after = await this.running(app, pods, new Set(names));

    // Which pod each checkpoint came from, read at once: retention may expire some soon after
    // their pods are gone (a restored pod keeps running without its checkpoint).
    const sources = new Map((await this.client.request<{ items: Checkpoint[] }>('GET', `/apis/lazarus.dev/v1alpha1/namespaces/${NS}/checkpoints`)).items
      .map((c) => [c.metadata.name ?? '', c.spec.sourcePod] as const));
    const gaps: number[] = [];
    let restored = 0;
    for (const p of after) {
      const from = /^app=(.+)$/.exec(p.metadata.annotations?.[K.RESTORED_FROM] ?? '')?.[1];
      if (!from) continue;
      restored++;
      const seam = restoreSeam(await this.counts(p.metadata.name));
      const evicted = atEviction.get(sources.get(from) ?? '');
      if (seam && evicted !== undefined) gaps.push(evicted - seam.held);
    }
    log(`[bench] ${String(pods)} pod(s) ${mode} Lazarus: drain ${secs(drainMs)} s, ${String(restored)} restored, gaps ${gaps.join(' ')}`);
    await this.client.request('DELETE', `/apis/apps/v1/namespaces/${NS}/deployments/${app}`, { query: { propagationPolicy: 'Background' } });
    await this.wait(async () => (await this.pods(app)).length === 0, `the pods of ${app} to go`);
    return { pods, mode, drainMs, restored, gaps };
  }
}

function report(rounds: readonly Round[], meta: { started: string; loadStart: string; loadEnd: string }): string {
  const rows = SIZES.map((n) => {
    const without = rounds.find((r) => r.pods === n && r.mode === 'without');
    const withL = rounds.find((r) => r.pods === n && r.mode === 'with');
    if (!without || !withL) return `| ${String(n)} | ? | ? | ? | ? | ? |`;
    const gaps = withL.gaps;
    return `| ${String(n)} | ${secs(without.drainMs)} | ${secs(withL.drainMs)} | **${(withL.drainMs / without.drainMs).toFixed(2)}** | ${gaps.length ? `${String(median(gaps))} / ${String(Math.max(...gaps))}` : '–'} | ${String(withL.restored)}/${String(n)} |`;
  });
  return [
    `Run ${meta.started} on this machine (2 cores), load average ${meta.loadStart} at the start, ${meta.loadEnd} at the end; \`npm run bench:drain\`.`,
    '`kubectl drain node-a --ignore-daemonsets` of a node running N opted-in counter pods (busybox, one line a second), with Lazarus',
    'holding each eviction until a checkpoint taken after the hold began is Ready, against the same drain with Lazarus\' webhook',
    'and controller scaled to zero (no hold, no checkpoints). State gap: the count a pod had printed when evicted minus the count its checkpoint held, in',
    'seconds of lost state (without Lazarus the replacement starts from nothing: every second is lost).',
    '',
    '| pods on the node | drain without Lazarus (s) | drain with Lazarus (s) | with / without | state gap median / max (s) | restored |',
    '|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

async function main(): Promise<void> {
  const noWrite = process.argv.includes('--no-write');
  const why = await realNodePreflight();
  if (why) {
    if (process.env.CI === 'true') throw new Error(why);
    console.error(`bench:drain needs real nodes: ${why}; nothing measured`);
    return;
  }
  const controller = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { log(`[bench] ${sig}: stopping`); controller.abort(); });
  const started = new Date().toISOString();
  const loadStart = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  let real: RealLazarus | undefined;
  try {
    real = await startRealLazarus({ log, signal: controller.signal });
    const { cp, cluster, lazarus } = real;
    await createNamespace(cp.client, NS);
    await lazarus.kubectl(['patch', 'restorepolicy', 'default', '--type=merge', '-p', JSON.stringify({ spec: { checkpoint: { interval: '', evictionTimeout: '5m' } } })]);
    const bench = new Bench(cp, cluster, controller.signal);
    await bench.taint(AWAY, true);
    // Lazarus' own pods leave node-a once, so every measured drain moves only the app's pods.
    await bench.drain(ORIGIN);
    await bench.cordon(ORIGIN, false);

    const rounds: Round[] = [];
    for (const n of SIZES) for (const mode of ['without', 'with'] as const) rounds.push(await bench.round(n, mode));
    const text = report(rounds, { started, loadStart, loadEnd: os.loadavg().map((l) => l.toFixed(1)).join(' ') });
    console.log(`\n${text}\n`);
    if (!noWrite) recordSection('Drain', text);
  } finally {
    await real?.stop();
  }
}

try {
  await main();
} catch (err) {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
}
