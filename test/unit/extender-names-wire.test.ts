/**
 * NodeNames requests answered in place (names-wire.ts) must say exactly what the decoding path
 * says. Two extenders over the same nodes, one with a NameIndex and one without, get the same
 * requests; their answers must parse to the same value, and the in-place one must really have
 * been taken where it should (or not, where it gives up).
 */
import http from 'node:http';
import { nodeFacts, type NodeFacts } from '../../api/compat.js';
import { DEFAULT_POLICY } from '../../api/policy.js';
import type { Node } from '../../api/types.js';
import { silentLogger } from '../../runtime/log.js';
import { createRegistry } from '../../runtime/metrics.js';
import { NameIndex } from '../../extender/name-index.js';
import { SpanScratch, readNamesArgs } from '../../extender/names-wire.js';
import { startExtender, type RunningExtender } from '../../extender/server.js';
import { prng } from '../support/http.js';
import { goodNode, namesArgs, wireNode, wirePod } from './extender-fixtures.js';
import { request } from './extender-http.js';

const NODES = [
  goodNode('good'), goodNode('good-2', { kernel: '6.5.0-1-generic' }), goodNode('arm', { arch: 'arm64' }),
  wireNode({ name: 'no-agent' }), goodNode('old-criu', { criu: '30100' }), goodNode('123'), goodNode('__proto__', { arch: 'arm64' }),
  goodNode('flags', { cpuFlags: 'fpu' }),
];
const facts = new Map<string, NodeFacts>(NODES.map((n) => { const f = nodeFacts(n as unknown as Node, { index: true }); return [f.name, f]; }));
const ALL = [...facts.keys()];

/** The node named by `bytes[start, end)`, as the judging code looks it up. */
function lookUp(index: NameIndex, bytes: Uint8Array, start: number, end: number): NodeFacts | undefined {
  return index.factsAt(index.position(bytes, start, end));
}

describe('NameIndex', () => {
  const index = new NameIndex(facts.values());
  it.each(ALL)('finds %s inside a larger text, by position', (name) => {
    const text = Buffer.from(`xx"${name}"yy`);
    expect(lookUp(index, text, 3, 3 + name.length)).toBe(facts.get(name));
  });
  it.each(['goo', 'good-', 'ghost', '', 'GOOD', '12'])('knows no node %j', (name) => {
    expect(lookUp(index, Buffer.from(`"${name}"`), 1, 1 + name.length)).toBeUndefined();
  });
  it('stays exact with thousands of names (probing past collisions)', () => {
    const many = Array.from({ length: 5_000 }, (_, i) => ({ ...nodeFacts(goodNode(`node-${i}`) as unknown as Node), name: `node-${i}` }));
    const big = new NameIndex(many);
    expect(big.size).toBe(5_000);
    for (let i = 0; i < 5_000; i += 7) expect(lookUp(big, Buffer.from(`node-${i}`), 0, `node-${i}`.length)?.name).toBe(`node-${i}`);
    expect(big.position(Buffer.from('node-5000'), 0, 9)).toBe(-1);
  });
  it('keeps the last of two nodes with one name, as a Map would', () => {
    const a = { ...nodeFacts(goodNode('n') as unknown as Node) };
    const b = { ...nodeFacts(goodNode('n', { arch: 'arm64' }) as unknown as Node) };
    expect(lookUp(new NameIndex([a, b]), Buffer.from('n'), 0, 1)).toBe(b);
  });
  it('finds names that are not ASCII, byte for byte', () => {
    const f = { ...nodeFacts(goodNode('nœud') as unknown as Node) };
    const bytes = Buffer.from('"nœud"');
    expect(lookUp(new NameIndex([f]), bytes, 1, bytes.length - 1)).toBe(f);
  });
});

describe('readNamesArgs: only the shape kube-scheduler sends', () => {
  const pod = JSON.stringify(wirePod(true));
  const read = (text: string) => readNamesArgs(Buffer.from(text), new SpanScratch());
  it('reads names as spans of the text', () => {
    const text = `{"Pod":${pod},"Nodes":null,"NodeNames":["good", "arm" ,"x"]}`;
    const args = read(text);
    expect(args?.names.count).toBe(3);
    const names = [0, 1, 2].map((i) => text.slice(args?.names.spans[2 * i], args?.names.spans[2 * i + 1]));
    expect(args?.pod).toEqual(JSON.parse(pod));
    expect(names).toEqual(['good', 'arm', 'x']);
    expect(text.slice(args?.arrayStart, args?.arrayEnd)).toBe('["good", "arm" ,"x"]');
  });
  it.each([
    ['pretty-printed, keys reordered', ` {\n "NodeNames" : [ "a" ],\n "Pod" : ${pod} , "Nodes": null }\n`, 1],
    ['no Nodes key', `{"Pod":${pod},"NodeNames":[]}`, 0],
    ['a pod with non-ASCII and escapes', `{"Pod":{"metadata":{"annotations":{"a":"é\\"\\u00e9}"}}},"Nodes":null,"NodeNames":["a"]}`, 1],
  ])('takes %s', (_name, text, count) => {
    expect(read(text)?.names.count).toBe(count);
  });
  it.each([
    ['full Nodes', `{"Pod":${pod},"Nodes":{"items":[]},"NodeNames":null}`],
    ['NodeNames null', `{"Pod":${pod},"Nodes":null,"NodeNames":null}`],
    ['no Pod', '{"Nodes":null,"NodeNames":["a"]}'],
    ['Pod not an object', '{"Pod":[],"Nodes":null,"NodeNames":["a"]}'],
    ['Pod metadata not an object', '{"Pod":{"metadata":7},"Nodes":null,"NodeNames":["a"]}'],
    ['an escaped name', `{"Pod":${pod},"Nodes":null,"NodeNames":["go\\u006fd"]}`],
    ['an escaped quote', `{"Pod":${pod},"Nodes":null,"NodeNames":["a\\"b"]}`],
    ['a control character in a name', `{"Pod":${pod},"Nodes":null,"NodeNames":["a\tb"]}`],
    ['a name that is not ASCII', `{"Pod":${pod},"Nodes":null,"NodeNames":["nœud"]}`],
    ['Nodes not quite null', `{"Pod":${pod},"Nodes":nullx,"NodeNames":["a"]}`],
    ['not an object', `[{"Pod":${pod}}]`],
    ['empty', ''],
    ['a number among names', `{"Pod":${pod},"Nodes":null,"NodeNames":["a",1]}`],
    ['a trailing comma', `{"Pod":${pod},"Nodes":null,"NodeNames":["a",]}`],
    ['a duplicated key', `{"Pod":${pod},"Nodes":null,"NodeNames":["a"],"NodeNames":["b"]}`],
    ['an unknown key', `{"Pod":${pod},"Nodes":null,"NodeNames":["a"],"x":1}`],
    ['an escaped key', `{"Pod":${pod},"Nodes":null,"N\\u006fdeNames":["a"]}`],
    ['a broken Pod', '{"Pod":{"metadata":},"Nodes":null,"NodeNames":["a"]}'],
    ['trailing bytes', `{"Pod":${pod},"Nodes":null,"NodeNames":["a"]}x`],
    ['an unterminated array', `{"Pod":${pod},"Nodes":null,"NodeNames":["a"`],
  ])('gives up on %s', (_name, text) => {
    expect(read(text)).toBeUndefined();
  });
});

describe('in place and decoded: the same answers', () => {
  let inPlace: RunningExtender;
  let decoded: RunningExtender;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const index = new NameIndex(facts.values());
  let indexAsked = 0;

  beforeAll(async () => {
    const common = { policyFor: () => DEFAULT_POLICY, nodeByName: (n: string) => facts.get(n), logger: silentLogger() };
    inPlace = await startExtender({ ...common, registry: createRegistry('a', false), nameIndex: () => { indexAsked++; return index; } });
    decoded = await startExtender({ ...common, registry: createRegistry('b', false) });
  });
  afterAll(async () => { agent.destroy(); await inPlace.close(); await decoded.close(); });

  async function same(path: string, body: string): Promise<unknown> {
    const [a, b] = await Promise.all([request(agent, inPlace.port, path, body), request(agent, decoded.port, path, body)]);
    expect({ status: a.status, body: JSON.parse(a.text) as unknown }).toEqual({ status: b.status, body: JSON.parse(b.text) as unknown });
    return JSON.parse(a.text);
  }

  const names = [...ALL, 'ghost', 'good', '123'];
  it.each([
    ['restored pod', true, names],
    ['restored pod, no names', true, []],
    ['restored pod, only unknown nodes', true, ['ghost', 'phantom']],
    ['pod not restored', false, names],
  ])('%s: filter and prioritize', async (_name, restored, list) => {
    const before = indexAsked;
    const body = JSON.stringify(namesArgs(wirePod(restored), list));
    await same('/filter', body);
    await same('/prioritize', body);
    // Restored pods are judged in place, through the index.
    expect(indexAsked > before).toBe(restored);
  });

  it('byte for byte what the decoding path sends, when no name looks like an array index', async () => {
    const body = JSON.stringify(namesArgs(wirePod(true), ['good', 'arm', 'ghost', 'no-agent', 'good-2']));
    for (const path of ['/filter', '/prioritize']) {
      const [a, b] = await Promise.all([request(agent, inPlace.port, path, body), request(agent, decoded.port, path, body)]);
      expect(a.text).toBe(b.text);
    }
  });

  it('a pod not restored gets its NodeNames array back as sent, untouched', async () => {
    const body = JSON.stringify(namesArgs(wirePod(false), [])).replace('"NodeNames":[]', '"NodeNames":[ "good" ,\n"ghost"]');
    const a = await request(agent, inPlace.port, '/filter', body);
    expect(a.text).toContain('"NodeNames":[ "good" ,\n"ghost"]');
    await same('/filter', body);
  });

  it('a restored pod: the answer names every failed node with its reason', async () => {
    const out = await same('/filter', JSON.stringify(namesArgs(wirePod(true), names))) as { NodeNames: string[]; FailedAndUnresolvableNodes: Record<string, string> };
    expect(out.NodeNames).toEqual(['good', 'good-2', '123', 'ghost', 'good', '123']);
    expect(Object.keys(out.FailedAndUnresolvableNodes).sort()).toEqual(['__proto__', 'arm', 'flags', 'no-agent', 'old-criu']);
    expect(out.FailedAndUnresolvableNodes.arm).toMatch(/^lazarus: architecture arm64/);
  });

  it('a node cache that cannot answer yet: the in-place path steps aside and the Error is the same', async () => {
    const common = { policyFor: () => DEFAULT_POLICY, nodeByName: (n: string) => facts.get(n), nodeCacheProblem: () => 'node cache not synced yet', logger: silentLogger() };
    const a = await startExtender({ ...common, registry: createRegistry('c', false), nameIndex: () => index });
    const b = await startExtender({ ...common, registry: createRegistry('d', false) });
    try {
      const body = JSON.stringify(namesArgs(wirePod(true), ['good']));
      for (let i = 0; i < 3; i++) { // again and again: nothing is left behind by the attempt
        const [x, y] = await Promise.all([request(agent, a.port, '/filter', body), request(agent, b.port, '/filter', body)]);
        expect(x.text).toBe(y.text);
        expect(JSON.parse(x.text).Error).toBe('node cache not synced yet');
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('concurrent requests each get their own answer (pooled buffers are not shared in flight)', async () => {
    const lists = Array.from({ length: 40 }, (_, i) => ALL.filter((_n, k) => (i >> (k % 6)) & 1).concat(`ghost-${i}`));
    const answers = await Promise.all(lists.map((list) => request(agent, inPlace.port, '/filter', JSON.stringify(namesArgs(wirePod(true), list)))));
    answers.forEach((a, i) => {
      const out = JSON.parse(a.text) as { NodeNames: string[]; FailedAndUnresolvableNodes: Record<string, string> };
      expect([...out.NodeNames, ...Object.keys(out.FailedAndUnresolvableNodes)].sort()).toEqual([...(lists[i] ?? [])].sort());
    });
  });

  it('3,000 reshaped and mutated NodeNames requests: identical answers from both paths', async () => {
    const r = prng(0x5eed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(r() * items.length)] as T;
    const spaced = (json: string): string => json.replace(/[,:[\]{}]/g, (c) => (r() < 0.1 ? pick([` ${c}`, `${c} `, `\n${c}\t`]) : c));
    for (let i = 0; i < 3_000; i++) {
      const list = Array.from({ length: Math.floor(r() * 12) }, () => pick([...names, 'a"b', 'é', 'x\\y', '']));
      const pod = r() < 0.7 ? wirePod(true, r() < 0.2 ? { 'lazarus.dev/origin-architecture': 'arm64' } : {}) : wirePod(false);
      let body = JSON.stringify(namesArgs(pod, list));
      if (r() < 0.3) body = spaced(body);
      if (r() < 0.05) body = body.replace('"Nodes":null', '"Nodes":{"items":[]}');
      if (r() < 0.05) body = body.slice(0, Math.floor(r() * body.length));
      const path = r() < 0.5 ? '/filter' : '/prioritize';
      const [a, b] = await Promise.all([request(agent, inPlace.port, path, body), request(agent, decoded.port, path, body)]);
      if (a.status !== b.status || a.text !== b.text) {
        // Byte differences are allowed only where JSON itself allows them (key order of integer-like names).
        expect({ status: a.status, body: JSON.parse(a.text) as unknown }).toEqual({ status: b.status, body: JSON.parse(b.text) as unknown });
      }
    }
  }, 60_000);
});
