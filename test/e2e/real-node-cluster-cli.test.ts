/**
 * `npm run cluster -- --dir D --real-node` as people run it: a child process that prints a ready
 * line, writes D/kubeconfig and D/registry, serves busybox from that registry, has three Ready real
 * nodes — and on SIGTERM leaves no process, mount, cgroup or network namespace behind.
 * Needs root and the checkpoint tools; under CI=true a missing one fails, elsewhere it is skipped.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createKubeClient, loadKubeConfig } from '../../kube/client.js';
import { realNodePreflight } from '../harness/real-node.js';
import { waitFor } from '../harness/wait.js';

const why = await realNodePreflight();
const CLUSTER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../harness/cluster-cli.js');
const test = why && process.env.CI !== 'true' ? it.skip : it;

/** Network namespaces, cgroups (any hierarchy) and mounts that mention `needle`. */
async function traces(needle: string, dir: string): Promise<string[]> {
  const netns = (await readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.includes(needle));
  const cgroups: string[] = [];
  for (const h of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
    for (const c of await readdir(path.join('/sys/fs/cgroup', h)).catch(() => [] as string[])) if (c.includes(needle)) cgroups.push(`${h}/${c}`);
  }
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(`${dir}/`));
  return [...netns, ...cgroups, ...mounts];
}

test('--real-node: ready line, D/kubeconfig, D/registry with busybox, three Ready nodes; SIGTERM leaves nothing behind', async () => {
  if (why) throw new Error(`cannot run real nodes here: ${why}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lazarus-cluster-real-'));
  const child = spawn(process.execPath, [CLUSTER, '--dir', dir, '--real-node'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitFor(() => /cluster ready:/.test(out) || child.exitCode !== null, { timeoutMs: 240_000, description: 'the ready line' });
    expect(out).toMatch(/cluster ready:/);
    const registry = readFileSync(path.join(dir, 'registry'), 'utf8').trim();
    expect(registry).toMatch(/^127\.0\.0\.1:\d+$/);
    const tags = await (await fetch(`http://${registry}/v2/library/busybox/tags/list`)).json() as { tags: string[] };
    expect(tags.tags).toContain('stable');
    const client = await createKubeClient(loadKubeConfig(path.join(dir, 'kubeconfig')));
    const nodes = await client.request<{ items: Array<{ metadata: { name: string }; status: { conditions: Array<{ type: string; status: string }>; nodeInfo: { containerRuntimeVersion: string } } }> }>('GET', '/api/v1/nodes');
    expect(nodes.items.map((n) => `${n.metadata.name} ${n.status.nodeInfo.containerRuntimeVersion}`).sort()).toEqual(['node-a containerd://2.3.7', 'node-b containerd://2.3.7', 'node-c cri-o://1.34.0']);
    for (const n of nodes.items) expect(n.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    // The run's record names its network namespaces and cgroups `lz<id>-<node>`.
    const records = await readdir('/run/lazarus-real-node');
    const record = records.find((f) => readFileSync(path.join('/run/lazarus-real-node', f), 'utf8').includes(`"dir":"${dir}"`));
    const runId = `lz${(record ?? '?').replace(/\.json$/, '')}-`;
    expect(record).toBeDefined();
    expect((await traces(runId, dir)).length).toBeGreaterThan(0);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toMatch(/cluster stopped/);
    expect(await traces(runId, dir)).toEqual([]);
    expect(existsSync(path.join('/run/lazarus-real-node', record ?? '?'))).toBe(false);
  } finally {
    if (child.exitCode === null) { child.kill('SIGTERM'); await exited; }
    await rm(dir, { recursive: true, force: true });
  }
}, 400_000);
