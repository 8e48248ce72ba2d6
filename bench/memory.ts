/**
 * `npm run bench:memory [-- --scale F --settle 10s --node-options '…']`: peak memory of the real webhook, extender
 * and controller processes (`node dist/cli/main.js …`) whose informers read, from a real
 * kube-apiserver with production paging, 50,000 ReplicaSets with full pod templates, 5,000
 * Deployments, 30,000 Checkpoints, 5,000 full Nodes and 100,000 Pods (× F), then relist
 * everything once more after every watch is ended with a 410 ERROR event.
 *
 * Peak RSS is the kernel's high-water mark (VmHWM in /proc/PID/status), so it includes the
 * initial lists and the forced relist; heap is prom-client's nodejs_heap_size_used_bytes after
 * the settle. The baseline is the same three processes on the same control plane before any
 * object exists, measured in the same run. Each process runs with the NODE_OPTIONS its Deployment
 * in manifests/base sets (the heap ceiling users run with) unless `--node-options` says otherwise.
 * Writes "## Memory" in bench/RESULTS.md (full scale, shipped flags only).
 *
 * The control plane runs no ReplicaSet, Deployment or garbage-collector controller (only what
 * namespaces and service accounts need), and Pods are created bound to the fake Nodes, so
 * nothing but the bench changes the objects.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { procStatus } from './proc.js';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { parseDuration } from '../api/duration.js';
import { isConflict, KubeError, type KubeClient } from '../kube/client.js';
import { startControlPlane, type ControlPlane } from '../test/harness/control-plane.js';
import { installCrds } from '../test/harness/apply.js';
import { createNamespace } from '../test/harness/wait.js';
import { freePort } from '../test/harness/processes.js';
import { issueCertificate } from '../test/harness/pki.js';
import { nodeFleet } from './fleet.js';
import { checkpoint, CHECKPOINT_SETS, deployment, namespaceOf, NAMESPACES, pod, replicaSet, REVISIONS_PER_DEPLOYMENT } from './memory-objects.js';
import { startRelistProxy, type RelistProxy } from './relist-proxy.js';
import { recordSection } from './results.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '../cli/main.js');
const GC_ON_SIGNAL = path.resolve(here, 'gc-on-signal.js');
const TARGET_BYTES = 400e6;
const LAZARUS_NAMESPACE = 'lazarus-system';
const FULL = { nodes: 5_000, deployments: 5_000, podsPerDeployment: 20 } as const;

/**
 * Node flags per component: by default what its Deployment in manifests/base sets in NODE_OPTIONS
 * (the heap ceiling users run with); `--node-options '…'` gives every component these instead
 * (`--node-options ''`: Node's defaults, a heap sized from the host).
 */
interface Options { scale: number; settleMs: number; concurrency: number; nodeOptions: Record<ComponentName, string[]>; shipped: boolean }

function parseOptions(argv: readonly string[]): Options {
  const value = (flag: string): string | undefined => { const i = argv.indexOf(flag); return i === -1 ? undefined : argv[i + 1]; };
  const scale = Number(value('--scale') ?? '1');
  const settleMs = parseDuration(value('--settle') ?? '10s');
  const concurrency = Number(value('--concurrency') ?? '48');
  const problems: string[] = [];
  if (!(scale > 0 && scale <= 1)) problems.push(`--scale: "${value('--scale') ?? ''}" is not a number in (0, 1]`);
  if (settleMs === undefined) problems.push(`--settle: "${value('--settle') ?? ''}" is not a duration like 10s`);
  if (!(Number.isInteger(concurrency) && concurrency > 0)) problems.push('--concurrency must be a positive integer');
  if (problems.length) throw new Error(problems.join('\n'));
  const given = value('--node-options');
  const flags = (text: string): string[] => text.split(' ').filter(Boolean);
  const nodeOptions = Object.fromEntries(COMPONENTS.map((c) => [c, given === undefined ? flags(shippedNodeOptions(c)) : flags(given)])) as Record<ComponentName, string[]>;
  return { scale, settleMs: settleMs ?? 10_000, concurrency, nodeOptions, shipped: given === undefined };
}

/** NODE_OPTIONS of the component's container in manifests/base/<component>.yaml ('' if none). */
function shippedNodeOptions(component: ComponentName): string {
  const file = path.resolve(here, '../../manifests/base', `${component}.yaml`);
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const object = doc.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: { name: string; env?: { name: string; value?: string }[] }[] } } } } | null;
    if (object?.kind !== 'Deployment') continue;
    const container = object.spec?.template?.spec?.containers?.find((c) => c.name === component);
    return container?.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
  }
  throw new Error(`${file}: no Deployment`);
}

const log = (line: string): void => { process.stderr.write(`[bench:memory] ${line}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const mb = (bytes: number): string => (bytes / 1e6).toFixed(0);

/** Runs `work(0..n-1)` with at most `concurrency` in flight; transient API errors are retried. */
async function pool(n: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        try { await work(i); break; } catch (err) {
          const transient = !(err instanceof KubeError) || err.status === 429 || err.status >= 500;
          if (!transient || attempt >= 5) throw err;
          await sleep(200 * 2 ** attempt);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

/** Creates the object, or reads it if an earlier attempt already did; returns its uid. */
async function create(client: KubeClient, collection: string, object: Record<string, unknown>): Promise<string> {
  const name = (object.metadata as { name: string }).name;
  try {
    return (await client.request<{ metadata: { uid: string } }>('POST', collection, { body: object })).metadata.uid;
  } catch (err) {
    if (!isConflict(err)) throw err;
    return (await client.request<{ metadata: { uid: string } }>('GET', `${collection}/${name}`)).metadata.uid;
  }
}

async function timed(what: string, n: number, run: () => Promise<void>): Promise<void> {
  const t0 = Date.now();
  await run();
  const s = (Date.now() - t0) / 1000;
  log(`${what}: ${n} in ${s.toFixed(0)} s (${(n / s).toFixed(0)}/s)`);
}

interface Counts { nodes: number; deployments: number; replicaSets: number; checkpoints: number; pods: number }

function counts(scale: number): Counts & { podsPerDeployment: number } {
  const deployments = Math.max(1, Math.round(FULL.deployments * scale));
  return {
    nodes: Math.max(1, Math.round(FULL.nodes * scale)), deployments, podsPerDeployment: FULL.podsPerDeployment,
    replicaSets: deployments * REVISIONS_PER_DEPLOYMENT, checkpoints: deployments * CHECKPOINT_SETS * 2, pods: deployments * FULL.podsPerDeployment,
  };
}

async function load(client: KubeClient, c: ReturnType<typeof counts>, concurrency: number): Promise<void> {
  const nodes = nodeFleet(c.nodes);
  const nodeNames = nodes.map((n) => (n.metadata as { name: string }).name);
  await timed('nodes (create + status)', c.nodes, () => pool(c.nodes, concurrency, async (i) => {
    const { metadata, spec, status } = nodes[i] as { metadata: Record<string, unknown>; spec: unknown; status: unknown };
    const { uid: _u, resourceVersion: _r, creationTimestamp: _c, ...meta } = metadata;
    await create(client, '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: meta, spec });
    await client.request('PATCH', `/api/v1/nodes/${String(meta.name)}/status`, { body: { status }, contentType: 'application/merge-patch+json' });
  }));
  nodes.length = 0;

  const deploymentUids: string[] = [];
  await timed('deployments', c.deployments, () => pool(c.deployments, concurrency, async (d) => {
    deploymentUids[d] = await create(client, `/apis/apps/v1/namespaces/${namespaceOf(d)}/deployments`, deployment(d, c.podsPerDeployment));
  }));
  const newestReplicaSetUids: string[] = [];
  await timed('replicasets', c.replicaSets, () => pool(c.replicaSets, concurrency, async (i) => {
    const d = Math.floor(i / REVISIONS_PER_DEPLOYMENT);
    const r = i % REVISIONS_PER_DEPLOYMENT;
    const uid = await create(client, `/apis/apps/v1/namespaces/${namespaceOf(d)}/replicasets`, replicaSet(d, r, deploymentUids[d] ?? '', c.podsPerDeployment));
    if (r === REVISIONS_PER_DEPLOYMENT - 1) newestReplicaSetUids[d] = uid;
  }));
  await timed('checkpoints', c.checkpoints, () => pool(c.checkpoints, concurrency, async (i) => {
    const d = Math.floor(i / (CHECKPOINT_SETS * 2));
    await create(client, `/apis/lazarus.dev/v1alpha1/namespaces/${namespaceOf(d)}/checkpoints`, checkpoint(d, i % (CHECKPOINT_SETS * 2)));
  }));
  await timed('pods (create + status)', c.pods, () => pool(c.pods, concurrency, async (i) => {
    const d = Math.floor(i / c.podsPerDeployment);
    const made = pod(d, i % c.podsPerDeployment, newestReplicaSetUids[d] ?? '', nodeNames[i % nodeNames.length] ?? '');
    const meta = made.pod.metadata as { name: string; namespace: string };
    await create(client, `/api/v1/namespaces/${meta.namespace}/pods`, made.pod);
    await client.request('PATCH', `/api/v1/namespaces/${meta.namespace}/pods/${meta.name}/status`, { body: { status: made.status }, contentType: 'application/merge-patch+json' });
  }));
}

// ---- the components -------------------------------------------------------------------

type ComponentName = 'webhook' | 'extender' | 'controller';
const COMPONENTS: readonly ComponentName[] = ['webhook', 'extender', 'controller'];

interface Measured {
  component: ComponentName;
  syncSeconds: number;
  relistSeconds: number;
  /** VmHWM after the first sync and settle. */
  peakAfterSync: number;
  /** VmHWM after the forced relist and settle: the peak of the whole run. */
  peak: number;
  rssSettled: number;
  /** Heap in use after the settle, garbage included (an idle process collects little). */
  heapBeforeGc: number;
  /** Live heap: after a full collection (gc-on-signal.ts). */
  heapSettled: number;
  watchesExpired: number;
}

function get(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

async function heapUsed(port: number): Promise<number> {
  const { body } = await get(port, '/metrics');
  const m = /^lazarus_nodejs_heap_size_used_bytes(?:\{[^}]*\})? (\S+)/m.exec(body);
  if (!m) throw new Error(`no lazarus_nodejs_heap_size_used_bytes on :${port}/metrics`);
  return Number(m[1]);
}

interface Running { name: ComponentName; child: ChildProcess; metricsPort: number; proxy: RelistProxy; logPath: string; exited: () => string | undefined }

async function waitReady(r: Running, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const exit = r.exited();
    if (exit) throw new Error(`${r.name} ${exit}; log ${r.logPath}`);
    try {
      const res = await get(r.metricsPort, '/readyz');
      if (res.status === 200) return;
      last = `${res.status} ${res.body.slice(0, 200)}`;
    } catch (err) { last = (err as Error).message; }
    if (Date.now() > deadline) throw new Error(`${r.name} not ready after ${timeoutMs} ms (${last}); log ${r.logPath}`);
    await sleep(200);
  }
}

interface Setup { cp: ControlPlane; dir: string; adminTls: { ca: string; cert: string; key: string }; serving: { cert: string; key: string }; nodeOptions: Record<ComponentName, readonly string[]> }

async function startComponent(name: ComponentName, s: Setup, phase: string): Promise<Running> {
  const proxy = await startRelistProxy({ url: s.cp.server, ...s.adminTls }, s.serving);
  const kubeconfig = path.join(s.dir, `${phase}-${name}.kubeconfig`);
  const config = parse(await readFile(s.cp.kubeconfigPath, 'utf8')) as { clusters: { cluster: { server: string } }[] };
  for (const c of config.clusters) c.cluster.server = proxy.url;
  await writeFile(kubeconfig, stringify(config), { mode: 0o600 });
  const [port, metricsPort] = await Promise.all([freePort(), freePort()]);
  const common = ['--kubeconfig', kubeconfig, '--metrics-port', String(metricsPort), '--bind-address', '127.0.0.1', '--log-level', 'warn'];
  const args: Record<ComponentName, string[]> = {
    webhook: ['--port', String(port), '--tls-cert-file', path.join(s.dir, 'tls.crt'), '--tls-key-file', path.join(s.dir, 'tls.key'), '--namespace', LAZARUS_NAMESPACE],
    extender: ['--port', String(port)],
    controller: ['--namespace', LAZARUS_NAMESPACE, '--id', `bench-${phase}`],
  };
  const logPath = path.join(s.dir, `${phase}-${name}.log`);
  const fd = openSync(logPath, 'a');
  const child = spawn(process.execPath, [...s.nodeOptions[name], '--expose-gc', '--import', GC_ON_SIGNAL, CLI, name, ...common, ...args[name]], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  // Under the control plane's reaper: killed with it if the bench dies.
  if (child.pid !== undefined) s.cp.adopt(`${phase}-${name}`, child.pid);
  let exit: string | undefined;
  child.once('exit', (code, signal) => { exit = signal ? `killed by ${signal}` : `exited with code ${String(code)}`; });
  return { name, child, metricsPort, proxy, logPath, exited: () => exit };
}

async function stopComponent(r: Running): Promise<void> {
  if (r.exited() === undefined && r.child.pid !== undefined) {
    const gone = new Promise((resolve) => r.child.once('exit', resolve));
    process.kill(r.child.pid, 'SIGINT');
    const killed = setTimeout(() => { if (r.child.pid !== undefined && r.exited() === undefined) process.kill(r.child.pid, 'SIGKILL'); }, 10_000);
    await gone;
    clearTimeout(killed);
  }
  await r.proxy.close();
}

/** Starts one component, waits for its caches, settles, forces a relist of every informer, settles again. */
async function measure(name: ComponentName, s: Setup, phase: string, settleMs: number): Promise<Measured> {
  const t0 = Date.now();
  const r = await startComponent(name, s, phase);
  const pid = r.child.pid ?? 0;
  try {
    await waitReady(r, 30 * 60_000);
    const syncSeconds = (Date.now() - t0) / 1000;
    // Every informer's watch is open once its list is in (readyz says all are synced).
    for (let i = 0; r.proxy.watchesOpen < informerCount(name) && i < 300; i++) await sleep(100);
    await sleep(settleMs);
    const peakAfterSync = procStatus(pid, 'VmHWM');

    const t1 = Date.now();
    const expired = r.proxy.expireWatches();
    if (expired.length < informerCount(name)) throw new Error(`${name}: ${expired.length} watches open, expected ${informerCount(name)}`);
    const before = new Map(expired.map((p) => [p, r.proxy.watchesOpened(p)]));
    // Each expired informer lists again, then watches again: the relist is over when all have.
    const deadline = Date.now() + 30 * 60_000;
    while ([...before].some(([p, n]) => r.proxy.watchesOpened(p) <= n)) {
      if (r.exited()) throw new Error(`${name} ${r.exited() ?? ''} during the relist; log ${r.logPath}`);
      if (Date.now() > deadline) throw new Error(`${name}: relist not done after 30 min`);
      await sleep(100);
    }
    const relistSeconds = (Date.now() - t1) / 1000;
    await sleep(settleMs);
    const heapBeforeGc = await heapUsed(r.metricsPort);
    process.kill(pid, 'SIGUSR2');
    await sleep(1000);
    return {
      component: name, syncSeconds, relistSeconds, peakAfterSync, peak: procStatus(pid, 'VmHWM'),
      rssSettled: procStatus(pid, 'VmRSS'), heapBeforeGc, heapSettled: await heapUsed(r.metricsPort), watchesExpired: expired.length,
    };
  } finally {
    await stopComponent(r);
  }
}

/** Informers per component: ClusterCache's seven, the extender's six (no Checkpoints), the controller's seven and Pods. */
function informerCount(name: ComponentName): number {
  switch (name) {
    case 'webhook': return 7;
    case 'extender': return 6;
    case 'controller': return 8;
  }
}

/** A component that died (out of heap under a --node-options ceiling, say) is a row too: why, and its peak so far. */
interface Failed { component: ComponentName; failed: string }
type Row = Measured | Failed;
const failed = (r: Row): r is Failed => 'failed' in r;

async function measureAll(s: Setup, phase: string, settleMs: number): Promise<Row[]> {
  log(`${phase}: starting webhook, extender and controller`);
  const settled = await Promise.allSettled(COMPONENTS.map((name) => measure(name, s, phase, settleMs)));
  const rows = settled.map((r, i): Row => (r.status === 'fulfilled' ? r.value : { component: COMPONENTS[i] ?? 'webhook', failed: r.reason instanceof Error ? r.reason.message : String(r.reason) }));
  for (const f of rows.filter(failed)) log(`${phase} ${f.component} FAILED: ${f.failed}`);
  for (const m of rows.filter((r): r is Measured => !failed(r))) log(`${phase} ${m.component}: synced in ${m.syncSeconds.toFixed(1)} s, relist ${m.relistSeconds.toFixed(1)} s, peak after sync ${mb(m.peakAfterSync)} MB, peak ${mb(m.peak)} MB, heap ${mb(m.heapBeforeGc)} MB, live ${mb(m.heapSettled)} MB`);
  return rows;
}

function pem(base64: string | undefined, what: string): string {
  if (!base64) throw new Error(`admin kubeconfig has no ${what}`);
  return Buffer.from(base64, 'base64').toString('utf8');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  // Ctrl-C: the reaper stops the control plane and the components when this process is gone.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const c = counts(options.scale);
  const cp = await startControlPlane({
    // Namespaces and service accounts only: no controller creates, binds or deletes what the bench makes.
    controllers: ['serviceaccount-controller', 'serviceaccount-token-controller', 'namespace-controller', 'root-ca-certificate-publisher-controller'],
    etcdQuotaBytes: 8 * 1024 ** 3,
    log,
  });
  try {
    const dir = path.join(cp.dir, 'bench-memory');
    await mkdir(dir, { recursive: true });
    const admin = parse(await readFile(cp.kubeconfigPath, 'utf8')) as { users: { user: Record<string, string> }[] };
    const user = admin.users[0]?.user ?? {};
    const adminTls = { ca: cp.ca.certPem, cert: pem(user['client-certificate-data'], 'client certificate'), key: pem(user['client-key-data'], 'client key') };
    const serving = await issueCertificate(cp.ca, { commonName: '127.0.0.1', ips: ['127.0.0.1'], dnsNames: ['localhost'], usage: 'server' });
    await writeFile(path.join(dir, 'tls.crt'), serving.certPem);
    await writeFile(path.join(dir, 'tls.key'), serving.keyPem, { mode: 0o600 });
    const setup: Setup = { cp, dir, adminTls, serving: { cert: serving.certPem, key: serving.keyPem }, nodeOptions: options.nodeOptions };

    await installCrds(cp.client);
    await Promise.all([LAZARUS_NAMESPACE, ...Array.from({ length: NAMESPACES }, (_, i) => namespaceOf(i))].map((ns) => createNamespace(cp.client, ns, {}, { timeoutMs: 120_000 })));

    const empty = await measureAll(setup, 'empty', options.settleMs);
    log(`loading ${c.nodes} nodes, ${c.deployments} deployments, ${c.replicaSets} replicasets, ${c.checkpoints} checkpoints, ${c.pods} pods`);
    await load(cp.client, c, options.concurrency);
    const loaded = await measureAll(setup, 'loaded', options.settleMs);
    report(options, c, empty, loaded);
    await cp.stop();
    // A component that failed leaves its log behind.
    if ([...empty, ...loaded].some(failed)) log(`logs in ${cp.dir}`);
    else await rm(cp.dir, { recursive: true, force: true });
  } catch (err) {
    log(`failed; logs in ${cp.dir}`);
    throw err;
  } finally {
    await cp.stop();
  }
}

function report(options: Options, c: Counts, empty: readonly Row[], loaded: readonly Row[]): void {
  const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  const flagText = COMPONENTS.map((c) => `${c} \`${options.nodeOptions[c].join(' ') || '(none)'}\``).join(', ');
  const scaleNote = `${options.scale === 1 ? '' : ` — **scale ${options.scale}**, not the issue's full size`}; Node flags ${options.shipped ? 'as manifests/base sets them (NODE_OPTIONS)' : 'given with --node-options'}: ${flagText}`;
  const lines = [
    `\`npm run bench:memory\` on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}${scaleNote}.`,
    `Objects in a real kube-apiserver v1.35.4: ${c.replicaSets.toLocaleString('en')} ReplicaSets with full pod templates, ${c.deployments.toLocaleString('en')} Deployments,`,
    `${c.checkpoints.toLocaleString('en')} Checkpoints, ${c.nodes.toLocaleString('en')} Nodes (labels, conditions, 20 images) and ${c.pods.toLocaleString('en')} Pods with status (read by the controller only).`,
    'Each component runs as its own process (`node dist/cli/main.js webhook|extender|controller`), reads everything through its own informers',
    '(paged lists, then watches), is ready (/readyz), settles, then every watch is ended with a 410 ERROR event by a loopback proxy so every',
    `informer relists, and it settles again (${(options.settleMs / 1000).toFixed(0)} s each). Peak RSS = VmHWM (initial lists and relist included);`,
    'Heap = nodejs_heap_size_used_bytes after the last settle, as it sits and live (after a full GC the bench triggers with SIGUSR2,',
    'bench/gc-on-signal.ts); RSS settled is read after that GC. "Empty" = the same processes on the same control plane before any object existed.',
    `Load average when the run ended: ${load} (a shared 2-core machine: other jobs ran alongside).`,
    '',
    '| component | informers | sync | relist | peak RSS after sync | **peak RSS (with relist)** | RSS settled | heap settled / live | empty: peak RSS / live heap | peak − empty peak | target | verdict |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...loaded.map((m) => {
      if (failed(m)) return `| ${m.component} | | | | | | | | | | < ${mb(TARGET_BYTES)} MB | **failed**: ${m.failed.replace(/\|/g, '/').slice(0, 200)} |`;
      const found = empty.find((x) => x.component === m.component);
      const e = found && !failed(found) ? found : undefined;
      return `| ${m.component} | ${m.watchesExpired} | ${m.syncSeconds.toFixed(1)} s | ${m.relistSeconds.toFixed(1)} s | ${mb(m.peakAfterSync)} MB | **${mb(m.peak)} MB** | ${mb(m.rssSettled)} MB | ${mb(m.heapBeforeGc)} / ${mb(m.heapSettled)} MB | ${e ? `${mb(e.peak)} / ${mb(e.heapSettled)} MB` : '–'} | ${e ? `${mb(m.peak - e.peak)} MB` : '–'} | < ${mb(TARGET_BYTES)} MB | ${m.peak < TARGET_BYTES ? 'met' : '**not met**'} |`;
    }),
    '',
  ];
  const text = lines.join('\n');
  process.stdout.write(`## Memory\n\n${text}\n`);
  // Smaller runs are for trying the bench out; only the issue's size goes into RESULTS.md.
  if (options.scale === 1 && options.shipped) recordSection('Memory', text);
}

await main();
