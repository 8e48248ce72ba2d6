/** The harness' pure parts: fake node objects, scheduler configuration, manifest parsing. */
import { tearDown } from '../harness/teardown.js';
import { parse } from 'yaml';
import { fakeNode, FAKE_NODE_ADDRESS } from '../harness/nodes.js';
import { schedulerConfigYaml } from '../harness/control-plane.js';
import { parseObjects } from '../harness/apply.js';

describe('fakeNode', () => {
  const now = new Date('2026-11-27T12:00:00.123Z');

  it.each([
    { name: 'agent facts present', spec: { name: 'n', criu: '4.1.1', cpuFlags: ['fpu', 'avx2'] }, labels: { 'lazarus.dev/criu-version': '40101', 'lazarus.dev/restore-capable': 'true' }, annotations: { 'lazarus.dev/criu': '4.1.1', 'lazarus.dev/cpu-flags': 'fpu avx2' } },
    { name: 'explicitly not restore-capable', spec: { name: 'n', criu: '4.1.1', restoreCapable: false }, labels: { 'lazarus.dev/restore-capable': 'false' }, annotations: {} },
    { name: 'no agent: no Lazarus labels', spec: { name: 'n' }, labels: { 'kubernetes.io/hostname': 'n', 'kubernetes.io/arch': 'amd64' }, annotations: {} },
    { name: 'arm64 node', spec: { name: 'n', arch: 'arm64' }, labels: { 'kubernetes.io/arch': 'arm64' }, annotations: {} },
  ])('labels and annotations: $name', ({ spec, labels, annotations }) => {
    const { node } = fakeNode({ ...spec, now });
    expect(node.metadata.labels).toMatchObject(labels);
    expect(node.metadata.annotations).toMatchObject(annotations);
  });

  it('has no Lazarus labels without agent facts', () => {
    const { node } = fakeNode({ name: 'n', now });
    expect(Object.keys(node.metadata.labels ?? {}).filter((k) => k.startsWith('lazarus.dev/'))).toEqual([]);
  });

  it('puts kernel, runtime and arch in status.nodeInfo only', () => {
    const { node, status } = fakeNode({ name: 'n', arch: 'arm64', kernel: '6.1.0', runtime: 'containerd://2.1.4', criu: '4.1.1', now });
    expect(status.nodeInfo).toMatchObject({ architecture: 'arm64', kernelVersion: '6.1.0', containerRuntimeVersion: 'containerd://2.1.4' });
    expect(JSON.stringify(node.metadata)).not.toContain('6.1.0');
  });

  it.each([
    { name: 'ready', ready: true, status: 'True', taints: undefined },
    { name: 'not ready: tainted as the node lifecycle controller would', ready: false, status: 'False', taints: [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }] },
  ])('conditions: $name', ({ ready, status: want, taints }) => {
    const { node, status } = fakeNode({ name: 'n', ready, now });
    const conditions = status.conditions as Array<{ type: string; status: string; lastHeartbeatTime: string }>;
    expect(conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: want, lastHeartbeatTime: '2026-11-27T12:00:00Z' });
    expect((node as unknown as { spec: { taints?: unknown } }).spec.taints).toEqual(taints);
  });

  it('addresses, kubelet port and images', () => {
    const { status } = fakeNode({ name: 'n', kubeletPort: 12345, images: ['a:1', { names: ['b@sha256:00', 'b:2'], sizeBytes: 5 }], now });
    expect(status.addresses).toEqual([{ type: 'InternalIP', address: FAKE_NODE_ADDRESS }, { type: 'Hostname', address: 'n' }]);
    expect(status.daemonEndpoints).toEqual({ kubeletEndpoint: { Port: 12345 } });
    expect(status.images).toEqual([{ names: ['a:1'], sizeBytes: 10_000_000 }, { names: ['b@sha256:00', 'b:2'], sizeBytes: 5 }]);
  });

  it('rejects a CRIU version it cannot encode', () => {
    expect(() => fakeNode({ name: 'n', criu: 'four' })).toThrow(/criu/);
  });
});

describe('schedulerConfigYaml', () => {
  it('writes extenders with defaults, extra profiles and no leader election', () => {
    const cfg = parse(schedulerConfigYaml('/k', {
      extenders: [{ urlPrefix: 'http://127.0.0.1:1/x', nodeCacheCapable: true }, { urlPrefix: 'https://127.0.0.1:2', caPem: 'PEM', weight: 5, ignorable: true }],
      profiles: ['lazarus-scheduler'],
    })) as Record<string, unknown>;
    expect(cfg).toMatchObject({
      apiVersion: 'kubescheduler.config.k8s.io/v1',
      clientConnection: { kubeconfig: '/k' },
      leaderElection: { leaderElect: false },
      profiles: [{ schedulerName: 'default-scheduler' }, { schedulerName: 'lazarus-scheduler' }],
      extenders: [
        { urlPrefix: 'http://127.0.0.1:1/x', filterVerb: 'filter', prioritizeVerb: 'prioritize', weight: 1, nodeCacheCapable: true, ignorable: false, enableHTTPS: false },
        { urlPrefix: 'https://127.0.0.1:2', weight: 5, ignorable: true, enableHTTPS: true, tlsConfig: { caData: Buffer.from('PEM').toString('base64') } },
      ],
    });
  });

  it('omits extenders when there are none', () => {
    expect(parse(schedulerConfigYaml('/k', {}))).not.toHaveProperty('extenders');
  });
});

describe('parseObjects', () => {
  it.each([
    { name: 'multi-document with empty documents', text: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n', names: ['a', 'b'] },
    { name: 'a List is flattened', text: 'apiVersion: v1\nkind: List\nmetadata: {name: l}\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n', names: ['c'] },
  ])('$name', ({ text, names }) => {
    expect(parseObjects(text).map((o) => o.metadata.name)).toEqual(names);
  });

  it('rejects a document that is not an object', () => {
    expect(() => parseObjects('just: text\n', 'f.yaml')).toThrow(/f\.yaml/);
  });
});

describe('tearDown', () => {
  it('bounds a step that hangs, names it, and still runs the steps after it', async () => {
    const lines: string[] = [];
    const ran: string[] = [];
    await tearDown([
      ['hangs', () => new Promise(() => undefined)],
      ['fails', () => { throw new Error('boom'); }],
      ['works', () => { ran.push('works'); }],
    ], { stepMs: 50, log: (l) => lines.push(l) });
    expect(ran).toEqual(['works']);
    expect(lines).toEqual([
      '[teardown] hangs: still running after 50 ms; going on without it',
      expect.stringMatching(/^\[teardown\] fails failed after \d+ ms: Error: boom$/),
    ]);
  });
});
