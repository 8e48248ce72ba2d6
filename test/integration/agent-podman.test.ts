/**
 * The proof that a Lazarus checkpoint image is real: podman checkpoints a running counter,
 * `lazarus agent build` pushes the archive to a loopback registry, and podman restores the
 * container from the image Lazarus pushed, the counter going on from where it stopped.
 */
import { Podman, describeWithTools, lazarus, must, startRegistry, waitUntil, type Registry } from './agent-env.js';

const COUNTER = 'i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done';

function numbers(log: string): number[] {
  return log.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number);
}

describeWithTools('agent build + podman restore from the pushed image', ['podman', 'runc', 'skopeo', 'docker-registry', 'zstd'], true, () => {
  let podman: Podman | undefined;
  let registry: Registry | undefined;

  beforeAll(async () => {
    podman = await Podman.create();
    registry = await startRegistry();
  }, 60_000);

  afterAll(async () => {
    await podman?.destroy();
    await registry?.stop();
  }, 60_000);

  it('restores a counter that continues from the checkpoint', async () => {
    if (!podman || !registry) throw new Error('setup failed');
    const p = podman;
    await p.importBusybox('localhost/lazarus-test/busybox:1');
    await p.must(['run', '-d', '--name', 'counter', ...Podman.RUN_FLAGS, 'localhost/lazarus-test/busybox:1', '/bin/sh', '-c', COUNTER]);
    await waitUntil(async () => (numbers(await p.must(['logs', 'counter'])).length >= 5 ? true : undefined), 20_000, 'the counter to count');

    const archive = `${p.dir}/counter-checkpoint.tar.zst`;
    await p.must(['container', 'checkpoint', '--export', archive, 'counter'], 120_000);
    const before = numbers(await p.must(['logs', 'counter']));
    const last = before[before.length - 1] ?? -1;
    expect(last).toBeGreaterThanOrEqual(4);

    const target = `${registry.host}/lazarus/default/counter:ck1`;
    const built = await lazarus(['agent', 'build', archive, target, '--insecure']);
    expect(built.stderr).toBe('');
    expect(built.code).toBe(0);
    const pushed = built.stdout.trim();
    expect(pushed).toMatch(new RegExp(`^${registry.host}/lazarus/default/counter@sha256:[0-9a-f]{64}$`));

    const raw = JSON.parse(await must('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${pushed}`])) as {
      mediaType: string; layers: { mediaType: string }[]; annotations: Record<string, string>;
    };
    expect(raw.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(raw.layers).toHaveLength(1);
    expect(raw.annotations).toMatchObject({
      'io.kubernetes.cri-o.annotations.checkpoint.name': 'counter',
      'org.criu.checkpoint.container.name': 'counter',
      'io.podman.annotations.checkpoint.name': 'counter',
      'io.podman.annotations.checkpoint.runtime.name': 'runc',
      'org.criu.checkpoint.runtime.name': 'runc',
      'org.criu.checkpoint.rootfsImageName': 'localhost/lazarus-test/busybox:1',
      'org.criu.checkpoint.host.arch': 'amd64',
    });
    expect(raw.annotations['org.criu.checkpoint.criu.version']).toMatch(/^4\.\d+/);
    const config = JSON.parse(await must('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${pushed}`])) as {
      architecture: string; os: string; rootfs: { diff_ids: string[] };
    };
    expect(config).toMatchObject({ architecture: 'amd64', os: 'linux' });
    expect(config.rootfs.diff_ids).toEqual([(raw.layers[0] as { digest?: string }).digest]);

    // The original container goes away; only the pushed image brings it back.
    await p.must(['rm', '-f', 'counter']);
    await p.must(['pull', '--tls-verify=false', pushed], 120_000);
    await p.must(['container', 'restore', pushed], 120_000);
    const after = await waitUntil(async () => {
      const n = numbers(await p.must(['logs', 'counter']));
      return n.length >= 3 ? n : undefined;
    }, 20_000, 'the restored counter to count');
    expect(after[0]).toBe(last + 1);
    expect(after[after.length - 1]).toBeGreaterThan(last + 1);
    const state = (await p.must(['inspect', '--format', '{{.State.Status}} {{.State.Restored}}', 'counter'])).trim();
    expect(state).toBe('running true');
  }, 240_000);
});
