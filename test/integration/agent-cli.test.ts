/** `lazarus agent` flags: one-line reasons and exit code 2 on misuse; the daemon serves health while running. */
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FakeKube } from './agent-fake-kube.js';
import { CLI, freePort, lazarus, stopChild, tempDir, waitUntil } from './agent-env.js';

describe('lazarus agent command line', () => {
  it.each([
    [['agent', 'build', 'only-one-arg'], /want exactly two arguments/],
    [['agent', 'build', 'a.tar', 'Bad/Ref:1'], /bad repository name/],
    [['agent', 'build', 'a.tar', 'r.example/x:1', '--bogus'], /unknown flag --bogus/],
    [['agent'], /--node-name is required/],
    [['agent', '--node-name', 'n', '--metrics-port', '99999'], /not a port/],
    [['agent', '--node-name', 'n', '--runtime-config', 'etc/crio/crio.conf'], /--runtime-config: "etc\/crio\/crio.conf" is not an absolute path on the host/],
  ])('%j exits 2 with a one-line reason', async (args, reason) => {
    const r = await lazarus(args, { NODE_NAME: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(reason);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('build of a missing archive fails with exit 1 and the reason', async () => {
    const r = await lazarus(['agent', 'build', '/nonexistent/ck.tar', '127.0.0.1:1/x/y:1', '--insecure']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ENOENT|no such file/);
  });

  it('the daemon publishes node facts, reports ready, and stops on SIGTERM', async () => {
    const kube = new FakeKube();
    await kube.start();
    const dir = await tempDir('agent-cli');
    const port = await freePort();
    // `env` stands in for `nsenter --target 1 --mount --`: criu and the runtime's configuration are both run through it.
    const crioConf = join(dir, 'crio.conf');
    await writeFile(crioConf, '[crio.checkpoint_restore]\ncontainer_level_enabled = "checkpoint_only"\n');
    const child = spawn(process.execPath, [CLI, 'agent', '--node-name', 'node-a', '--checkpoint-dir', join(dir, 'ck'),
      '--kubeconfig', await kube.kubeconfig(dir), '--metrics-port', String(port), '--host-exec', 'env', '--criu', '/nonexistent/criu',
      '--runtime-config', crioConf, '--runtime-config', `${dir}/crio.conf.d/*.conf`, '--log-level', 'error'], { stdio: 'ignore' });
    try {
      await mkdir(join(dir, 'ck'));
      kube.put('/api/v1/nodes/node-a', { metadata: { name: 'node-a' }, status: { nodeInfo: { containerRuntimeVersion: 'cri-o://1.33.2' } } });
      await waitUntil(async () => ((await fetch(`http://127.0.0.1:${String(port)}/readyz`)).status === 200 ? true : undefined), 20_000, 'readyz');
      const node = kube.get<{ metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } }>('/api/v1/nodes/node-a');
      // The runtime's name is published whether or not the node can restore (issue 13, point 5).
      expect(node?.metadata.labels).toEqual({ 'lazarus.dev/restore-capable': 'false', 'lazarus.dev/runtime': 'cri-o' });
      expect(node?.metadata.annotations).toMatchObject({
        'lazarus.dev/restore-capable-reason': 'criu not found on the node (`criu --version` failed); install CRIU on the host; '
          + `CRI-O 1.33.2: restore is off: container_level_enabled = "checkpoint_only" (in ${crioConf}); set container_level_enabled = "checkpoint_restore" under [crio.checkpoint_restore] in ${crioConf} or a drop-in in /etc/crio/crio.conf.d/`,
      });
      expect(await (await fetch(`http://127.0.0.1:${String(port)}/metrics`)).text()).toMatch(/lazarus_agent_archives_total/);
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      await stopChild(child);
      await kube.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
