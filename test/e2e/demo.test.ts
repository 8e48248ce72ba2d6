/**
 * `lazarus demo` as a newcomer runs it: a child process (node dist/cli/main.js demo) that starts
 * its own control plane and Lazarus, narrates the restores, and leaves nothing running; then
 * against an existing cluster (--kubeconfig), where it only creates and removes objects.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { tearDown } from '../harness/teardown.js';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { installCrds } from '../harness/apply.js';
import { kubeBinDir, repoRoot } from '../harness/kube-bin.js';
import { freePort } from '../harness/processes.js';
import { startLazarus, type RunningExtender, type RunningWebhook } from '../harness/lazarus.js';
import { demoLeftovers } from '../support/demo-leftovers.js';
import { realNodePreflight } from '../harness/real-node.js';
import { loadCheckout, runDemo as runDemoInProcess } from '../../demo/command.js';

const MAIN = path.join(repoRoot(), 'dist', 'cli', 'main.js');
/** Why the demo opens without real nodes here (root and the checkpoint tools are needed); CI runs as root. */
const why = await realNodePreflight();
/** How long a whole run may take: the real nodes' act is about 1.5 minutes warm. */
const RUN_MS = why ? 120_000 : 420_000;

/** Demo process groups still running, killed after the tests if a test gave up on one. */
const live = new Set<number>();
/** The demo keeps its logs for people; the tests remove them. */
const logDirs = new Set<string>();
afterAll(() => {
  for (const pid of live) try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
  for (const dir of logDirs) rmSync(dir, { recursive: true, force: true });
});

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; descendants: number[] }

/** The parent of a process, from /proc (undefined once it is gone). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch { return undefined; }
}

/** Alive and not a zombie. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch { return false; }
}

function descendantsOf(root: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = parentOf(Number(entry));
    if (ppid !== undefined) parents.set(Number(entry), ppid);
  }
  const found = new Set<number>([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parents) if (!found.has(pid) && found.has(ppid)) { found.add(pid); grew = true; }
  }
  found.delete(root);
  return [...found];
}

/**
 * Runs the demo, recording every process it starts (the process tree under it, sampled while it
 * runs). `interrupt` sends SIGINT once stdout matches it.
 */
function runDemo(args: string[], options: { interrupt?: { when: RegExp; signal: NodeJS.Signals; group: boolean } } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    // Its own process group, so that a signal can go to all of it, as a terminal's Ctrl-C does.
    const child = spawn(process.execPath, [MAIN, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: '' }, detached: true });
    const pid = child.pid;
    if (pid === undefined) { reject(new Error('could not start the demo')); return; }
    live.add(pid);
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    const seen = new Set<number>();
    const sample = (): void => { for (const p of descendantsOf(pid)) seen.add(p); };
    const timer = setInterval(sample, 100);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      sample();
      const i = options.interrupt;
      if (i && !interrupted && i.when.test(stdout)) {
        interrupted = true;
        process.kill(i.group ? -pid : pid, i.signal);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      live.delete(pid);
      clearInterval(timer);
      for (const m of stdout.matchAll(/^component logs: (\/\S+?)\/? /gm)) if (m[1]?.includes('lazarus-demo-')) logDirs.add(m[1]);
      resolve({ code, signal, stdout, stderr, descendants: [...seen] });
    });
  });
}

/** Processes may take a moment to be reaped once their parent is gone. */
async function leftRunning(pids: readonly number[]): Promise<number[]> {
  for (let i = 0; i < 20; i++) {
    const alive = pids.filter(running);
    if (alive.length === 0) return [];
    await new Promise((r) => setTimeout(r, 100));
  }
  return pids.filter(running);
}

beforeAll(async () => { await kubeBinDir(); }, 15 * 60_000);

describe('on its own local control plane', () => {
  let run: Run;
  beforeAll(async () => { run = await runDemo([]); }, RUN_MS);

  it('exits 0 and prints nothing on stderr (component logs go to files)', () => {
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  });

  // Under CI=true a machine that cannot run real nodes fails here instead of skipping.
  (why && process.env.CI !== 'true' ? it.skip : it)('opens on real nodes: a counter checkpointed on node-a is restored on node-b and counts on; node-c (CRI-O) is refused', () => {
    if (why) throw new Error(`cannot run real nodes here: ${why}`);
    const out = run.stdout;
    expect(out).toMatch(/✔ registry and 3 real nodes Ready/);
    expect(out).toMatch(/node-a {2}Ready +containerd:\/\/2\.3\.7/);
    expect(out).toMatch(/node-c {2}Ready +cri-o:\/\/1\.34\.0/);
    expect(out).toMatch(/✔ Lazarus installed from its own image\s.*\n +image \S+\/lazarus:[0-9a-f]{12,}: the repo's Dockerfile/);
    expect(out).toMatch(/lazarus-webhook +×2 +on .* Ready/);
    expect(out).toMatch(/lazarus-agent +×3 +on node-a, node-b, node-c +Ready/);
    expect(out.match(/node-[abc] {2}restore-capable=true {2}criu 4\.1\.1 {2}restore enabled/g)).toHaveLength(3);
    expect(out).toMatch(/\$ lazarus checkpoint pod lazarus-demo\/counter-\S+ --wait\n(?: {6}.*\n)* {6}ok: 1 checkpoint\(s\) Ready/);
    const cp = /✔ Checkpoint (counter-app-\S+) Ready/.exec(out)?.[1];
    const restored = /✔ (counter-\S+) restored from (counter-app-\S+) → (\S+)/.exec(out);
    expect(restored?.[3]).toBe('node-b');
    // From the checkpoint taken on demand, or a fresher one the cordon made (onDrain).
    expect(restored?.[2]).toMatch(/^counter-app-/);
    expect(cp).toBeDefined();
    // The replacement goes on from the checkpointed count N: … N | N+1 N+2 N+3. The archived log
    // may hold a line or two more (containerd copies it after the dump, the container running on).
    const at = Number(/counter at the checkpoint: (\d+);/.exec(out)?.[1]);
    expect(at).toBeGreaterThanOrEqual(3);
    const tail = /^ {6}… ([\d ]+) \| ([\d ]+)$/m.exec(out);
    const before = (tail?.[1] ?? '').split(' ').map(Number);
    const after = (tail?.[2] ?? '').split(' ').map(Number);
    expect(before.at(-1)).toBeGreaterThanOrEqual(at);
    expect(before.at(-1)).toBeLessThanOrEqual(at + 2);
    expect(after.slice(0, 3)).toEqual([at + 1, at + 2, at + 3]);
    expect(out).toMatch(/✘ node-c +runtime cri-o differs from the checkpoint's containerd/);
    expect(out).toMatch(/✔ node-b +score +\d+ +← bound here/);
    expect(out).toMatch(/✔ real nodes, registry and control plane stopped; logs kept in \/\S+/);
    // The placement acts on fake nodes follow on a control plane of their own.
    expect(out.indexOf('real nodes, registry and control plane stopped')).toBeLessThan(out.indexOf('On fake nodes'));
  });


  it('narrates the first pod restored from the newest usable checkpoint on the best node, with every node\'s verdict', () => {
    const out = run.stdout;
    const chosen = /✔ (web-app-\d{8}t\d{6}z) {2}\S+ ago, Ready, same spec hash: the newest usable one/.exec(out)?.[1];
    expect(chosen).toBeDefined();
    expect(out).toMatch(/✘ web-app-\d{8}t\d{6}z {2}\S+ ago, Failed: image push failed/);
    expect(out).toMatch(/✘ web-app-\d{8}t\d{6}z {2}\S+ ago, spec hash [0-9a-f]{16} ≠ [0-9a-f]{16}: taken from registry\.example\/web:1\.3/);
    const restored = [...out.matchAll(/✔ (web-[a-z0-9]+-[a-z0-9]+) restored from (\S+) → (\S+)/g)].map((m) => ({ pod: m[1], from: m[2], node: m[3] }));
    expect(restored.map((r) => [r.from, r.node])).toEqual([[chosen, 'node-exact'], [chosen, 'node-exact'], [chosen, 'node-newer']]);
    expect(new Set(restored.map((r) => r.pod)).size).toBe(3);
    expect(out).toMatch(/required node affinity added by the webhook: kubernetes\.io\/arch In amd64, lazarus\.dev\/criu-version Gt 40100, lazarus\.dev\/restore-capable In true, lazarus\.dev\/runtime In cri-o/);
    expect(out).toMatch(/✔ node-exact +score {2}8 {2}← bound here/);
    expect(out).toMatch(/✔ node-exact +score {2}8 {2}\(cordoned\)\n.*✔ node-newer +score {2}5 {2}← bound here/);
    expect(out).toMatch(/✘ node-old-criu +criu 3\.17\.1 is older than the checkpoint's 4\.1\.1/);
    expect(out).toMatch(/✘ node-arm64 +architecture arm64 differs/);
    expect(out).toMatch(/✘ node-containerd +runtime containerd differs/);
    expect(out).toMatch(/✘ node-no-avx2 +CPU lacks flags .*avx2/);
    expect(out).toMatch(/✔ done in \d+\.\d s/);
    expect(out).toMatch(/webhook, extender and control plane stopped \(\d+ processes\); logs kept in \/\S+/);
  });

  it('leaves none of the processes it started running', async () => {
    // etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the reaper, at least.
    expect(run.descendants.length).toBeGreaterThanOrEqual(5);
    expect(await leftRunning(run.descendants)).toEqual([]);
  });
});

it.each([
  // As root, the first Deployment is the real nodes' counter: Ctrl-C while real pods run.
  { what: 'Ctrl-C (SIGINT to the whole process group) during the scenario', signal: 'SIGINT' as const, group: true, when: /Deployment \S+ created/ },
  { what: 'SIGTERM to the demo alone while Lazarus starts on fake nodes', signal: 'SIGTERM' as const, group: false, when: /lazarus-demo-[A-Za-z0-9]{6}\/ [\s\S]*control plane on https/ },
])('on $what, it stops everything it started and exits 130 with one line saying so', async ({ signal, group, when }) => {
  const run = await runDemo([], { interrupt: { signal, group, when } });
  expect(run.code).toBe(130);
  expect(run.stderr.trim().split('\n')).toEqual([`lazarus demo: interrupted by ${signal}; stopping everything it started`]);
  expect(run.stdout).toMatch(/control plane stopped/);
  expect(run.descendants.length).toBeGreaterThanOrEqual(5);
  expect(await leftRunning(run.descendants)).toEqual([]);
}, RUN_MS);

// Whatever this machine can do: the demo is told real nodes cannot run, says so in one line and
// goes on (stopped right after that line: the rest is the fake-node acts tested above).
it('says in one line that it skips the real nodes, and why', async () => {
  const checkout = await loadCheckout();
  if (!checkout) throw new Error('no demo/checkout/ in this checkout');
  const lines: string[] = [];
  const abort = new AbortController();
  const code = await runDemoInProcess({ kubeconfig: undefined }, {
    out: (l) => { lines.push(l); if (l.startsWith('real nodes skipped')) abort.abort(); },
    err: () => undefined, clock: Date.now, signal: abort.signal,
    checkout: { ...checkout, realNodePreflight: () => Promise.resolve('real nodes need root (network namespaces, cgroups, mounts, CRIU)') },
  });
  expect(code).toBe(130);
  expect(lines).toContain('real nodes skipped (real nodes need root (network namespaces, cgroups, mounts, CRIU)); the placement acts on fake nodes follow');
}, 60_000);

it('rejects bad flags with exit code 2', async () => {
  const run = await runDemo(['--nope']);
  expect(run.code).toBe(2);
  expect(run.stderr).toMatch(/unknown flag --nope/);
});

describe('against an existing cluster (--kubeconfig)', () => {
  let cp: ControlPlane;
  let webhook: RunningWebhook | undefined;
  let extender: RunningExtender | undefined;
  let extenderPort: number;

  beforeAll(async () => {
    const port = extenderPort = await freePort();
    cp = await startControlPlane({
      extenders: [{ urlPrefix: `http://127.0.0.1:${port}`, nodeCacheCapable: true, weight: 5, ignorable: true }],
      schedulerConfig: { podInitialBackoffSeconds: 1, podMaxBackoffSeconds: 2 },
      log: () => undefined,
    });
    // Lazarus is not installed yet (the first test sees that); the scheduler already knows its extender's URL.
  }, 120_000);

  afterAll(() => tearDown([
    ['webhook', () => webhook?.stop()],
    ['extender', () => extender?.stop()],
    ['control plane', () => cp?.stop()],
  ]), 90_000);

  it('refuses, in one line, a cluster where Lazarus is not installed', async () => {
    const run = await runDemo(['--kubeconfig', cp.kubeconfigPath]);
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toMatch(/^lazarus demo: failed: Lazarus is not installed on this cluster: no lazarus\.dev\/v1alpha1 API/);
  }, 60_000);

  it('runs the scenario with the installed webhook and extender, then removes its namespace and nodes', async () => {
    await installCrds(cp.client);
    ({ webhook, extender } = await startLazarus(cp.client, extenderPort));

    const run = await runDemo(['--kubeconfig', cp.kubeconfigPath]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const nodes = [...run.stdout.matchAll(/✔ web-[a-z0-9]+-[a-z0-9]+ restored from web-app-\S+ → (\S+)/g)].map((m) => m[1]);
    expect(nodes).toEqual(['lazarus-demo-node-exact', 'lazarus-demo-node-exact', 'lazarus-demo-node-newer']);
    expect(run.descendants).toEqual([]);
    expect(extender.calls()).toBeGreaterThan(0);

    // Nothing of the demo is left in the cluster.
    await expectNoDemoObjects();
  }, 120_000);

  it('fails in one line when the webhook does not answer (pods start cold), and still removes what it created', async () => {
    await webhook?.stop(); // still registered, failurePolicy Ignore: pods are created unchanged
    webhook = undefined;
    const run = await runDemo(['--kubeconfig', cp.kubeconfigPath]);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^lazarus demo: failed: pod web-\S+ started cold: the webhook did not restore it, though it would now \(from web-app-\S+\): is it running and reachable\?$/)]);
    expect(run.stdout).toMatch(/✘ web-\S+ started cold → lazarus-demo-node-/);
    expect(run.stdout).toMatch(/namespace lazarus-demo, RestorePolicy lazarus-demo and the demo nodes removed/);
    await expectNoDemoObjects();
  }, 120_000);

  it('leaves alone, and says so in one line, a namespace of its name that it did not make', async () => {
    await cp.client.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'lazarus-demo', labels: { team: 'shop' } } } });
    const run = await runDemo(['--kubeconfig', cp.kubeconfigPath]);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toEqual(['lazarus demo: failed: namespace lazarus-demo already exists without the label lazarus.dev/demo=true: not made by lazarus demo, so it leaves it alone and stops here']);
    const ns = await cp.client.request<{ metadata: { labels?: Record<string, string>; deletionTimestamp?: string } }>('GET', '/api/v1/namespaces/lazarus-demo');
    expect({ team: ns.metadata.labels?.team, deleting: ns.metadata.deletionTimestamp }).toEqual({ team: 'shop', deleting: undefined });
    await cp.client.request('DELETE', '/api/v1/namespaces/lazarus-demo');
  }, 60_000);

  async function expectNoDemoObjects(): Promise<void> {
    expect(await demoLeftovers(cp.client)).toEqual([]);
  }

});
