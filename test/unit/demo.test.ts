/** The demo's pure parts: its scenario data and its words. */
import { checkpointVerdicts, explainNodeLines, formatDuration, nodeTable, scoreLegend, shortDigest, stepLine, TITLE_WIDTH, verdictLines } from '../../demo/narrate.js';
import { APP, CONTAINER, DEMO_LABEL, DEMO_NODE_ADDRESS, NAMESPACE, ORIGIN, POLICY, checkpointName, demoCheckpoints, demoDeployment, demoNodes, demoPolicy } from '../../demo/scenario.js';
import { NEEDS_CHECKOUT, parseConfig, runDemo } from '../../demo/command.js';
import { BUSY_MS, leftoverProblem, type Checkout, type FoundObjects } from '../../demo/environment.js';
import { HEARTBEAT_MS, microTime, nodeLease } from '../../demo/fake-nodes.js';
import { SCORE, MAX_SCORE, compatibility, nodeFacts, score } from '../../api/compat.js';
import { DEFAULT_POLICY, effectivePolicy, selectPolicy } from '../../api/policy.js';
import { trustedPrefix, untrustedImage } from '../../api/image-trust.js';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../test/harness/kube-bin.js';
import { specHash } from '../../api/spec-hash.js';
import { fakeNode } from '../../test/harness/nodes.js';
import { UsageError } from '../../cli/flags.js';
import type { Checkpoint, Node } from '../../api/types.js';

const NOW = Date.parse('2026-11-27T12:00:00Z');

describe('scenario', () => {
  const rules = { compatibility: DEFAULT_POLICY.spec.compatibility, placement: DEFAULT_POLICY.spec.placement };
  const verdicts = demoNodes().map(({ note: _n, ...spec }) => {
    const { node, status } = fakeNode(spec);
    const facts = nodeFacts({ ...node, status } as Node);
    const c = compatibility(ORIGIN, facts, rules);
    return { node: spec.name, ok: c.ok, score: c.ok ? score(ORIGIN, facts, [CONTAINER.image ?? '']) : undefined, reasons: c.reasons.length };
  });

  it.each([
    ['node-exact', true, 8],
    ['node-newer', true, 5],
    ['node-arm64', false, undefined],
    ['node-old-criu', false, undefined],
    ['node-no-avx2', false, undefined],
    ['node-containerd', false, undefined],
  ])('%s: compatible %s, score %s (one best node, one next best, four impossible)', (node, ok, s) => {
    expect(verdicts.find((v) => v.node === node)).toMatchObject({ ok, score: s });
  });

  it('every node differs from the origin in exactly one way that makes it impossible, or none', () => {
    expect(verdicts.filter((v) => !v.ok && v.node !== 'node-arm64').map((v) => v.reasons)).toEqual([1, 1, 1]);
  });

  it('prefixes node names for an existing cluster and labels every node as the demo\'s', () => {
    expect(demoNodes('lazarus-demo-').map((n) => [n.name.startsWith('lazarus-demo-node-'), n.labels?.[DEMO_LABEL]])).toEqual(Array(6).fill([true, 'true']));
  });

  it('has exactly one usable checkpoint among four: newest Failed, one older, one of the previous image', () => {
    const cps = demoCheckpoints(NOW);
    const hash = specHash(CONTAINER);
    const usable = cps.filter((c) => c.status.phase === 'Ready' && c.checkpoint.spec.specHash === hash);
    expect(cps.map((c) => c.status.phase)).toEqual(['Failed', 'Ready', 'Ready', 'Ready']);
    expect(usable.map((c) => c.checkpoint.spec.takenAt)).toEqual([new Date(NOW - 150_000).toISOString(), new Date(NOW - 3_600_000).toISOString()]);
    expect(cps[3]?.checkpoint.spec.specHash).not.toBe(hash);
    expect(new Set(cps.map((c) => c.checkpoint.metadata.name)).size).toBe(4);
  });

  it.each([
    [Date.parse('2026-11-27T12:00:00.123Z'), 'web-app-20261127t120000z'],
    [Date.parse('2026-01-02T03:04:05Z'), 'web-app-20260102t030405z'],
  ])('names checkpoints like the agent: %s → %s', (at, name) => {
    expect(checkpointName('app', at)).toBe(name);
  });

  it('annotates the Deployment itself and keeps its pod on demo nodes only', () => {
    const d = demoDeployment() as { metadata: { annotations: Record<string, string> }; spec: { template: { metadata: { annotations?: unknown }; spec: { nodeSelector: Record<string, string>; tolerations: unknown[] } } } };
    expect(d.metadata.annotations).toEqual({ 'lazarus.dev/restore': 'enabled' });
    expect(d.spec.template.metadata.annotations).toBeUndefined();
    expect(d.spec.template.spec.nodeSelector).toEqual({ [DEMO_LABEL]: 'true' });
    expect(d.spec.template.spec.tolerations).toHaveLength(1);
  });
});

describe('narration', () => {
  it.each([
    [0, '0 ms'], [85, '85 ms'], [999, '999 ms'], [1000, '1.0 s'], [1234, '1.2 s'], [61_000, '61.0 s'], [-5, '0 ms'],
  ])('formatDuration(%s) = %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('aligns step durations in one column', () => {
    const a = stepLine(true, 'short', 5);
    const b = stepLine(true, 'a much longer title', 12_345);
    expect(a.length).toBe(b.length);
    expect(a.startsWith('✔ short ')).toBe(true);
    expect(b.endsWith('12.3 s')).toBe(true);
    expect(a.length).toBe(2 + TITLE_WIDTH + 1 + 7);
  });

  it('shortens digests, leaves tags alone', () => {
    expect(shortDigest(`r/x@sha256:${'ab'.repeat(32)}`)).toBe('r/x@sha256:abababababab…');
    expect(shortDigest('r/x:1.4')).toBe('r/x:1.4');
  });

  it('tables nodes with their facts and what is special about them', () => {
    const [exact, newer] = nodeTable(demoNodes());
    expect(exact).toMatch(/^node-exact {7}amd64 {2}kernel 6\.8\.0-45-generic {2}criu 4\.1\.1 {3}cri-o:\/\/1\.33\.2 +same kernel/);
    expect(newer).toMatch(/criu 4\.2\.0/);
  });

  it('builds the score legend from the extender\'s weights', () => {
    expect(scoreLegend(SCORE, MAX_SCORE)).toBe('score (0-10): kernel same 4 / same major.minor 2 / same major 1 + CRIU same 3 / newer 1 + same runtime version 1 + base image already on the node 2');
  });

  it('takes the nodes section out of lazarus explain\'s output', () => {
    expect(explainNodeLines('pod a/b\nnodes:\n  ✔ n1  score  8\n  ✘ n2  why')).toEqual(['✔ n1  score  8', '✘ n2  why']);
    expect(explainNodeLines('pod a/b\nstarted cold')).toEqual([]);
  });
});

describe('checkpoint verdicts', () => {
  const cp = (name: string, agoMs: number, opts: { phase?: 'Ready' | 'Failed'; reason?: string; hash?: string; base?: string } = {}): Checkpoint => ({
    metadata: { name },
    spec: { workload: { kind: 'Deployment', name: 'web' }, container: 'app', sourcePod: 'p', image: 'i', baseImage: opts.base ?? 'web:1.4', specHash: opts.hash ?? 'h1', takenAt: new Date(NOW - agoMs).toISOString(), origin: ORIGIN },
    status: { phase: opts.phase ?? 'Ready', ...(opts.reason ? { reason: opts.reason } : {}) },
  });
  const input = (checkpoints: Checkpoint[], chosen: string | undefined) => ({ checkpoints, specHash: 'h1', chosen, now: NOW, maxAgeMs: 24 * 3_600_000, maxAge: '24h' });

  it.each([
    ['the chosen one', cp('a', 60_000), true, '1m ago, Ready, same spec hash: the newest usable one'],
    ['a Failed one, with its reason', cp('b', 30_000, { phase: 'Failed', reason: 'push failed' }), false, '30s ago, Failed: push failed'],
    ['one older than maxCheckpointAge', cp('c', 25 * 3_600_000), false, '1d1h ago, older than maxCheckpointAge 24h'],
    ['one of another spec hash', cp('d', 3_600_000, { hash: 'h0', base: 'web:1.3' }), false, '1h ago, spec hash h0 ≠ h1: taken from web:1.3'],
    ['an older usable one', cp('e', 7_200_000), false, '2h ago, Ready, same spec hash, but older than the chosen one'],
  ])('explains %s', (_what, checkpoint, chosen, text) => {
    const all = [cp('a', 60_000), checkpoint];
    const v = checkpointVerdicts(input(all, 'a')).find((x) => x.name === checkpoint.metadata.name);
    expect(v).toEqual({ name: checkpoint.metadata.name, chosen, text });
  });

  it('lists newest first, marks only the chosen one with ✔, and aligns the names', () => {
    const lines = verdictLines(checkpointVerdicts(input([cp('old', 7_200_000), cp('newest-failed', 1000, { phase: 'Failed' }), cp('mid', 60_000)], 'mid')));
    expect(lines.map((l) => l.slice(0, 16))).toEqual(['✘ newest-failed ', '✔ mid           ', '✘ old           ']);
  });

  it('says "not chosen" when the pod was not restored at all', () => {
    expect(checkpointVerdicts(input([cp('a', 1000)], undefined))[0]?.text).toMatch(/not chosen$/);
  });
});

describe('flags', () => {
  it.each([
    [[], { kubeconfig: undefined }],
    [['--kubeconfig', '/k'], { kubeconfig: '/k' }],
  ])('%j → %j, and KUBECONFIG is never read', (argv, cfg) => {
    expect(parseConfig(argv, { KUBECONFIG: '/from/env' })).toEqual(cfg);
  });

  it.each([[['--nope']], [['extra']], [['--kubeconfig']]])('rejects %j', (argv) => {
    expect(() => parseConfig(argv, {})).toThrow(UsageError);
  });

  it('--help', () => { expect(parseConfig(['--help'], {})).toBe('help'); });
});

describe('on a cluster the user points it at', () => {
  const userPolicy = effectivePolicy({ metadata: { name: 'a-user-policy' }, spec: { priority: 1000, checkpoint: { registry: 'registry.corp.example/lazarus', onDrain: true } } });
  const demo = effectivePolicy(demoPolicy());
  const select = (ns: string): string => selectPolicy([userPolicy, demo], { namespaceLabels: { 'kubernetes.io/metadata.name': ns }, workloadLabels: { app: APP } }).name;

  it('its RestorePolicy wins in the demo namespace only, over any user policy', () => {
    expect([select(NAMESPACE), select('shop')]).toEqual([POLICY, 'a-user-policy']);
    expect(demoPolicy().metadata.labels).toEqual({ [DEMO_LABEL]: 'true' });
  });

  it('trusts the demo\'s checkpoint images whatever the webhook\'s --registry, which the user\'s policy would not', () => {
    const images = demoCheckpoints(NOW).map((c) => c.checkpoint.spec.image);
    expect(images.map((i) => untrustedImage(i, trustedPrefix(demo.spec.checkpoint.registry, 'other.example/x')))).toEqual([undefined, undefined, undefined, undefined]);
    expect(untrustedImage(images[0] ?? '', trustedPrefix(userPolicy.spec.checkpoint.registry, ''))).toMatch(/not under the trusted registry prefix/);
  });

  it('keeps the installed controller out: no checkpoint on drain, all four checkpoints retained', () => {
    expect(demo.spec.checkpoint.onDrain).toBe(false);
    expect(demo.spec.checkpoint.retain).toBeGreaterThanOrEqual(demoCheckpoints(NOW).length);
  });

  it('gives its nodes an address that is never routed (TEST-NET-1)', () => {
    const { status } = fakeNode(demoNodes('lazarus-demo-')[0] ?? { name: 'x' });
    expect(DEMO_NODE_ADDRESS).toMatch(/^192\.0\.2\./);
    expect((status.addresses as Array<{ type: string; address: string }>)[0]).toEqual({ type: 'InternalIP', address: DEMO_NODE_ADDRESS });
  });

  it('writes a kubelet\'s heartbeat Lease, owned by its node', () => {
    expect(microTime(Date.parse('2026-11-27T12:00:00.123Z'))).toBe('2026-11-27T12:00:00.123000Z');
    expect(nodeLease({ name: 'n', uid: 'u1' }, NOW, 40)).toEqual({
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
      metadata: { name: 'n', namespace: 'kube-node-lease', ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'n', uid: 'u1' }] },
      spec: { holderIdentity: 'n', leaseDurationSeconds: 40, renewTime: '2026-11-27T12:00:00.000000Z' },
    });
    // The default node-monitor grace period is 40-50 s: a couple of missed beats change nothing.
    expect(HEARTBEAT_MS * 3).toBeLessThan(40_000);
  });

  const mine = { [DEMO_LABEL]: 'true' };
  const ago = (ms: number): string => microTime(NOW - ms);
  it.each<[string, FoundObjects, RegExp | undefined]>([
    ['nothing there', { nodes: [], leases: [] }, undefined],
    ['a killed run\'s leftovers, heartbeats stale', { namespace: { labels: mine }, policy: { labels: mine }, nodes: [{ name: 'lazarus-demo-node-exact', labels: mine }], leases: [{ name: 'lazarus-demo-node-exact', renewTime: ago(BUSY_MS) }] }, undefined],
    ['a lease without renewTime', { nodes: [], leases: [{ name: 'lazarus-demo-node-exact' }] }, undefined],
    ['the user\'s own namespace of that name', { namespace: { labels: { team: 'a' } }, nodes: [], leases: [] }, /^namespace lazarus-demo already exists without the label lazarus\.dev\/demo=true: not made by lazarus demo/],
    ['the user\'s own policy and node of those names', { policy: {}, nodes: [{ name: 'lazarus-demo-node-arm64' }], leases: [] }, /^RestorePolicy lazarus-demo, node lazarus-demo-node-arm64 already exist without/],
    ['another demo running', { namespace: { labels: mine }, nodes: [{ name: 'lazarus-demo-node-exact', labels: mine }], leases: [{ name: 'lazarus-demo-node-exact', renewTime: ago(BUSY_MS - 1) }] }, /^another lazarus demo is running against this cluster \(node lazarus-demo-node-exact renewed its heartbeat 15\.0 s ago\)/],
  ])('leftovers: %s', (_what, found, problem) => {
    const got = leftoverProblem(found, NOW);
    if (problem) expect(got).toMatch(problem);
    else expect(got).toBeUndefined();
  });

  it('without --kubeconfig and without a checkout (the image), says in one line what to do, exit 2', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runDemo({ kubeconfig: undefined }, { out: (l) => out.push(l), err: (l) => err.push(l), clock: () => NOW, signal: new AbortController().signal, checkout: undefined });
    expect({ code, out, err }).toEqual({ code: 2, out: [], err: [NEEDS_CHECKOUT] });
    expect(NEEDS_CHECKOUT).toMatch(/lazarus demo --kubeconfig K/);
  });

  // A terminal's Ctrl-C reaches the control plane too: its failure may be seen before the signal.
  it.each([
    ['a signal handled in the turn after the failure counts: exit 130, interrupted', true, 130, /^lazarus demo: interrupted by SIGINT; stopping everything it started$/],
    ['a failure with no signal after it is a failure: exit 1', false, 1, /^lazarus demo: failed: control plane gone$/],
  ])('%s', async (_what, signalAfter, expected, message) => {
    const abort = new AbortController();
    const err: string[] = [];
    const stopped: string[] = [];
    const checkout = {
      realNodePreflight: () => Promise.resolve('not here'),
      realNodesAct: () => Promise.resolve(),
      startLocal: (_say: unknown, _signal: AbortSignal, register: (stop: () => Promise<string>) => () => void) => {
        register(() => { stopped.push('control plane'); return Promise.resolve('control plane stopped'); });
        if (signalAfter) setImmediate(() => abort.abort());
        return Promise.reject(new Error('control plane gone'));
      },
    } as unknown as Checkout;
    const code = await runDemo({ kubeconfig: undefined }, { out: () => undefined, err: (l) => err.push(l), clock: Date.now, signal: abort.signal, interruptedBy: () => 'SIGINT', checkout });
    expect(code).toBe(expected);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(message);
    expect(stopped).toEqual(['control plane']);
  });

  it('what the image carries (demo/*.ts) imports nothing of test/ or demo/checkout/', () => {
    const dir = path.join(repoRoot(), 'demo');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files).toContain('command.ts');
    const imports = files.flatMap((f) => [...readFileSync(path.join(dir, f), 'utf8').matchAll(/^(?:import|export)\b[^;]*?from '([^']+)'/gm)].map((m) => `${f}: ${m[1] ?? ''}`));
    expect(imports.length).toBeGreaterThan(10);
    expect(imports.filter((i) => /\/test\/|checkout\//.test(i))).toEqual([]);
  });
});
