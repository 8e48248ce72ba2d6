/** `npm run cluster`: hooks prepare and start around the control plane; abort stops everything. */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCluster, type ClusterHook } from '../harness/cluster-cli.js';
import { isAlive } from '../harness/control-plane.js';
import { kubeBinDir } from '../harness/kube-bin.js';
import { waitFor } from '../harness/wait.js';

beforeAll(async () => { await kubeBinDir(); }, 15 * 60_000);

it('runs hooks, prints ready, writes D/kubeconfig, and stops every process on abort', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lazarus-cluster-'));
  const lines: string[] = [];
  const events: string[] = [];
  const pids: number[] = [];
  const hook: ClusterHook = {
    name: 'probe',
    prepare: (options) => {
      events.push('prepare');
      return { ...options, profiles: [...(options.profiles ?? []), 'from-hook'], onProcess: (_n, pid) => pids.push(pid) };
    },
    start: async (cp) => {
      const v = await cp.client.request<{ gitVersion: string }>('GET', '/version');
      events.push(`start ${v.gitVersion}`);
      return { stop: async () => { events.push('stop'); } };
    },
  };
  const controller = new AbortController();
  const run = runCluster(['--dir', dir], {}, { hooks: [hook], signal: controller.signal, out: (l) => lines.push(l) });
  await waitFor(() => lines.some((l) => l.includes('ready:')), { timeoutMs: 60_000, description: 'the ready line' });
  expect(existsSync(path.join(dir, 'kubeconfig'))).toBe(true);
  expect(readFileSync(path.join(dir, 'scheduler.yaml'), 'utf8')).toContain('schedulerName: from-hook');
  expect(pids.filter(isAlive).length).toBe(pids.length);
  controller.abort();
  expect(await run).toBe(0);
  expect(events).toEqual(['prepare', 'start v1.35.4', 'stop']);
  expect(pids.length).toBeGreaterThanOrEqual(5);
  expect(pids.filter(isAlive)).toEqual([]);
  await rm(dir, { recursive: true, force: true });
}, 90_000);

it('rejects unknown flags with exit code 2', async () => {
  expect(await runCluster(['--nope'], {}, { signal: new AbortController().signal, out: () => undefined })).toBe(2);
});
