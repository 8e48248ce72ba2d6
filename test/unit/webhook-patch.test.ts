import jsonPatch from 'fast-json-patch';
import { diff, patchJson, sharedValue } from '../../webhook/patch.js';

// diff() must be fast-json-patch's compare() without the copies: the same operations, in the
// same order, on every shape a webhook patch can take and on random ones.
const same = (before: object, after: object): void => {
  const ops = diff(before, after);
  expect(ops).toStrictEqual(jsonPatch.compare(before, after));
  // and the patch takes `before` to `after`
  expect(jsonPatch.applyPatch(structuredClone(before), structuredClone(ops), true, false).newDocument).toEqual(JSON.parse(JSON.stringify(after)));
};

const terms = [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }, { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] }];
const restoreTerm = { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] };

describe('diff: the shapes of a restore patch', () => {
  it.each<[string, object, object]>([
    ['nothing changes', { metadata: {}, spec: { containers: [{ name: 'a', image: 'x' }] } }, { metadata: {}, spec: { containers: [{ name: 'a', image: 'x' }] } }],
    ['annotations added to a pod without any', { metadata: {}, spec: { containers: [] } }, { metadata: { annotations: { 'lazarus.dev/spec-hashes': 'a=1', 'lazarus.dev/cold-start': 'why' } }, spec: { containers: [] } }],
    ['annotations added to and changed in existing ones (keys with / and ~)', { metadata: { annotations: { 'a/b': '1', 'c~d': '2', e: '3' } }, spec: { containers: [] } },
      { metadata: { annotations: { 'a/b': '1', 'c~d': 'changed', e: '3', 'lazarus.dev/origin-node': 'n', '~/': 'odd' } }, spec: { containers: [] } }],
    ['images swapped in the second and third of three containers, one had no image', { metadata: {}, spec: { containers: [{ name: 'a', image: 'x' }, { name: 'b', image: 'y' }, { name: 'c' }] } },
      { metadata: {}, spec: { containers: [{ name: 'a', image: 'x' }, { name: 'b', image: 'y2' }, { name: 'c', image: 'z2' }] } }],
    ['affinity added', { metadata: {}, spec: { containers: [] } }, { metadata: {}, spec: { containers: [], affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [restoreTerm] }] } } } } }],
    ['requirements ANDed into each existing term, an empty term kept', {
      metadata: {}, spec: { containers: [], affinity: { podAffinity: {}, nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [...terms, {}] } } } },
    }, {
      metadata: {}, spec: { containers: [], affinity: { podAffinity: {}, nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [
        { matchExpressions: [...(terms[0]?.matchExpressions ?? []), restoreTerm] }, { ...terms[1], matchExpressions: [restoreTerm] }, {},
      ] } } } },
    }],
    ['null affinity and annotations replaced', { metadata: { annotations: null }, spec: { containers: [], affinity: null } },
      { metadata: { annotations: { a: '1' } }, spec: { containers: [], affinity: { nodeAffinity: {} } } }],
    ['schedulerName replaced, imagePullSecrets appended, both added elsewhere', { metadata: {}, spec: { containers: [], schedulerName: 'default-scheduler', imagePullSecrets: [{ name: 'a' }] } },
      { metadata: {}, spec: { containers: [], schedulerName: 'lazarus', imagePullSecrets: [{ name: 'a' }, { name: 'b' }] } }],
    ['keys removed, an array turned object', { a: 1, b: { c: [1, 2, 3] }, d: [1] }, { b: { c: [1] }, d: { 0: 1 } }],
    ['undefined values', { a: 1, b: [1, 2] }, { a: undefined, b: [1, undefined], c: undefined }],
  ])('%s', (_name, before, after) => same(before, after));

  it('shares the new values with `after` instead of copying them', () => {
    const annotations = { a: '1' };
    const ops = diff({ metadata: {} }, { metadata: { annotations } });
    expect(ops).toEqual([{ op: 'add', path: '/metadata/annotations', value: annotations }]);
    expect((ops[0] as { value: unknown }).value).toBe(annotations);
  });
});

describe('diff: random trees and random changes, against compare()', () => {
  // A small seeded generator: the same cases on every run, many shapes in each.
  let seed = 12345;
  const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const KEYS = ['a', 'b', 'c/d', 'e~f', 'image', '0', ''];

  function tree(depth: number): unknown {
    const r = random();
    if (depth === 0 || r < 0.3) return pick(['x', 'y', 1, 2, true, null, '']);
    if (r < 0.6) return Array.from({ length: Math.floor(random() * 4) }, () => tree(depth - 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(random() * 4); i > 0; i--) o[pick(KEYS)] = tree(depth - 1);
    return o;
  }

  /** A copy of `value` with some subtrees changed, removed, added or shared. */
  function mutate(value: unknown, depth: number): unknown {
    if (typeof value !== 'object' || value === null) return random() < 0.3 ? tree(depth) : value;
    if (random() < 0.3) return value; // shared, as a restore shares what it does not change
    if (Array.isArray(value)) {
      const out = value.map((v) => mutate(v, depth - 1));
      if (random() < 0.3) out.push(tree(depth - 1));
      if (random() < 0.2) out.pop();
      return out;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (random() > 0.15) out[k] = mutate(v, depth - 1);
    if (random() < 0.4) out[pick(KEYS)] = tree(depth - 1);
    return out;
  }

  it('gives compare()\'s operations for 2,000 random pairs', () => {
    let changed = 0;
    for (let i = 0; i < 2_000; i++) {
      const before = { root: tree(4) };
      const after = mutate(before, 5) as object;
      const ops = diff(before, after);
      expect(ops).toStrictEqual(jsonPatch.compare(before, after));
      if (ops.length > 0) changed++;
    }
    expect(changed).toBeGreaterThan(800); // most pairs differ: the generator does change things
  });
});

describe('patchJson: JSON.stringify of a patch, shared values serialised once', () => {
  it('writes what JSON.stringify writes, for shared and unshared values alike', () => {
    const affinity = sharedValue({ nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'a/b', operator: 'In', values: ['x"y'] }] }] } } });
    const before = { metadata: { annotations: { 'a/b': '1', 'gone': '2' } }, spec: { containers: [{ name: 'a', image: 'x' }] } };
    const after = { metadata: { annotations: { 'a/b': 'ünïcode "quoted"' } }, spec: { containers: [{ name: 'a', image: 'y' }], affinity } };
    const ops = diff(before, after);
    expect(ops.map((op) => op.op)).toEqual(['replace', 'add', 'remove', 'replace']);
    expect(patchJson(ops)).toBe(JSON.stringify(ops));
    expect(patchJson([])).toBe('[]');
  });

  it('freezes a shared value all the way down: no patch can change what the others carry', () => {
    const value = sharedValue({ a: [{ b: 1 }] });
    expect(Object.isFrozen(value.a[0])).toBe(true);
    expect(() => { (value.a as { b: number }[]).push({ b: 2 }); }).toThrow(TypeError);
  });
});
