/**
 * `lazarus demo --kubeconfig K` as a user runs it: from the image (the repo's Dockerfile, built by
 * scripts/images.sh lazarus, cached by content), with podman, against a cluster where Lazarus'
 * webhook and extender run (as in demo.test.ts). Unlike the other suites, this control plane
 * runs the node-lifecycle controller, as every real cluster does, with a short grace period: the
 * demo's fake nodes must stay Ready because the demo keeps their heartbeats (the scheduler is
 * slowed down once, so that the demo outlives the grace period). The cluster also has
 * a RestorePolicy naming another registry and a DaemonSet that tolerates every taint, as an
 * installed cluster may. Nothing the demo made may remain, after a full run or a Ctrl-C.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { chmod, copyFile, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { installCrds } from '../harness/apply.js';
import { repoRoot } from '../harness/kube-bin.js';
import { freePort } from '../harness/processes.js';
import { registerWebhook, startExtender, startWebhook, type RunningExtender, type RunningWebhook } from '../harness/lazarus.js';
import { tearDown } from '../harness/teardown.js';
import { demoLeftovers } from '../support/demo-leftovers.js';
import { NEEDS_CHECKOUT } from '../../demo/command.js';

const run = promisify(execFile);

/** Why podman cannot run here, or undefined. Under CI=true the suite fails on it instead of skipping. */
const missing = spawnSync('podman', ['--version'], { encoding: 'utf8' }).status === 0 ? undefined : 'podman is not installed (apt-get install podman)';
const suite = missing && process.env.CI !== 'true' ? describe.skip : describe;

/** Well below a real cluster's 40-50 s, so a demo without heartbeats would lose its nodes mid-run. */
const GRACE_S = 12;
/**
 * The demo takes ~3 s here, less than any grace period: the scheduler's first call to the
 * extender is held this long (a busy scheduler), so the demo's nodes must live through it.
 */
const SLOW_FIRST_FILTER_MS = (GRACE_S + 5) * 1000;
/** The installed cluster's trusted registry: not the demo's (its own RestorePolicy must make the difference). */
const USER_REGISTRY = 'registry.corp.example/lazarus';
/** Where the kubeconfig is inside the container. */
const KUBECONFIG_IN = '/kubeconfig';

interface Run { code: number | null; stdout: string; stderr: string }

suite('lazarus demo from the image, against a cluster (--kubeconfig)', () => {
  let archive: string;
  let cp: ControlPlane | undefined;
  let webhook: RunningWebhook | undefined;
  let extender: RunningExtender | undefined;
  let dir: string | undefined;
  let kubeconfig: string;
  let slow: SlowProxy | undefined;

  beforeAll(async () => {
    if (missing) throw new Error(`cannot run the image here: ${missing}`);
    // ~2-4 min cold (bench-free: the Dockerfile, two npm ci, tsc), a cache hit after.
    archive = (await run('bash', ['scripts/images.sh', 'lazarus'], { cwd: repoRoot(), timeout: 15 * 60_000, maxBuffer: 1 << 24 })).stdout.trim();
    const port = await freePort();
    const extenderPort = await freePort();
    slow = await slowFirstFilter(port, extenderPort);
    cp = await startControlPlane({
      // kube-scheduler gives up on an extender call after 5 s by default: the held one must be waited for.
      extenders: [{ urlPrefix: `http://127.0.0.1:${port}`, nodeCacheCapable: true, weight: 5, ignorable: true, httpTimeout: '60s' }],
      schedulerConfig: { podInitialBackoffSeconds: 1, podMaxBackoffSeconds: 2 },
      controllers: ['*'],
      extraControllerManagerArgs: [`--node-monitor-grace-period=${GRACE_S}s`, '--node-monitor-period=1s'],
      log: () => undefined,
    });
    await installCrds(cp.client);
    extender = await startExtender(cp.client, extenderPort);
    webhook = await startWebhook(cp.client, { registry: USER_REGISTRY });
    await registerWebhook(cp.client, webhook.port, webhook.tls.ca);
    // As an install's default policy does (test/harness/install.ts): every namespace, the user's registry.
    await cp.client.request('POST', '/apis/lazarus.dev/v1alpha1/restorepolicies', { body: {
      apiVersion: 'lazarus.dev/v1alpha1', kind: 'RestorePolicy', metadata: { name: 'default' }, spec: { priority: 100, checkpoint: { registry: USER_REGISTRY } },
    } });
    // A node agent of some kind: lands on every node, whatever its taints.
    await cp.client.request('POST', '/apis/apps/v1/namespaces/default/daemonsets', { body: {
      apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'node-agent' },
      spec: {
        selector: { matchLabels: { app: 'node-agent' } },
        template: { metadata: { labels: { app: 'node-agent' } }, spec: { tolerations: [{ operator: 'Exists' }], containers: [{ name: 'a', image: 'registry.corp.example/node-agent:1' }] } },
      },
    } });
    // The image runs as UID 65532: the harness' kubeconfig is root's, mode 0600.
    dir = await mkdtemp(path.join(os.tmpdir(), 'lazarus-demo-image-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    await copyFile(cp.kubeconfigPath, kubeconfig);
    await chmod(kubeconfig, 0o644);
  }, 20 * 60_000);

  afterAll(() => tearDown([
    ['webhook', () => webhook?.stop()],
    ['extender', () => extender?.stop()],
    ['control plane', () => cp?.stop()],
    ['slow proxy', () => slow?.close()],
    ['temp dir', () => dir && rm(dir, { recursive: true, force: true })],
    // `podman run oci-archive:` stored the image; the archive stays cached.
    ['podman image', () => archive && run('podman', ['rmi', '--ignore', imageRef(archive)])],
  ]), 90_000);

  /** `podman run` of the image, as the Dockerfile's ENTRYPOINT runs `lazarus`; `interrupt` sends SIGINT to podman (which passes it on) once stdout matches. */
  function podmanRun(args: string[], interrupt?: RegExp): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn('podman', [
        'run', '--rm', '--quiet', '--network', 'host',
        // This machine's hard limits are below podman's defaults (runc: "error setting rlimit").
        '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096',
        '-v', `${kubeconfig}:${KUBECONFIG_IN}:ro`,
        `oci-archive:${archive}`, 'demo', ...args,
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let sent = false;
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        if (interrupt && !sent && interrupt.test(stdout)) { sent = true; child.kill('SIGINT'); }
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('without --kubeconfig, says in one line what to do instead (exit 2)', async () => {
    const r = await podmanRun([]);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr.trim() }).toEqual({ code: 2, stdout: '', stderr: NEEDS_CHECKOUT });
  }, 5 * 60_000);

  it('runs the scenario with the installed webhook and extender, its fake nodes Ready throughout, and leaves nothing behind', async () => {
    const client = cp?.client;
    if (!client) throw new Error('no control plane');
    // What the node-lifecycle controller makes of the demo's nodes while the demo runs.
    const seen = { samples: 0, notReady: new Set<string>(), oldestMs: 0 };
    // The cordon of act 3 adds node.kubernetes.io/unschedulable; these two would mean a lost heartbeat.
    const lost = new Set(['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']);
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const nodes = await client.request<{ items: Array<{ metadata: { name: string; creationTimestamp?: string }; spec?: { taints?: Array<{ key: string }> }; status?: { conditions?: Array<{ type: string; status: string }> } }> }>(
          'GET', '/api/v1/nodes', { query: { labelSelector: 'lazarus.dev/demo=true' } });
        for (const n of nodes.items) {
          seen.samples++;
          seen.oldestMs = Math.max(seen.oldestMs, Date.now() - Date.parse(n.metadata.creationTimestamp ?? ''));
          const ready = n.status?.conditions?.find((c) => c.type === 'Ready')?.status;
          // Between the Node's create and its status update it has no conditions yet: nothing to judge.
          if (ready === undefined) continue;
          const taints = (n.spec?.taints ?? []).filter((t) => lost.has(t.key)).map((t) => t.key);
          if (ready !== 'True' || taints.length) seen.notReady.add(`${n.metadata.name}: Ready ${ready} ${taints.join(' ')}`.trim());
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    slow?.arm();
    const r = await podmanRun(['--kubeconfig', KUBECONFIG_IN]);
    watching = false;
    await watch;
    expect(slow?.held()).toBe(1);

    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/✔ existing cluster from \/kubeconfig: Lazarus installed/);
    const restored = [...r.stdout.matchAll(/✔ web-[a-z0-9]+-[a-z0-9]+ restored from web-app-\S+ → (\S+)/g)].map((m) => m[1]);
    expect(restored).toEqual(['lazarus-demo-node-exact', 'lazarus-demo-node-exact', 'lazarus-demo-node-newer']);
    expect(r.stdout).toMatch(/RestorePolicy lazarus-demo, for namespace lazarus-demo only: trusts checkpoint images under registry\.example\/lazarus\//);
    expect(r.stdout).toMatch(/✔ done in \d+\.\d s/);
    // The DaemonSet bound pods to the nodes; they went with the nodes.
    expect(r.stdout).toMatch(/namespace lazarus-demo, RestorePolicy lazarus-demo and the demo nodes removed \(and [1-9]\d* DaemonSet pod\(s\) bound to them\)/);
    expect(extender?.calls()).toBeGreaterThan(0);
    // The nodes outlived the grace period and stayed Ready, untainted: the Leases were renewed.
    expect(seen.oldestMs).toBeGreaterThan((GRACE_S + 2) * 1000);
    expect(seen.samples).toBeGreaterThan(0);
    expect([...seen.notReady]).toEqual([]);
    expect(await demoLeftovers(client)).toEqual([]);
  }, 5 * 60_000);

  it('on Ctrl-C, stops, removes everything it made and exits 130 with one line saying so', async () => {
    const r = await podmanRun(['--kubeconfig', KUBECONFIG_IN], /Deployment lazarus-demo\/web created/);
    expect(r.code).toBe(130);
    expect(r.stderr.trim().split('\n')).toEqual(['lazarus demo: interrupted by SIGINT; stopping everything it started']);
    expect(r.stdout).toMatch(/namespace lazarus-demo, RestorePolicy lazarus-demo and the demo nodes removed/);
    expect(await demoLeftovers(cp?.client ?? fail('no control plane'))).toEqual([]);
  }, 5 * 60_000);
});

interface SlowProxy { arm(): void; held(): number; close(): Promise<void> }

/** Forwards the scheduler's extender calls from `port` to `target`, holding the first /filter once armed. */
async function slowFirstFilter(port: number, target: number): Promise<SlowProxy> {
  let armed = false;
  let held = 0;
  const server = http.createServer((req, res) => {
    const hold = armed && (req.url ?? '').startsWith('/filter');
    if (hold) { armed = false; held++; }
    setTimeout(() => {
      const out = http.request({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      out.on('error', () => { res.writeHead(502).end(); });
      req.pipe(out);
    }, hold ? SLOW_FIRST_FILTER_MS : 0);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    arm: () => { armed = true; },
    held: () => held,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** `…/lazarus-<hash>.oci.tar` → `localhost/lazarus:<hash>`, the reference images.sh gives it. */
function imageRef(archive: string): string {
  const hash = /lazarus-([0-9a-f]+)\.oci\.tar$/.exec(archive)?.[1];
  if (!hash) throw new Error(`unexpected archive name ${archive}`);
  return `localhost/lazarus:${hash}`;
}

function fail(why: string): never { throw new Error(why); }
