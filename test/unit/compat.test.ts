import { compatibility, compileCompatibility, compileExplain, MAX_SCORE, nodeFacts, podRestoreFacts, sameRestoreFacts, score, SCORE, type CompatRule, type NodeFacts, type Rules } from '../../api/compat.js';
import * as K from '../../api/keys.js';
import type { CompatibilityRules, Node, OriginFacts, Placement } from '../../api/types.js';
import { BASE_IMAGE, goodNode, ORIGIN_ANNOTATIONS, wireNode, wirePod } from './extender-fixtures.js';

const ORIGIN: OriginFacts = Object.freeze({
  node: 'node-7', architecture: 'amd64', kernelVersion: '6.8.0-45-generic', criuVersion: 40101,
  runtime: 'cri-o://1.33.2', cpuFlags: ['fpu', 'sse4_2', 'avx2'],
}) as OriginFacts;

function images(...names: string[]): NodeFacts['images'] {
  const set = new Set(names);
  return { has: (n: string) => set.has(n) };
}

function node(over: Partial<NodeFacts> = {}): NodeFacts {
  return {
    name: 'n', architecture: 'amd64', kernelVersion: '6.8.0-45-generic', criuVersion: 40101,
    runtime: 'cri-o://1.33.2', restoreCapable: true, cpuFlags: new Set(['fpu', 'sse4_2', 'avx2', 'avx512f']),
    ready: true, unschedulable: false, images: images(BASE_IMAGE), labels: {}, taints: [], ...over,
  };
}

function rules(c: Partial<CompatibilityRules> = {}, placement: Placement = 'Prefer'): Rules {
  return { compatibility: { criu: 'AtLeastOrigin', cpu: 'Superset', runtime: 'SameName', kernel: 'Prefer', ...c }, placement };
}

type Row = [string, Partial<NodeFacts>, Rules, CompatRule[], string | undefined];

describe('sameRestoreFacts: labels and taints count (the pod\'s placement reads them)', () => {
  const base = (over: Partial<Node['metadata']> = {}, taints?: unknown[]): NodeFacts =>
    nodeFacts({ metadata: { name: 'n', labels: { pool: 'gpu' }, ...over }, spec: taints ? { taints } : {}, status: {} });
  it.each<[string, NodeFacts, boolean]>([
    ['equal labels in another object', base({ labels: { pool: 'gpu' } }), true],
    ['a label changed', base({ labels: { pool: 'general' } }), false],
    ['a label added', base({ labels: { pool: 'gpu', zone: 'a' } }), false],
    ['a NoSchedule taint added', base({}, [{ key: 'k', effect: 'NoSchedule' }]), false],
    ['a PreferNoSchedule taint added (placement ignores it)', base({}, [{ key: 'k', effect: 'PreferNoSchedule' }]), true],
  ])('%s → same %s', (_name, other, same) => expect(sameRestoreFacts(base(), other)).toBe(same));
});

describe('compatibility: every hard filter of DESIGN §4', () => {
  const rows: Row[] = [
    ['identical node passes', {}, rules(), [], undefined],
    // architecture
    ['arm64 node, amd64 checkpoint', { architecture: 'arm64' }, rules(), ['architecture'], "architecture arm64 differs from the checkpoint's amd64"],
    ['architecture unknown', { architecture: undefined }, rules(), ['architecture'], "architecture unknown differs from the checkpoint's amd64"],
    // restore-capable
    ['not restore-capable', { restoreCapable: false }, rules(), ['restoreCapable'], 'node is not restore-capable'],
    // CRIU under AtLeastOrigin
    ['criu older (3.17.1), AtLeastOrigin', { criuVersion: 31701 }, rules(), ['criu'], "criu 3.17.1 is older than the checkpoint's 4.1.1"],
    ['criu one patch older (4.1.0), AtLeastOrigin', { criuVersion: 40100 }, rules(), ['criu'], "criu 4.1.0 is older than the checkpoint's 4.1.1"],
    ['criu equal, AtLeastOrigin', { criuVersion: 40101 }, rules(), [], undefined],
    ['criu one patch newer (4.1.2), AtLeastOrigin', { criuVersion: 40102 }, rules(), [], undefined],
    ['criu newer (4.2.0), AtLeastOrigin', { criuVersion: 40200 }, rules(), [], undefined],
    // CRIU under Exact
    ['criu older, Exact', { criuVersion: 40100 }, rules({ criu: 'Exact' }), ['criu'], "criu 4.1.0 differs from the checkpoint's 4.1.1 (policy criu: Exact)"],
    ['criu equal, Exact', { criuVersion: 40101 }, rules({ criu: 'Exact' }), [], undefined],
    ['criu newer, Exact', { criuVersion: 40200 }, rules({ criu: 'Exact' }), ['criu'], "criu 4.2.0 differs from the checkpoint's 4.1.1 (policy criu: Exact)"],
    ['criu unknown (no label)', { criuVersion: undefined }, rules(), ['criu'], `no ${K.NODE_CRIU_VERSION} label`],
    // CPU flags
    ['cpu flags superset', {}, rules(), [], undefined],
    ['cpu flags equal', { cpuFlags: new Set(['fpu', 'sse4_2', 'avx2']) }, rules(), [], undefined],
    ['cpu flags subset (no avx2)', { cpuFlags: new Set(['fpu', 'sse4_2']) }, rules(), ['cpu'], 'CPU lacks flags the checkpointed process may use: avx2'],
    ['cpu flags unknown on the node', { cpuFlags: undefined }, rules(), [], undefined],
    ['arm64 node with its own flags: flags are not compared across architectures', { architecture: 'arm64', cpuFlags: new Set(['fp', 'asimd']) }, rules(), ['architecture'], "architecture arm64 differs from the checkpoint's amd64"],
    ['cpu flags subset, cpu: Ignore', { cpuFlags: new Set(['fpu']) }, rules({ cpu: 'Ignore' }), [], undefined],
    // runtime
    ['runtime same name, other version', { runtime: 'cri-o://1.32.0' }, rules(), [], undefined],
    ['runtime name differs', { runtime: 'containerd://2.1.4' }, rules(), ['runtime'], "runtime containerd differs from the checkpoint's cri-o"],
    ['runtime unknown', { runtime: undefined }, rules(), ['runtime'], "runtime unknown differs from the checkpoint's cri-o"],
    ['runtime name differs, runtime: Ignore', { runtime: 'containerd://2.1.4' }, rules({ runtime: 'Ignore' }), [], undefined],
    // kernel: never a filter under placement Prefer
    ['kernel other, Prefer/Prefer', { kernelVersion: '5.15.0-1' }, rules(), [], undefined],
    ['kernel other, kernel Exact but placement Prefer', { kernelVersion: '5.15.0-1' }, rules({ kernel: 'Exact' }), [], undefined],
    ['kernel other, kernel Prefer, placement Require', { kernelVersion: '5.15.0-1' }, rules({}, 'Require'), [], undefined],
    // kernel under placement Require + SameMajorMinor
    ['kernel exact, Require/SameMajorMinor', {}, rules({ kernel: 'SameMajorMinor' }, 'Require'), [], undefined],
    ['kernel same major.minor, Require/SameMajorMinor', { kernelVersion: '6.8.12-1-generic' }, rules({ kernel: 'SameMajorMinor' }, 'Require'), [], undefined],
    ['kernel same major, Require/SameMajorMinor', { kernelVersion: '6.5.0-1' }, rules({ kernel: 'SameMajorMinor' }, 'Require'), ['kernel'], 'kernel 6.5.0-1 is not 6.8.x'],
    ['kernel other major, Require/SameMajorMinor', { kernelVersion: '5.15.0-1' }, rules({ kernel: 'SameMajorMinor' }, 'Require'), ['kernel'], 'kernel 5.15.0-1 is not 6.8.x'],
    ['kernel unknown, Require/SameMajorMinor', { kernelVersion: undefined }, rules({ kernel: 'SameMajorMinor' }, 'Require'), ['kernel'], 'kernel unknown is not 6.8.x'],
    // kernel under placement Require + Exact
    ['kernel exact, Require/Exact', {}, rules({ kernel: 'Exact' }, 'Require'), [], undefined],
    ['kernel same major.minor, Require/Exact', { kernelVersion: '6.8.0-46-generic' }, rules({ kernel: 'Exact' }, 'Require'), ['kernel'], "kernel 6.8.0-46-generic is not the checkpoint's 6.8.0-45-generic (policy kernel: Exact)"],
    // several at once, reported in rule order
    ['arm64 with old criu and containerd', { architecture: 'arm64', criuVersion: 31701, runtime: 'containerd://2.1.4' }, rules(), ['architecture', 'criu', 'runtime'], 'criu 3.17.1 is older'],
  ];

  it.each(rows)('%s', (_name, over, r, failed, reason) => {
    const c = compatibility(ORIGIN, node(over), r);
    // The compiled check the extender runs per node gives the same verdict.
    expect(compileCompatibility(ORIGIN, r)(node(over))).toBe(c.ok);
    expect(c.rules).toEqual(failed);
    expect(c.ok).toBe(failed.length === 0);
    expect(c.reasons).toHaveLength(failed.length);
    if (reason !== undefined) expect(c.reasons.join('; ')).toContain(reason);
  });

  it('skips the CPU rule when the origin recorded no flags', () => {
    expect(compatibility({ ...ORIGIN, cpuFlags: [] }, node({ cpuFlags: new Set() }), rules()).ok).toBe(true);
  });

  it('lists at most 8 missing flags and says how many in all', () => {
    const flags = Array.from({ length: 11 }, (_, i) => `f${i}`);
    const c = compatibility({ ...ORIGIN, cpuFlags: flags }, node({ cpuFlags: new Set(['f0']) }), rules());
    expect(c.reasons[0]).toContain('f1, f2, f3, f4, f5, f6, f7, f8, … (10 in all)');
    expect(c.reasons[0]).not.toContain('f9');
  });

  it('skips the runtime rule when the origin runtime is unknown', () => {
    expect(compatibility({ ...ORIGIN, runtime: '' }, node({ runtime: 'containerd://2.1.4' }), rules()).ok).toBe(true);
  });

  it('the compiled forms memoise CPU verdicts by flag text without mixing nodes up', () => {
    const check = compileCompatibility(ORIGIN, rules());
    const explain = compileExplain(ORIGIN, rules());
    const verdicts = ['fpu sse4_2 avx2', 'fpu', 'fpu sse4_2 avx2 avx512f', 'fpu', 'sse4_2 fpu avx2'].map((flags) => {
      const facts = nodeFacts(goodNode('x', { cpuFlags: flags }) as unknown as Node);
      const expected = compatibility(ORIGIN, facts, rules());
      expect(explain(facts)).toEqual(expected);
      expect(check(facts)).toBe(expected.ok);
      return expected.ok;
    });
    expect(verdicts).toEqual([true, false, true, false, true]);
  });

  it('does not change its inputs', () => {
    const n = node({ cpuFlags: new Set(['fpu']) });
    const o = structuredClone(ORIGIN);
    compatibility(o, n, rules());
    expect(o).toEqual(ORIGIN);
    expect(n.cpuFlags?.has('fpu')).toBe(true);
    expect(n.cpuFlags?.has('avx2')).toBe(false);
  });
});

describe('score: DESIGN §4 weights, 0..10', () => {
  const rows: [string, Partial<NodeFacts>, readonly string[], number][] = [
    ['everything matches, base image present', {}, [BASE_IMAGE], 10],
    ['kernel same major.minor', { kernelVersion: '6.8.12' }, [BASE_IMAGE], 2 + 3 + 1 + 2],
    ['kernel same major only', { kernelVersion: '6.5.0' }, [BASE_IMAGE], 1 + 3 + 1 + 2],
    ['kernel other major', { kernelVersion: '5.15.0' }, [BASE_IMAGE], 0 + 3 + 1 + 2],
    ['kernel unknown', { kernelVersion: undefined }, [BASE_IMAGE], 0 + 3 + 1 + 2],
    ['kernel not a version', { kernelVersion: 'linux-6.8' }, [BASE_IMAGE], 0 + 3 + 1 + 2],
    ['kernel exact but padded', { kernelVersion: ' 6.8.0-45-generic ' }, [BASE_IMAGE], 10],
    ['kernel 16.8 is not 6.8', { kernelVersion: '16.8.0' }, [BASE_IMAGE], 0 + 3 + 1 + 2],
    ['criu newer', { criuVersion: 40200 }, [BASE_IMAGE], 4 + 1 + 1 + 2],
    ['criu older (no points)', { criuVersion: 40100 }, [BASE_IMAGE], 4 + 0 + 1 + 2],
    ['criu unknown', { criuVersion: undefined }, [BASE_IMAGE], 4 + 0 + 1 + 2],
    ['runtime same name, other version', { runtime: 'cri-o://1.32.0' }, [BASE_IMAGE], 4 + 3 + 0 + 2],
    ['base image absent', { images: images('other:1') }, [BASE_IMAGE], 4 + 3 + 1 + 0],
    ['one of two base images absent', {}, [BASE_IMAGE, 'sidecar:2'], 4 + 3 + 1 + 0],
    ['both base images present', { images: images(BASE_IMAGE, 'sidecar:2') }, [BASE_IMAGE, 'sidecar:2'], 10],
    ['no base images known', {}, [], 4 + 3 + 1 + 0],
    ['nothing matches', { kernelVersion: '5.4.0', criuVersion: 31701, runtime: 'containerd://2.1.4', images: images() }, [BASE_IMAGE], 0],
  ];
  it.each(rows)('%s', (_name, over, base, expected) => {
    expect(score(ORIGIN, node(over), base)).toBe(expected);
  });

  it('the best case is exactly MAX_SCORE, the extender maximum', () => {
    expect(SCORE.kernelExact + SCORE.criuExact + SCORE.runtimeExactVersion + SCORE.baseImagePresent).toBe(MAX_SCORE);
    expect(MAX_SCORE).toBe(10);
  });
});

describe('nodeFacts', () => {
  it('reads labels, annotations, status.nodeInfo and status.images of a full Node', () => {
    const facts = nodeFacts(goodNode('node-1', { kernel: '6.8.0-50-generic', criu: '40200' }) as unknown as Node);
    expect(facts).toMatchObject({
      name: 'node-1', architecture: 'amd64', kernelVersion: '6.8.0-50-generic', criuVersion: 40200,
      runtime: 'cri-o://1.33.2', restoreCapable: true, ready: true, unschedulable: false,
    });
    expect(facts.cpuFlags?.has('avx2')).toBe(true);
    expect(facts.images.has(BASE_IMAGE)).toBe(true);
    expect(facts.images.has('registry.example/team-0/service-0:v1.0.0')).toBe(true);
    expect(facts.images.has('registry.example/web:1.5')).toBe(false);
  });

  it('a node the agent never touched: no CRIU, not capable, flags unknown', () => {
    const facts = nodeFacts(wireNode({ name: 'bare' }) as unknown as Node);
    expect(facts).toMatchObject({ criuVersion: undefined, restoreCapable: false, cpuFlags: undefined });
  });

  it.each([false, true])('CPU flag lookups match whole flags only (index: %s)', (index) => {
    const facts = nodeFacts(wireNode({ name: 'x', cpuFlags: 'avx\tsse4_2  avx2 fpu' }) as unknown as Node, { index });
    expect(['avx', 'avx2', 'sse4_2', 'fpu'].map((f) => facts.cpuFlags?.has(f))).toEqual([true, true, true, true]);
    expect(['av', 'vx2', 'sse4', 'fp', 'avx512f', ''].map((f) => facts.cpuFlags?.has(f))).toEqual([false, false, false, false, false, false]);
  });

  it.each([false, true])('image lookups see every name of every image (index: %s)', (index) => {
    const facts = nodeFacts(goodNode('x') as unknown as Node, { index });
    expect(facts.images.has(BASE_IMAGE)).toBe(true);
    expect(facts.images.has('registry.example/team-5/service-19:v1.19.0')).toBe(true);
    expect(facts.images.has('registry.example/team-5/service-19')).toBe(false);
  });

  it('an empty cpu-flags annotation means unknown, not "no flags"', () => {
    expect(nodeFacts(wireNode({ name: 'x', cpuFlags: '  ' }) as unknown as Node).cpuFlags).toBeUndefined();
  });

  it('falls back to the kubernetes.io/arch label without nodeInfo', () => {
    const facts = nodeFacts({ metadata: { name: 'a', labels: { [K.LABEL_ARCH]: 'arm64' } } });
    expect(facts).toMatchObject({ name: 'a', architecture: 'arm64', kernelVersion: undefined, runtime: undefined, ready: false });
    expect(facts.images.has('x')).toBe(false);
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['a number', 7],
    ['an array', []],
    ['metadata is a string', { metadata: 'x' }],
    ['labels of the wrong types', { metadata: { name: 5, labels: { [K.NODE_CRIU_VERSION]: 40101, [K.NODE_RESTORE_CAPABLE]: true } } }],
    ['status fields of the wrong types', { metadata: { name: 'n' }, status: { nodeInfo: 'x', conditions: {}, images: 'abc' } }],
    ['images entries of the wrong types', { metadata: { name: 'n' }, status: { images: [null, 1, { names: 'abc' }, { names: [1, null] }] } }],
    ['annotations of the wrong types', { metadata: { name: 'n', annotations: { [K.NODE_CPU_FLAGS]: ['avx2'] } } }],
  ])('never throws on malformed input: %s', (_name, value) => {
    const facts = nodeFacts(value as Node);
    expect(facts.restoreCapable).toBe(false);
    expect(facts.criuVersion).toBeUndefined();
    expect(facts.cpuFlags).toBeUndefined();
    expect(facts.images.has('abc')).toBe(false);
  });
});

describe('podRestoreFacts', () => {
  it('undefined for a pod the webhook did not restore', () => {
    expect(podRestoreFacts(wirePod(false) as never)).toBeUndefined();
  });
  it('origin facts and base images from the annotations', () => {
    expect(podRestoreFacts(wirePod(true) as never)).toEqual({
      origin: { node: 'node-7', architecture: 'amd64', kernelVersion: '6.8.0-45-generic', criuVersion: 40101, runtime: 'cri-o://1.33.2', cpuFlags: ['fpu', 'sse4_2', 'avx2'] },
      baseImages: [BASE_IMAGE],
    });
  });
  it('non-string annotation values count as absent', () => {
    expect(podRestoreFacts({ metadata: { annotations: { [K.RESTORED_FROM]: 5 } } } as never)).toBeUndefined();
    const facts = podRestoreFacts({ metadata: { annotations: { ...ORIGIN_ANNOTATIONS, [K.ORIGIN_CRIU]: 4 } } } as never);
    expect(facts?.origin.criuVersion).toBe(0);
  });
  it.each([null, undefined, 'x', { metadata: null }, { metadata: { annotations: [] } }])('no throw for a malformed pod %#', (pod) => {
    expect(podRestoreFacts(pod as never)).toBeUndefined();
  });
});
