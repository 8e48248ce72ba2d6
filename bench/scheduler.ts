/**
 * `npm run bench:scheduler`: the real kube-scheduler (v1.35.4, from scripts/kube-build.sh) placing
 * restored pods on realistic fake nodes, with the Lazarus extender (NodeNames mode,
 * nodeCacheCapable: true, as in manifests/) and without it, in the same run, on the same nodes.
 *
 * One kube-scheduler process per schedulerName, identical but for the extender (extenders apply
 * to every profile of one process): `bench-plain` (none), `bench-lazarus` (`lazarus extender` in
 * its own process, as deployed) and `bench-floor` (bench/noop-extender.ts: parses and passes all,
 * the floor for any extender). Each phase creates the same pods (webhook-shaped: restored-from,
 * origin-*, original-images annotations and the required node affinity the webhook adds) for one
 * schedulerName, and times first create → last pod bound (seen on a watch). Phases alternate
 * (plain, floor, lazarus, plain…); pods are deleted between phases. The rounds run at each node
 * count in turn (500, then 5,000: nodes are added, and the extender's cache is seen to judge
 * every new node before they start), so each count's ratios come from the same run. Writes
 * bench/RESULTS.md's "## Scheduler" section (that section only). The scheduler's client limits
 * are the same for all (`clientConnection: {qps, burst}`, default 5000/5000 as scheduler_perf).
 *
 * Flags: --pods N (1000) --nodes N,N… (500,5000) --rounds N (3) --concurrency N (32) --qps N (5000)
 * --burst N (5000) --extender child|in-process (child) --floor=false --no-write
 * --extender-node-args "--cpu-prof --cpu-prof-dir=D" (profile the extender child).
 */
import { recordSection } from './results.js';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as K from '../api/keys.js';
import { parseFlags, UsageError, type FlagSpec } from '../cli/flags.js';
import type { KubeClient } from '../kube/client.js';
import { startControlPlane, type ControlPlane, type ExtenderOptions } from '../test/harness/control-plane.js';
import { createNode, type FakeNodeSpec } from '../test/harness/nodes.js';
import { startExtender, type RunningExtender } from '../test/harness/lazarus.js';
import { freePort, startComponent, stopComponent, tailLog, type Component } from '../test/harness/processes.js';
import { createNamespace, waitFor } from '../test/harness/wait.js';
import { installCrds } from '../test/harness/apply.js';

const FLAGS: Readonly<Record<string, FlagSpec>> = {
  pods: { type: 'int', default: 1000, description: 'pods per phase' },
  nodes: { type: 'string', default: '500,5000', description: 'fake node counts, ascending: the rounds run at each (nodes are added in between)' },
  rounds: { type: 'int', default: 3, description: 'rounds of (without, floor, with) phases' },
  concurrency: { type: 'int', default: 32, description: 'pod creations in flight' },
  qps: { type: 'int', default: 5000, description: 'kube-scheduler clientConnection.qps (both schedulers)' },
  burst: { type: 'int', default: 5000, description: 'kube-scheduler clientConnection.burst (both schedulers)' },
  extender: { type: 'string', default: 'child', description: 'child: `lazarus extender` in its own process; in-process: in this one' },
  floor: { type: 'bool', default: true, description: 'also a third scheduler whose extender is a pass-all no-op (bench/noop-extender.ts): the floor; --floor=false to skip' },
  'extender-node-args': { type: 'string', default: '', description: 'extra node flags for the extender child, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"' },
  'no-write': { type: 'bool', default: false, description: 'print only, leave bench/RESULTS.md alone' },
};

const NAMESPACE = 'bench';
const PHASE_LABEL = 'bench.lazarus.dev/phase';
const PLAIN = 'bench-plain';
const LAZARUS = 'bench-lazarus';
const FLOOR = 'bench-floor';
const PHASE_NAMES: Readonly<Record<string, string>> = { [PLAIN]: 'without', [LAZARUS]: 'with', [FLOOR]: 'floor' };
const BASE_IMAGE = 'registry.example/shop/web:1.4';
const ORIGIN_FLAGS = ['fpu', 'sse4_2', 'avx2'];
const FULL_FLAGS = ['fpu', 'vme', 'de', 'pse', 'tsc', 'msr', 'pae', 'mce', 'cx8', 'apic', 'sep', 'mtrr', 'pge', 'mca', 'cmov', 'pat',
  'clflush', 'mmx', 'fxsr', 'sse', 'sse2', 'ht', 'syscall', 'nx', 'lm', 'constant_tsc', 'pni', 'pclmulqdq', 'ssse3', 'fma', 'cx16',
  'sse4_1', 'sse4_2', 'x2apic', 'movbe', 'popcnt', 'aes', 'xsave', 'avx', 'f16c', 'rdrand', 'bmi1', 'avx2', 'bmi2', 'erms', 'adx'];

/** Why a node cannot restore the bench checkpoint, or undefined if it can. */
type Unfit = 'arm64' | 'no agent' | 'cpu flags' | 'runtime' | undefined;

/**
 * Nodes like a cluster running Lazarus: 20 images each, zone/instance labels, and 1 in 5 unable
 * to restore — 10% arm64 and 5% without the agent (the webhook's node affinity rules these out in
 * the scheduler itself), 5% that pass the affinity but not the extender (CPU flags, runtime).
 */
function benchNode(i: number): { spec: FakeNodeSpec; unfit: Unfit } {
  const name = `node-${String(i).padStart(4, '0')}`;
  const images = Array.from({ length: 20 }, (_, j) => ({
    names: [`registry.example/team-${j % 7}/service-${j}@sha256:${(i * 31 + j).toString(16).padStart(64, '0')}`, `registry.example/team-${j % 7}/service-${j}:v1.${j}.${i % 10}`],
    sizeBytes: 10_000_000 + j * 1_234_567,
  }));
  // Half the nodes hold the base image (scored by the extender): in place of the 20th image.
  if (i % 2 === 0) images[19] = { names: [BASE_IMAGE], sizeBytes: 42_000_000 };
  const labels = { 'node.kubernetes.io/instance-type': 'm6i.2xlarge', 'topology.kubernetes.io/region': 'eu-west-1', 'topology.kubernetes.io/zone': `eu-west-1${'abc'[i % 3] ?? 'a'}` };
  const kernel = ['6.8.0-45-generic', '6.8.12-1-generic', '6.11.0-9-generic'][i % 3] ?? '6.8.0-45-generic';
  const criu = i % 7 === 0 ? '4.2.0' : '4.1.1';
  const base: FakeNodeSpec = { name, labels, images, kernel, criu, cpuFlags: FULL_FLAGS, runtime: 'cri-o://1.33.2', cgroup: 'v2' };
  switch (i % 20) {
    case 0: case 1: return { spec: { ...base, arch: 'arm64' }, unfit: 'arm64' };
    case 2: return { spec: { name, labels, images, kernel }, unfit: 'no agent' };
    case 3: return i % 40 === 3
      ? { spec: { ...base, cpuFlags: FULL_FLAGS.filter((f) => f !== 'avx2') }, unfit: 'cpu flags' }
      : { spec: { ...base, runtime: 'containerd://1.7.24' }, unfit: 'runtime' };
    default: return { spec: base, unfit: undefined };
  }
}

/** A pod as the webhook leaves it: checkpoint image, origin annotations, required node affinity. */
function restoredPod(name: string, phase: string, schedulerName: string): Record<string, unknown> {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      name, namespace: NAMESPACE, labels: { app: 'web', [PHASE_LABEL]: phase },
      annotations: {
        [K.RESTORED_FROM]: 'app=web-app-20261127t120000z',
        [K.ORIGINAL_IMAGES]: `app=${BASE_IMAGE}`,
        [K.ORIGIN_NODE]: 'node-0007',
        [K.ORIGIN_ARCH]: 'amd64',
        [K.ORIGIN_KERNEL]: '6.8.0-45-generic',
        [K.ORIGIN_CRIU]: '4.1.1',
        [K.ORIGIN_RUNTIME]: 'cri-o://1.33.2',
        [K.ORIGIN_CPU_FLAGS]: ORIGIN_FLAGS.join(' '),
      },
    },
    spec: {
      schedulerName,
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'app', image: 'registry.example/lazarus/bench/web-app@sha256:5e2f8a1c', resources: { requests: { cpu: '50m', memory: '64Mi' } } }],
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [
        { key: K.LABEL_ARCH, operator: 'In', values: ['amd64'] },
        { key: K.NODE_CRIU_VERSION, operator: 'Gt', values: ['40100'] },
      ] }] } } },
    },
  };
}

async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  }));
}

interface PodObject { metadata?: { name?: string }; spec?: { nodeName?: string } }

interface PhaseResult {
  name: string;
  /** Fake nodes in the cluster during the phase. */
  nodes?: number;
  scheduler: string;
  pods: number;
  /** First create sent → last create answered, ms. */
  createMs: number;
  /** First create sent → last pod seen bound, ms. */
  totalMs: number;
  podsPerSecond: number;
  /** Pods bound to nodes the extender should have ruled out. */
  onUnfit: number;
  /** Times the API server closed the bench's watch and it resumed from the last resourceVersion. */
  rewatches: number;
  extender?: ExtenderDelta;
}

interface ExtenderDelta { filter: { count: number; meanMs: number }; prioritize: { count: number; meanMs: number }; outcomes: Record<string, number> }

function get(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject).on('timeout', function (this: http.ClientRequest) { this.destroy(new Error('timed out')); });
  });
}

type Samples = Map<string, number>;
async function extenderSamples(port: number): Promise<Samples> {
  const { body } = await get(port, '/metrics');
  const out: Samples = new Map();
  for (const line of body.split('\n')) {
    const m = /^(lazarus_extender_request_duration_seconds_(?:sum|count)|lazarus_extender_requests_total)\{([^}]*)\} (\S+)$/.exec(line);
    // Drop the registry's default label (component="extender"): keys are name{verb=…,outcome=…}.
    const labels = (m?.[2] ?? '').split(',').filter((l) => !l.startsWith('component=')).join(',');
    if (m?.[1] && m[3]) out.set(`${m[1]}{${labels}}`, Number(m[3]));
  }
  return out;
}

/** The no-op extender's /stats, under the names extenderSamples uses. */
async function floorSamples(port: number): Promise<Samples> {
  const stats = JSON.parse((await get(port, '/stats')).body) as Record<string, { sum: number; count: number }>;
  const out: Samples = new Map();
  for (const [verb, s] of Object.entries(stats)) {
    out.set(`lazarus_extender_request_duration_seconds_sum{verb="${verb}"}`, s.sum);
    out.set(`lazarus_extender_request_duration_seconds_count{verb="${verb}"}`, s.count);
  }
  return out;
}

function delta(before: Samples, after: Samples): ExtenderDelta {
  const d = (key: string): number => (after.get(key) ?? 0) - (before.get(key) ?? 0);
  const verb = (v: string): { count: number; meanMs: number } => {
    const count = d(`lazarus_extender_request_duration_seconds_count{verb="${v}"}`);
    return { count, meanMs: count > 0 ? (d(`lazarus_extender_request_duration_seconds_sum{verb="${v}"}`) / count) * 1000 : NaN };
  };
  const outcomes: Record<string, number> = {};
  for (const key of after.keys()) {
    const m = /^lazarus_extender_requests_total\{(.*)\}$/.exec(key);
    if (m?.[1] && d(key) > 0) outcomes[m[1].replace(/"/g, '')] = d(key);
  }
  return { filter: verb('filter'), prioritize: verb('prioritize'), outcomes };
}

/** Creates `count` pods for `scheduler` and resolves when the watch has seen every one bound. */
async function runPhase(log: (line: string) => void, client: KubeClient, name: string, scheduler: string, count: number, concurrency: number, unfit: ReadonlySet<string>): Promise<PhaseResult> {
  const selector = `${PHASE_LABEL}=${name}`;
  const list = await client.request<{ metadata: { resourceVersion: string } }>('GET', `/api/v1/namespaces/${NAMESPACE}/pods`, { query: { labelSelector: selector, limit: 1 } });
  const bound = new Map<string, string>();
  const stop = new AbortController();
  let t0 = 0n;
  let lastBound = 0n;
  let done: () => void = () => undefined;
  const allBound = new Promise<void>((resolve) => { done = resolve; });
  let rv = list.metadata.resourceVersion;
  let rewatches = 0;
  const onEvent = (type: string, object: unknown): void => {
    const pod = object as PodObject & { metadata?: { resourceVersion?: string } };
    if (type === 'ERROR') throw new Error(`phase ${name}: watch error ${JSON.stringify(object)}`);
    if (pod.metadata?.resourceVersion) rv = pod.metadata.resourceVersion;
    const podName = pod.metadata?.name;
    const node = pod.spec?.nodeName;
    if ((type === 'ADDED' || type === 'MODIFIED') && podName && node && !bound.has(podName)) {
      bound.set(podName, node);
      if (bound.size === count) { lastBound = process.hrtime.bigint(); done(); }
    }
  };
  // From the list's resourceVersion, then from the last event's: no event is missed however late
  // the stream opens, or when the API server closes it (on 2 busy cores its watch cache drops
  // watchers that fall 10 events behind: "Forcing pods watcher close due to unresponsiveness").
  const watching = (async () => {
    while (!stop.signal.aborted) {
      await client.watch(`/api/v1/namespaces/${NAMESPACE}/pods`, { labelSelector: selector, resourceVersion: rv, allowWatchBookmarks: false }, onEvent, stop.signal);
      if (!stop.signal.aborted) rewatches++;
    }
  })();

  const names = Array.from({ length: count }, (_, i) => `web-${name}-${String(i).padStart(4, '0')}`);
  t0 = process.hrtime.bigint();
  await pool(names, concurrency, async (podName) => {
    await client.request('POST', `/api/v1/namespaces/${NAMESPACE}/pods`, { body: restoredPod(podName, name, scheduler) });
  });
  const created = process.hrtime.bigint();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`phase ${name}: only ${bound.size}/${count} pods bound after 300 s`)), 300_000); });
  try {
    await Promise.race([allBound, timeout, watching]);
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
  const totalMs = Number(lastBound - t0) / 1e6;
  return {
    name, scheduler, pods: count,
    createMs: Number(created - t0) / 1e6, totalMs, podsPerSecond: count / (totalMs / 1000),
    onUnfit: [...bound.values()].filter((n) => unfit.has(n)).length, rewatches,
  };
}

/** Deletes a phase's pods (no kubelet: grace period 0 removes them at once) and waits until gone. */
async function clearPhase(client: KubeClient, name: string): Promise<void> {
  const labelSelector = `${PHASE_LABEL}=${name}`;
  await client.request('DELETE', `/api/v1/namespaces/${NAMESPACE}/pods`, { query: { labelSelector, gracePeriodSeconds: 0 } });
  await waitFor(async () => (await client.request<{ items: unknown[] }>('GET', `/api/v1/namespaces/${NAMESPACE}/pods`, { query: { labelSelector, limit: 1 } })).items.length === 0,
    { timeoutMs: 120_000, intervalMs: 250, description: `phase ${name}'s pods to be deleted` });
}

interface Extender { port: number; pid: number | undefined; stop(): Promise<void> }

async function startExtenderChild(cp: ControlPlane, port: number, nodeArgs: readonly string[], noop: boolean): Promise<Extender> {
  const script = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));
  const args = noop ? [script('./noop-extender.js'), String(port)]
    : [script('../cli/main.js'), 'extender', '--port', String(port), '--bind-address', '127.0.0.1', '--kubeconfig', cp.kubeconfigPath, '--metrics-port', '0'];
  const c: Component = startComponent('lazarus-extender', process.execPath, [...nodeArgs, ...args], path.join(cp.dir, 'lazarus-extender.log'));
  try {
    await waitFor(async () => {
      if (c.exitDescription() !== undefined) throw new Error(`lazarus extender ${c.exitDescription() ?? ''}:\n${tailLog(c.logPath)}`);
      return (await get(port, '/readyz')).status === 200;
    }, { timeoutMs: 30_000, description: 'the extender to be ready' });
  } catch (err) {
    await stopComponent(c);
    throw err;
  }
  return { port, pid: c.pid, stop: () => stopComponent(c) };
}

async function startExtenderInProcess(cp: ControlPlane, port: number): Promise<Extender> {
  const running: RunningExtender = await startExtender(cp.client, port);
  return { port, pid: undefined, stop: () => running.stop() };
}

/** `500,5000` → [500, 5000]; problems for anything but ascending whole numbers > 0. */
function nodeCounts(text: string, problems: string[]): number[] {
  const counts = text.split(',').map((s) => Number(s.trim()));
  if (counts.length === 0 || counts.some((n, i) => !Number.isInteger(n) || n <= 0 || n > 9999 || (i > 0 && n <= (counts[i - 1] ?? 0)))) {
    problems.push(`--nodes must be ascending whole numbers from 1 to 9999, comma-separated (got "${text}")`);
  }
  return counts;
}

/**
 * Resolves once the extender judges `nodes` as their specs say (the unfit ones fail, the others
 * pass): its node cache has every one of them, status included. Phases before that would bind
 * pods to nodes it does not know yet (unknown nodes pass).
 */
async function extenderKnows(port: number, nodes: readonly { spec: FakeNodeSpec; unfit: Unfit }[]): Promise<void> {
  const body = Buffer.from(JSON.stringify({ Pod: restoredPod('probe', 'probe', LAZARUS), Nodes: null, NodeNames: nodes.map((n) => n.spec.name) }));
  const wantFailed = nodes.filter((n) => n.unfit !== undefined).map((n) => n.spec.name).sort();
  await waitFor(async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/filter', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length }, timeout: 10_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { text += c; });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject).on('timeout', () => req.destroy(new Error('timed out')));
      req.end(body);
    });
    const failed = Object.keys((JSON.parse(answer) as { FailedAndUnresolvableNodes?: Record<string, string> | null }).FailedAndUnresolvableNodes ?? {}).sort();
    return failed.length === wantFailed.length && failed.every((name, i) => name === wantFailed[i]);
  }, { timeoutMs: 120_000, intervalMs: 500, description: `the extender to judge all ${nodes.length} new nodes` });
}

function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}

async function main(): Promise<void> {
  const { values, positionals, problems } = parseFlags(process.argv.slice(2), FLAGS, process.env);
  if (positionals.length > 0) problems.push(`unexpected arguments: ${positionals.join(' ')}`);
  const mode = values.extender as string;
  if (mode !== 'child' && mode !== 'in-process') problems.push('--extender must be child or in-process');
  const sizes = nodeCounts(values.nodes as string, problems);
  if (problems.length > 0) throw new UsageError(problems);
  const pods = values.pods as number;
  const rounds = values.rounds as number;
  const concurrency = values.concurrency as number;
  const qps = values.qps as number;
  const burst = values.burst as number;
  const floor = values.floor === true;
  const nodeArgs = (values['extender-node-args'] as string).split(' ').filter(Boolean);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'lazarus-schedbench-'));
  const [extenderPort, floorPort] = await Promise.all([freePort(), freePort()]);
  // Same clientConnection for every scheduler (the harness default is 200/400; scheduler_perf uses 5000).
  const schedulerConfig = (): Record<string, unknown> => ({ clientConnection: { kubeconfig: path.join(dir, 'scheduler.kubeconfig'), qps, burst } });
  // As manifests/overlays/default-scheduler/kube-scheduler-extender.yaml, on loopback.
  const extenderAt = (port: number): ExtenderOptions => ({ urlPrefix: `http://127.0.0.1:${port}`, weight: 5, nodeCacheCapable: true, ignorable: true, httpTimeout: '2s' });
  const log = (line: string): void => { process.stderr.write(`${line}\n`); };

  const cp = await startControlPlane({
    dir, log, profiles: [PLAIN], schedulerConfig: schedulerConfig(),
    additionalSchedulers: [
      { profiles: [LAZARUS], extenders: [extenderAt(extenderPort)], schedulerConfig: schedulerConfig() },
      ...(floor ? [{ profiles: [FLOOR], extenders: [extenderAt(floorPort)], schedulerConfig: schedulerConfig() }] : []),
    ],
  });
  const extenders: Extender[] = [];
  let ok = false;
  try {
    const client = cp.client;
    await createNamespace(client, NAMESPACE);
    // The extender's cache also watches RestorePolicies (and is not ready without the CRDs).
    await installCrds(client);
    let t = Date.now();
    extenders.push(mode === 'in-process' ? await startExtenderInProcess(cp, extenderPort) : await startExtenderChild(cp, extenderPort, nodeArgs, false));
    if (floor) extenders.push(await startExtenderChild(cp, floorPort, [], true));
    log(`[bench] extender (${mode}) ready in ${Date.now() - t} ms on port ${extenderPort}`);

    const schedulers = [PLAIN, ...(floor ? [FLOOR] : []), LAZARUS];
    const nodes: { spec: FakeNodeSpec; unfit: Unfit }[] = [];
    const results: PhaseResult[] = [];
    for (const size of sizes) {
      t = Date.now();
      const added = Array.from({ length: size - nodes.length }, (_, k) => benchNode(nodes.length + k));
      await pool(added, 16, async ({ spec }) => { await createNode(client, spec); });
      nodes.push(...added);
      await extenderKnows(extenderPort, added);
      log(`[bench] ${added.length} nodes added in ${Date.now() - t} ms, ${size} in all, and the extender judges them`);
      const unfit = new Set(nodes.filter((n) => n.unfit !== undefined && n.unfit !== 'arm64' && n.unfit !== 'no agent').map((n) => n.spec.name));

      // Warm-up: a few pods per scheduler so caches, connections and JIT are not in the first phase.
      for (const scheduler of schedulers) {
        await runPhase(log, client, `warm-${size}-${scheduler}`, scheduler, 20, concurrency, unfit);
        await clearPhase(client, `warm-${size}-${scheduler}`);
      }

      for (let round = 1; round <= rounds; round++) {
        for (const scheduler of schedulers) {
          const name = `${PHASE_NAMES[scheduler] ?? scheduler}-${size}-${round}`;
          const samples = scheduler === LAZARUS ? (): Promise<Samples> => extenderSamples(extenderPort) : scheduler === FLOOR ? (): Promise<Samples> => floorSamples(floorPort) : undefined;
          const before = await samples?.();
          const r: PhaseResult = { ...await runPhase(log, client, name, scheduler, pods, concurrency, unfit), nodes: size };
          if (before && samples) r.extender = delta(before, await samples());
          results.push(r);
          log(`[bench] ${name}: ${pods} pods in ${fmt(r.totalMs, 0)} ms (creates ${fmt(r.createMs, 0)} ms) = ${fmt(r.podsPerSecond)} pods/s; on unfit nodes: ${r.onUnfit}; rewatches ${r.rewatches}${r.extender ? `; extender filter ${r.extender.filter.count} × ${fmt(r.extender.filter.meanMs, 2)} ms, prioritize ${r.extender.prioritize.count} × ${fmt(r.extender.prioritize.meanMs, 2)} ms` : ''}`);
          await clearPhase(client, name);
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    }

    const rate = (scheduler: string, size: number): number => {
      const rs = results.filter((r) => r.scheduler === scheduler && r.nodes === size);
      return rs.reduce((n, r) => n + r.pods, 0) / (rs.reduce((s, r) => s + r.totalMs, 0) / 1000);
    };
    const biggest = nodes.length;
    const count = (unfit: Unfit): number => nodes.filter((n) => n.unfit === unfit).length;
    const passAffinity = count('cpu flags') + count('runtime');
    const lines = [
      '## Scheduler',
      '',
      `\`npm run bench:scheduler\` on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}.`,
      `Real kube-scheduler v1.35.4, one process per schedulerName (${schedulers.map((s) => `\`${s}\``).join(', ')}), identical but for the extender,`,
      `\`clientConnection: {qps: ${qps}, burst: ${burst}}\` in each (scheduler_perf's client limits; the harness default is 200/400);`,
      `kube-apiserver + etcd on loopback; ${sizes.join(', then ')} fake nodes (20 images each; 1 in 5 cannot restore — of the ${biggest}: ${count('arm64')} arm64, ${count('no agent')} without the agent,`,
      `${passAffinity} pass the webhook's node affinity but fail the extender on CPU flags or runtime). ${pods} webhook-shaped restored pods per phase`,
      `(origin annotations + required affinity \`kubernetes.io/arch In [amd64]\`, \`lazarus.dev/criu-version Gt 40100\`), created through the API,`,
      `${concurrency} in flight; time = first create sent → last pod seen bound on a watch. Pods deleted between phases; phases alternate.`,
      `${rounds} round${rounds === 1 ? '' : 's'} at each node count; nodes are added between counts, and the rounds start once the extender judges every new node.`,
      `Extender: \`lazarus extender\` ${mode === 'child' ? 'in its own process' : 'in the bench process'}, NodeNames mode (\`nodeCacheCapable: true\`), weight 5, ignorable, httpTimeout 2s.`,
      ...(floor ? ['`bench-floor`: the same extender configuration pointing at bench/noop-extender.ts, a bare node:http server that parses each request and passes every node (the floor for any extender).'] : []),
      `Load average when the run ended: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} (2 cores shared by etcd, the API server, the schedulers, the extender and the driver — and other jobs).`,
      '',
      '| phase | nodes | scheduler | pods | creates done (ms) | last bound (ms) | pods/s | pods on nodes the extender rules out | filter calls × mean server time | prioritize calls × mean server time |',
      '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|',
      ...results.map((r) => `| ${r.name} | ${r.nodes} | ${r.scheduler} | ${r.pods} | ${fmt(r.createMs, 0)} | ${fmt(r.totalMs, 0)} | ${fmt(r.podsPerSecond)} | ${r.onUnfit} | ${r.extender ? `${r.extender.filter.count} × ${fmt(r.extender.filter.meanMs, 2)} ms` : '–'} | ${r.extender ? `${r.extender.prioritize.count} × ${fmt(r.extender.prioritize.meanMs, 2)} ms` : '–'} |`),
      '',
      `Pods/s over all rounds at each node count, and their ratios (target for with / without ≥ 0.7; the published scheduler_perf run: 111/991 = 0.11):`,
      '',
      `| nodes | without | ${floor ? 'floor (no-op extender) | ' : ''}with Lazarus | **with / without** | ${floor ? 'floor / without | with / floor |' : ''}`,
      `|---:|---:|---:|---:|${floor ? '---:|---:|---:|' : ''}`,
      ...sizes.map((size) => {
        const [plain, noop, lazarus] = [rate(PLAIN, size), rate(FLOOR, size), rate(LAZARUS, size)];
        return `| ${size} | ${fmt(plain)} | ${floor ? `${fmt(noop)} | ` : ''}${fmt(lazarus)} | **${(lazarus / plain).toFixed(2)}** | ${floor ? `${(noop / plain).toFixed(2)} | ${(lazarus / noop).toFixed(2)} |` : ''}`;
      }),
      '',
    ];
    const table = lines.join('\n');
    process.stdout.write(`${table}\n`);
    const bad = results.filter((r) => r.scheduler === LAZARUS && r.onUnfit > 0);
    if (bad.length > 0) throw new Error(`with the extender, pods were bound to nodes it must rule out: ${bad.map((r) => `${r.name}: ${r.onUnfit}`).join(', ')}`);
    if (values['no-write'] !== true) recordSection('Scheduler', lines.slice(1).join('\n'));
    ok = true;
  } finally {
    for (const e of extenders) await e.stop();
    await cp.stop();
    // Logs stay when something failed.
    if (ok) await rm(dir, { recursive: true, force: true });
    else log(`[bench] logs kept in ${dir}`);
  }
}

await main();
