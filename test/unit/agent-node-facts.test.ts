import type { Node } from '../../api/types.js';
import { parseRuntimeVersion } from '../../agent/host.js';
import { desiredNodeMetadata, nodeMetadataPatch, originFacts, parseCpuFlags, parseCriuVersion, lastLines, readLocalFacts, restoreCapability, type FactSources, type LocalFacts } from '../../agent/node-facts.js';
import type { RestoreSupport } from '../../agent/runtime-restore.js';
import { checkpointName, compactTime, dnsName, failedCheckpointName, imageRefFor, isArchiveName, parseKubeletArchiveName } from '../../agent/plan.js';

describe('parsing what the node says', () => {
  it.each([
    ['Version: 4.1.1\n', '4.1.1'],
    ['Version: 3.17.1\nGitID: v3.17.1\n', '3.17.1'],
    ['Version: 4.2\n', '4.2'],
    ['criu: command not found', undefined],
  ])('criu --version %j', (out, want) => expect(parseCriuVersion(out)).toBe(want));

  it.each([
    ['processor\t: 0\nflags\t\t: fpu vme sse4_2 avx2 fpu\n\nprocessor\t: 1\nflags\t\t: fpu\n', ['avx2', 'fpu', 'sse4_2', 'vme']],
    ['processor\t: 0\nFeatures\t: fp asimd aes\n', ['aes', 'asimd', 'fp']],
    ['', []],
  ])('cpu flags from /proc/cpuinfo #%#', (text, want) => expect(parseCpuFlags(text)).toEqual(want));

  it.each([
    ['runc version 1.1.5\ncommit: …\nspec: 1.0.2-dev', '1.1.5'],
    ['crun version 1.8.1\ncommit: abc', '1.8.1'],
    ['nonsense', undefined],
  ])('runtime --version %j', (out, want) => expect(parseRuntimeVersion(out)).toBe(want));
});

describe('node labels and annotations (DESIGN §2)', () => {
  const facts: LocalFacts = { criuVersion: '4.1.1', criuCheckPassed: true, cpuFlags: ['avx2', 'fpu'], cgroup: 'v2' };

  const ON: RestoreSupport = { capable: true, reason: 'restore enabled (CRI-O 1.33.2, container_level_enabled = "checkpoint_restore")' };
  const OFF: RestoreSupport = { capable: false, reason: 'containerd 2.4.1 removed restore from a checkpoint image (KEP-5823 RestorePod replaces it)' };

  it.each<[string, LocalFacts, RestoreSupport, Record<string, string | null>, string]>([
    ['capable', facts, ON, { 'lazarus.dev/criu-version': '40101', 'lazarus.dev/restore-capable': 'true' }, ON.reason],
    ['criu check failed', { ...facts, criuCheckPassed: false, criuCheckError: 'Error (criu/cr-check.c:1234): Kernel lacks memfd' }, ON,
      { 'lazarus.dev/criu-version': '40101', 'lazarus.dev/restore-capable': 'false' }, 'criu check failed: Error (criu/cr-check.c:1234): Kernel lacks memfd'],
    ['criu check failed without output', { ...facts, criuCheckPassed: false }, ON,
      { 'lazarus.dev/criu-version': '40101', 'lazarus.dev/restore-capable': 'false' }, 'criu check failed: no output'],
    ['runtime cannot restore', facts, OFF, { 'lazarus.dev/criu-version': '40101', 'lazarus.dev/restore-capable': 'false' }, OFF.reason],
    ['no criu, runtime off: both named', { criuCheckPassed: false, cpuFlags: [] }, OFF, { 'lazarus.dev/criu-version': null, 'lazarus.dev/restore-capable': 'false' },
      `criu not found on the node (\`criu --version\` failed); install CRIU on the host; ${OFF.reason}`],
    ['criu check failed, runtime off: both named', { ...facts, criuCheckPassed: false, criuCheckError: 'x' }, OFF,
      { 'lazarus.dev/criu-version': '40101', 'lazarus.dev/restore-capable': 'false' }, `criu check failed: x; ${OFF.reason}`],
    ['a criu version Lazarus cannot encode', { ...facts, criuVersion: '4.100.1' }, ON, { 'lazarus.dev/criu-version': null, 'lazarus.dev/restore-capable': 'false' },
      'criu 4.100.1 is not a version Lazarus can compare'],
  ])('%s', (_name, f, runtime, labels, reason) => {
    const meta = desiredNodeMetadata(f, runtime);
    // No containerRuntimeVersion given: no runtime label (removed if one was there).
    expect(meta.labels).toEqual({ ...labels, 'lazarus.dev/runtime': null });
    expect(meta.annotations['lazarus.dev/restore-capable-reason']).toBe(reason);
  });

  // A restored pod's required affinity names the runtime by this label (issue 13, point 5).
  it.each<[string | undefined, string | null]>([
    ['containerd://2.3.7', 'containerd'],
    ['cri-o://1.33.2', 'cri-o'],
    [undefined, null],
    ['', null],
    ['not a label value://1.0', null],
  ])('label lazarus.dev/runtime from containerRuntimeVersion %j is %j, capable or not', (version, want) => {
    expect(desiredNodeMetadata(facts, ON, version).labels['lazarus.dev/runtime']).toBe(want);
    expect(desiredNodeMetadata(facts, OFF, version).labels['lazarus.dev/runtime']).toBe(want);
  });

  it('cuts a very long reason', () => {
    const r = restoreCapability(facts, { capable: false, reason: 'x'.repeat(5000) });
    expect(r).toEqual({ capable: false, reason: `${'x'.repeat(1023)}…` });
  });

  it.each([
    ['Error (criu/cr-check.c:1234): Kernel lacks memfd\nLooks bad.\n', 'Error (criu/cr-check.c:1234): Kernel lacks memfd / Looks bad.'],
    ['a\nb\n\nc\n', 'b / c'],
    ['', ''],
    [`${'y'.repeat(400)}\n`, `…${'y'.repeat(299)}`],
  ])('lastLines %j', (out, want) => expect(lastLines(out)).toBe(want));

  it('annotations carry the reason, the CRIU version, CPU flags and cgroup version', () => {
    expect(desiredNodeMetadata(facts, ON).annotations).toEqual({
      'lazarus.dev/restore-capable-reason': ON.reason, 'lazarus.dev/criu': '4.1.1', 'lazarus.dev/cpu-flags': 'avx2 fpu', 'lazarus.dev/cgroup': 'v2',
    });
  });

  const node = (labels: Record<string, string>, annotations: Record<string, string> = {}): Node => ({ metadata: { name: 'n', labels, annotations } });
  const desired = desiredNodeMetadata(facts, ON);

  it('patches only the keys that differ', () => {
    const current = node({ 'kubernetes.io/arch': 'amd64', 'lazarus.dev/criu-version': '40101', 'lazarus.dev/restore-capable': 'false' },
      { 'lazarus.dev/restore-capable-reason': 'criu check failed: x', 'lazarus.dev/criu': '4.1.1', 'lazarus.dev/cpu-flags': 'avx2 fpu', 'lazarus.dev/cgroup': 'v2' });
    expect(nodeMetadataPatch(current, desired)).toEqual({
      metadata: { labels: { 'lazarus.dev/restore-capable': 'true' }, annotations: { 'lazarus.dev/restore-capable-reason': ON.reason } },
    });
  });

  it('sends nothing when everything is already published', () => {
    const current = node({ 'lazarus.dev/criu-version': '40101', 'lazarus.dev/restore-capable': 'true' },
      { 'lazarus.dev/restore-capable-reason': ON.reason, 'lazarus.dev/criu': '4.1.1', 'lazarus.dev/cpu-flags': 'avx2 fpu', 'lazarus.dev/cgroup': 'v2' });
    expect(nodeMetadataPatch(current, desired)).toBeUndefined();
  });

  it('removes the CRIU label once criu is gone, and only if it was there', () => {
    const gone = desiredNodeMetadata({ criuCheckPassed: false, cpuFlags: [] }, ON);
    const reason = gone.annotations['lazarus.dev/restore-capable-reason'] ?? '';
    expect(nodeMetadataPatch(node({ 'lazarus.dev/criu-version': '40101', 'lazarus.dev/restore-capable': 'true' }, { 'lazarus.dev/restore-capable-reason': reason }), gone)).toEqual({
      metadata: { labels: { 'lazarus.dev/criu-version': null, 'lazarus.dev/restore-capable': 'false' } },
    });
    expect(nodeMetadataPatch(node({ 'lazarus.dev/restore-capable': 'false' }, { 'lazarus.dev/restore-capable-reason': reason }), gone)).toBeUndefined();
  });

  it('origin facts take kernel, arch and runtime from the Node and never invent a CRIU version', () => {
    const n: Node = { metadata: { name: 'n' }, status: { nodeInfo: { architecture: 'arm64', kernelVersion: '6.8.0', containerRuntimeVersion: 'cri-o://1.33.2' } } };
    expect(originFacts('n', n, facts, { architecture: 'amd64', kernelVersion: 'x' })).toEqual({
      node: 'n', architecture: 'arm64', kernelVersion: '6.8.0', criuVersion: 40101, runtime: 'cri-o://1.33.2', cgroup: 'v2', cpuFlags: ['avx2', 'fpu'],
    });
    expect(originFacts('n', undefined, { criuCheckPassed: false, cpuFlags: [] }, { architecture: 'amd64', kernelVersion: 'k' }).criuVersion).toBe(0);
  });

  it('reads local facts through injected sources', async () => {
    const calls: string[] = [];
    const src: FactSources = {
      exec: (cmd, args) => { calls.push(`${cmd} ${args.join(' ')}`); return Promise.resolve({ code: 0, stdout: args[0] === '--version' ? 'Version: 4.1.1\n' : 'Looks good.\n', stderr: '' }); },
      readFile: () => Promise.resolve('flags\t: sse2 fpu\n'),
      exists: (p) => Promise.resolve(p === '/sys/fs/cgroup/cgroup.controllers'),
    };
    expect(await readLocalFacts(src, '/opt/criu')).toEqual({ criuVersion: '4.1.1', criuCheckPassed: true, cpuFlags: ['fpu', 'sse2'], cgroup: 'v2' });
    expect(calls).toEqual(['/opt/criu --version', '/opt/criu check']);
  });

  it('keeps the end of a failed criu check\'s output for the reason', async () => {
    const src: FactSources = {
      exec: (_cmd, args) => Promise.resolve(args[0] === '--version'
        ? { code: 0, stdout: 'Version: 4.1.1\n', stderr: '' }
        : { code: 1, stdout: '', stderr: 'Warn (criu/kerndat.c:1): x\nError (criu/cr-check.c:1234): Kernel lacks memfd\nLooks bad.\n' }),
      readFile: () => Promise.resolve(''),
      exists: () => Promise.resolve(false),
    };
    expect(await readLocalFacts(src)).toEqual({ criuVersion: '4.1.1', criuCheckPassed: false, criuCheckError: 'Error (criu/cr-check.c:1234): Kernel lacks memfd / Looks bad.', cpuFlags: [] });
  });

  it('runs a criu command line, e.g. the host\'s CRIU through nsenter', async () => {
    const calls: string[][] = [];
    const src: FactSources = {
      exec: (cmd, args) => { calls.push([cmd, ...args]); return Promise.resolve({ code: 0, stdout: args.at(-1) === '--version' ? 'Version: 4.1.1\n' : 'Looks good.\n', stderr: '' }); },
      readFile: () => Promise.resolve(''),
      exists: () => Promise.resolve(false),
    };
    expect((await readLocalFacts(src, 'nsenter --target 1 --mount -- criu')).criuVersion).toBe('4.1.1');
    expect(calls).toEqual([
      ['nsenter', '--target', '1', '--mount', '--', 'criu', '--version'],
      ['nsenter', '--target', '1', '--mount', '--', 'criu', 'check'],
    ]);
  });
});

describe('watcher naming (deterministic across restarts)', () => {
  it.each([
    ['checkpoint-web-7d9c-abcde_shop-app-2026-11-27T12:00:00Z.tar', true],
    ['x.tar.zst', true],
    ['x.tar.failed', false],
    ['.x.tar', false],
    ['notes.txt', false],
  ])('isArchiveName(%s)', (n, want) => expect(isArchiveName(n)).toBe(want));

  it('compacts RFC 3339 times', () => {
    expect(compactTime('2026-11-27T12:00:00.5Z')).toBe('20261127t120000z');
    expect(compactTime('nope')).toBe('unknown');
  });

  it('names Checkpoints and images from workload, container, time and source pod', () => {
    const w = { kind: 'Deployment' as const, name: 'web' };
    expect(checkpointName(w, 'app', '2026-11-27T12:00:00Z', '1b2c3d4e')).toBe('web-app-20261127t120000z-1b2c3d4e');
    expect(imageRefFor('registry.example/lazarus/', 'shop', w, 'app', '2026-11-27T12:00:00Z', '1b2c3d4e')).toBe('registry.example/lazarus/shop/web-app:20261127t120000z-1b2c3d4e');
  });

  it('keeps DNS names short with a hash when cut', () => {
    const long = dnsName('a'.repeat(100), 63);
    expect(long).toHaveLength(63);
    expect(long).toMatch(/^a+-[0-9a-f]{8}$/);
    expect(dnsName('Web_App!')).toBe('web-app');
  });

  it('splits kubelet archive names into (pod, namespace, container) candidates', () => {
    expect(parseKubeletArchiveName('checkpoint-web-7d9c-abcde_my-ns-app-x-2026-11-27T12:00:00Z.tar')).toEqual([
      { pod: 'web-7d9c-abcde', namespace: 'my', container: 'ns-app-x' },
      { pod: 'web-7d9c-abcde', namespace: 'my-ns', container: 'app-x' },
      { pod: 'web-7d9c-abcde', namespace: 'my-ns-app', container: 'x' },
    ]);
    expect(parseKubeletArchiveName('other.tar')).toEqual([]);
    expect(failedCheckpointName('checkpoint-a_b-c-2026-11-27T12:00:00Z.tar')).toBe('failed-checkpoint-a-b-c-2026-11-27t12-00-00z');
  });
});
