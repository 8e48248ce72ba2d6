import { nodeFacts, podRestoreFacts, type NodeFacts } from '../../api/compat.js';
import * as K from '../../api/keys.js';
import { DEFAULT_POLICY, effectivePolicy } from '../../api/policy.js';
import type { EffectivePolicy, Node } from '../../api/types.js';
import { createJudgeCache, filter, prioritize, validateArgs, type Lookups, type Request } from '../../extender/decide.js';
import type { WirePod } from '../../extender/protocol.js';
import { goodNode, namesArgs, wireNode, wirePod } from './extender-fixtures.js';

const NODES = [
  goodNode('good', {}, 0),
  goodNode('arm', { arch: 'arm64' }, 1),
  goodNode('old-criu', { criu: '31701' }, 2),
  wireNode({ name: 'no-agent' }, 3),
  goodNode('newer', { criu: '40200', kernel: '6.8.12-1-generic', images: [] }, 4),
  goodNode('no-avx2', { cpuFlags: 'fpu sse4_2' }, 5),
  goodNode('containerd', { runtime: 'containerd://1.7.24' }, 6),
];
const NAMES = [...NODES.map((n) => (n.metadata as { name: string }).name), 'not-in-cache'];
const STRICT = effectivePolicy({ metadata: { name: 'strict' }, spec: { compatibility: { criu: 'Exact', kernel: 'SameMajorMinor' }, placement: 'Require' } });

function cacheOf(nodes: unknown[]): Map<string, NodeFacts> {
  return new Map(nodes.map((n) => { const f = nodeFacts(n as Node, { index: true }); return [f.name, f]; }));
}

function request(pod: unknown, names: string[]): Request {
  const v = validateArgs(namesArgs(pod, names));
  if (!v.ok) throw new Error(v.error);
  return v.request;
}

function lookups(cache: Map<string, NodeFacts>, policy: EffectivePolicy, judges: Lookups['judges']): Lookups {
  return { policyFor: () => policy, nodeByName: (n) => cache.get(n), judges };
}

function restoreOf(pod: unknown): NonNullable<ReturnType<typeof podRestoreFacts>> {
  const facts = podRestoreFacts(pod as WirePod as Node);
  if (!facts) throw new Error('not a restored pod');
  return facts;
}

describe('judge cache (verdicts and scores remembered per node facts object)', () => {
  it.each([
    ['default policy', DEFAULT_POLICY],
    ['strict policy', STRICT],
  ])('answers exactly as without it, request after request (%s)', (_name, policy) => {
    const cache = cacheOf(NODES);
    const judges = createJudgeCache();
    const req = request(wirePod(true), NAMES);
    const fresh = { filter: filter(req, lookups(cache, policy, undefined)), prioritize: prioritize(req, lookups(cache, policy, undefined)) };
    for (let i = 0; i < 3; i++) {
      const f = filter(req, lookups(cache, policy, judges));
      expect(f.result).toEqual(fresh.filter.result);
      // Failures are counted on every request, remembered or not (metrics by rule).
      expect(f.tally).toEqual(fresh.filter.tally);
      expect(prioritize(req, lookups(cache, policy, judges))).toEqual(fresh.prioritize);
    }
    expect(Object.keys(fresh.filter.result.FailedAndUnresolvableNodes).length).toBeGreaterThan(0);
  });

  it('judges a node afresh when its facts object is replaced (the Node changed)', () => {
    const cache = cacheOf(NODES);
    const judges = createJudgeCache();
    const req = request(wirePod(true), ['good']);
    expect(filter(req, lookups(cache, DEFAULT_POLICY, judges)).result.NodeNames).toEqual(['good']);
    expect(prioritize(req, lookups(cache, DEFAULT_POLICY, judges)).result).toEqual([{ Host: 'good', Score: 10 }]);
    cache.set('good', nodeFacts(goodNode('good', { arch: 'arm64' }) as unknown as Node, { index: true }));
    const after = filter(req, lookups(cache, DEFAULT_POLICY, judges)).result;
    expect(after.NodeNames).toEqual([]);
    expect(after.FailedAndUnresolvableNodes.good).toMatch(/architecture arm64/);
    expect(prioritize(req, lookups(cache, DEFAULT_POLICY, judges)).result).toEqual([{ Host: 'good', Score: 0 }]);
  });

  it.each([
    ['another policy', (p: Record<string, unknown>) => p, STRICT],
    ['another origin CRIU', (p: Record<string, unknown>) => withAnnotation(p, K.ORIGIN_CRIU, '4.2.0'), DEFAULT_POLICY],
    ['another base image', (p: Record<string, unknown>) => withAnnotation(p, K.ORIGINAL_IMAGES, 'app=registry.example/other:1'), DEFAULT_POLICY],
  ])('%s is another judge, with its own answers', (_name, change, policy) => {
    const judges = createJudgeCache();
    const base = restoreOf(wirePod(true));
    const other = restoreOf(change(wirePod(true)));
    const rules = (p: EffectivePolicy) => ({ compatibility: p.spec.compatibility, placement: p.spec.placement });
    const first = judges.judge(base, rules(DEFAULT_POLICY));
    expect(judges.judge(restoreOf(wirePod(true)), rules(DEFAULT_POLICY))).toBe(first);
    expect(judges.judge(other, rules(policy))).not.toBe(first);
    // And the answers differ where they should: 'newer' (CRIU 4.2.0, other kernel) under each.
    const newer = cacheOf(NODES).get('newer');
    if (!newer) throw new Error('no node');
    const fresh = createJudgeCache().judge(other, rules(policy));
    const judged = judges.judge(other, rules(policy));
    expect([judged.verdict(newer), judged.passes(newer) ? judged.score(newer) : 0]).toEqual([fresh.verdict(newer), fresh.passes(newer) ? fresh.score(newer) : 0]);
  });

  it('keeps at most `limit` judges, dropping the least recently used', () => {
    const judges = createJudgeCache(2);
    const rules = { compatibility: DEFAULT_POLICY.spec.compatibility, placement: DEFAULT_POLICY.spec.placement };
    const origin = (criu: string) => restoreOf(withAnnotation(wirePod(true), K.ORIGIN_CRIU, criu));
    const a = judges.judge(origin('4.1.1'), rules);
    const b = judges.judge(origin('4.1.2'), rules);
    expect(judges.judge(origin('4.1.1'), rules)).toBe(a); // a is now the most recent
    judges.judge(origin('4.1.3'), rules); // evicts b
    expect(judges.judge(origin('4.1.1'), rules)).toBe(a);
    expect(judges.judge(origin('4.1.2'), rules)).not.toBe(b);
  });
});

function withAnnotation(pod: Record<string, unknown>, key: string, value: string): Record<string, unknown> {
  const meta = pod.metadata as { annotations: Record<string, string> };
  meta.annotations = { ...meta.annotations, [key]: value };
  return pod;
}
