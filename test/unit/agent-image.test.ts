import { createHash } from 'node:crypto';
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArchiveMeta } from '../../agent/archive-meta.js';
import { ArchiveError, detectCompression, safeEntryName } from '../../agent/archive.js';
import { inspectArchive } from '../../agent/build.js';
import { ANNOTATION, buildImage, checkpointAnnotations, ociArch, sha256 } from '../../agent/oci-image.js';
import { checkpointEntries, dumps, writeArchive, type FixtureEngine } from './agent-fixtures.js';

describe('parseArchiveMeta: the three engines (checkpointctl container.go)', () => {
  it.each<[FixtureEngine, Record<string, unknown>]>([
    ['podman', { engine: 'Podman', container: 'ctr', runtime: 'runc', rootfsImageName: 'localhost/busybox-rootfs:1', rootfsImageId: 'cc2e350ba4a8af0ccba00959da510f3e46dc54732f904d64e5133ec83110db22' }],
    ['crio', { engine: 'CRI-O', container: 'app', pod: 'web-7d9c-abcde', namespace: 'shop', podUid: '1b2c3d4e-0000-4000-8000-000000000001', rootfsImage: 'registry.example/web:1.4', rootfsImageId: 'registry.example/web@sha256:5f0a7c0b1b2e3d4c5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f', checkpointedTime: '2026-11-27T12:00:00.5Z' }],
    ['containerd', { engine: 'containerd', container: 'app', pod: 'web-7d9c-abcde', namespace: 'shop', runtime: 'io.containerd.runc.v2', rootfsImageName: 'registry.example/web:1.4' }],
  ])('%s', (engine, expected) => {
    const d = dumps(engine);
    const meta = parseArchiveMeta(d.config, d.spec);
    expect(meta).toMatchObject(expected);
    expect(meta).not.toHaveProperty('restoredTime');
  });

  it.each([
    ['no config.dump', undefined, '{}', /no config\.dump/],
    ['no spec.dump', '{}', undefined, /no spec\.dump/],
    ['config not JSON', '{', '{}', /config\.dump is not JSON/],
    ['CRI-O without metadata', '{}', '{"annotations":{"io.container.manager":"cri-o"}}', /cri-o\.Metadata/],
    ['no name anywhere', '{}', '{"annotations":{}}', /container's name/],
  ])('rejects %s', (_name, config, spec, message) => {
    expect(() => parseArchiveMeta(config, spec)).toThrow(ArchiveError);
    expect(() => parseArchiveMeta(config, spec)).toThrow(message);
  });
});

describe('archive helpers', () => {
  it.each([
    ['gzip', [0x1f, 0x8b, 8, 0], 'gzip'],
    ['zstd', [0x28, 0xb5, 0x2f, 0xfd], 'zstd'],
    ['tar', [0x63, 0x6f, 0x6e, 0x66], 'none'],
    ['empty', [], 'none'],
  ])('detects %s', (_n, bytes, want) => expect(detectCompression(Uint8Array.from(bytes))).toBe(want));

  it.each([
    ['./checkpoint/pages-1.img', 'checkpoint/pages-1.img'],
    ['config.dump', 'config.dump'],
    ['a//b/./c', 'a/b/c'],
    ['/etc/passwd', undefined],
    ['checkpoint/../../etc', undefined],
  ])('safeEntryName(%s)', (name, want) => expect(safeEntryName(name)).toBe(want));

  it('maps node arch names to OCI', () => {
    expect([ociArch('x64'), ociArch('arm64'), ociArch('s390x')]).toEqual(['amd64', 'arm64', 's390x']);
  });
});

describe('image: annotations, config, manifest', () => {
  const d = dumps('crio');
  const meta = parseArchiveMeta(d.config, d.spec);
  const host = { criuVersion: '4.1.1', kernel: '6.8.0-45-generic', arch: 'amd64', runtimeVersion: '1.1.12', cgroup: 'v2' as const };

  it('carries every detection key and the org.criu.checkpoint.* keys of DESIGN §2', () => {
    const a = checkpointAnnotations(meta, host);
    expect(a).toMatchObject({
      'io.kubernetes.cri-o.annotations.checkpoint.name': 'app',
      'org.criu.checkpoint.container.name': 'app',
      'io.podman.annotations.checkpoint.name': 'app',
      'io.podman.annotations.checkpoint.runtime.name': 'runc',
      'org.criu.checkpoint.criu.version': '4.1.1',
      'org.criu.checkpoint.host.kernel': '6.8.0-45-generic',
      'org.criu.checkpoint.host.arch': 'amd64',
      'org.criu.checkpoint.runtime.name': 'runc',
      'org.criu.checkpoint.runtime.version': '1.1.12',
      'org.criu.checkpoint.cgroup.version': 'v2',
      'org.criu.checkpoint.pod.name': 'web-7d9c-abcde',
      'org.criu.checkpoint.pod.namespace': 'shop',
      'org.criu.checkpoint.rootfsImageName': 'registry.example/web:1.4',
      'org.criu.checkpoint.rootfsImageID': 'registry.example/web@sha256:5f0a7c0b1b2e3d4c5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f',
    });
    expect(Object.values(a)).not.toContain('');
  });

  it('omits keys with unknown values rather than writing empty strings', () => {
    const a = checkpointAnnotations({ engine: 'Podman', container: 'c' }, { kernel: 'k', arch: 'amd64' });
    expect(a).not.toHaveProperty(ANNOTATION.criuVersion);
    expect(a).not.toHaveProperty(ANNOTATION.podName);
  });

  it('builds a deterministic OCI manifest whose config names the layer as diff_id', () => {
    const layer = { digest: `sha256:${'a'.repeat(64)}`, size: 1234 };
    const a = checkpointAnnotations(meta, host);
    const one = buildImage(layer, 'amd64', a, meta.checkpointedTime);
    const two = buildImage(layer, 'amd64', a, meta.checkpointedTime);
    expect(one.manifestDigest).toBe(two.manifestDigest);
    expect(one.manifestDigest).toBe(sha256(one.manifest));
    const config = JSON.parse(one.config.toString()) as Record<string, unknown>;
    expect(config).toMatchObject({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } });
    const manifest = JSON.parse(one.manifest.toString()) as Record<string, unknown>;
    expect(manifest).toMatchObject({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(one.config), size: one.config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: 1234 }],
      annotations: a,
    });
  });
});

describe('inspectArchive: one streamed pass', () => {
  let dir = '';
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'lazarus-agent-unit-')); });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });
  let bad = 0;

  it.each(['none', 'gzip', 'zstd'] as const)('reads a %s archive; the digest is that of the uncompressed tar', async (compression) => {
    const plain = join(dir, 'plain.tar');
    const path = join(dir, `a-${compression}.tar`);
    await writeArchive(plain, checkpointEntries('podman'));
    await writeArchive(path, checkpointEntries('podman'), compression);
    const bytes = await readFile(plain);
    const scanned = await inspectArchive(path);
    expect(scanned.digest).toBe(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
    expect(scanned.size).toBe(bytes.length);
    expect(scanned.meta.container).toBe('ctr');
  });

  it.each([
    ['not a tar at all', async (p: string) => writeFile(p, 'hello, this is not a tar archive '.repeat(40)), /not a readable tar/],
    ['truncated', async (p: string) => {
      await writeArchive(p, checkpointEntries('podman', Buffer.alloc(64 * 1024, 1)));
      const b = await readFile(p);
      await writeFile(p, b.subarray(0, 20_000));
    }, /not a readable tar/],
    ['a tar without checkpoint/', async (p: string) => writeArchive(p, [{ name: 'config.dump', body: dumps('podman').config }, { name: 'spec.dump', body: dumps('podman').spec }]), /no checkpoint\/ directory/],
    ['a tar without config.dump', async (p: string) => writeArchive(p, checkpointEntries('podman').slice(1)), /no config\.dump/],
    ['an unsafe entry name', async (p: string) => writeArchive(p, [...checkpointEntries('podman'), { name: '../../etc/cron.d/x', body: 'x' }]), /unsafe entry name/],
    ['corrupt gzip', async (p: string) => {
      await writeArchive(p, checkpointEntries('podman'), 'gzip');
      const b = await readFile(p);
      b.fill(0x55, 30, 200);
      await writeFile(p, b);
    }, /not a readable gzip tar|unsafe|no config/],
  ])('fails with ArchiveError on %s', async (_name, make, message) => {
    const p = join(dir, `bad-${String(++bad)}.tar`);
    await make(p);
    await expect(inspectArchive(p)).rejects.toThrow(ArchiveError);
    await expect(inspectArchive(p)).rejects.toThrow(message);
  });

  it('a missing file is not an ArchiveError (it may be retried)', async () => {
    await expect(inspectArchive(join(dir, 'absent.tar'))).rejects.not.toBeInstanceOf(ArchiveError);
  });
});
