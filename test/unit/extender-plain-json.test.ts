/**
 * `plainJson` is bench:extender's baseline for the byte-level paths (names-wire.ts, raw-json.ts):
 * the same answers, reached by JSON.parse and JSON.stringify alone. Both halves are checked here,
 * so the benchmark compares like with like: the values are equal, and the bytes show which path
 * wrote them.
 */
import http from 'node:http';
import { nodeFacts, type NodeFacts } from '../../api/compat.js';
import { DEFAULT_POLICY } from '../../api/policy.js';
import type { Node } from '../../api/types.js';
import { silentLogger } from '../../runtime/log.js';
import { createRegistry } from '../../runtime/metrics.js';
import { NameIndex } from '../../extender/name-index.js';
import { startExtender, type RunningExtender } from '../../extender/server.js';
import { fullArgs, goodNode, namesArgs, wireNode, wirePod } from './extender-fixtures.js';
import { request, type Reply } from './extender-http.js';

const NODES = [goodNode('good'), goodNode('arm', { arch: 'arm64' }), wireNode({ name: 'no-agent' }), goodNode('good-2', {}, 2)];
const facts = new Map<string, NodeFacts>(NODES.map((n) => { const f = nodeFacts(n as unknown as Node, { index: true }); return [f.name, f]; }));
const NAMES = [...facts.keys(), 'ghost'];

describe('plainJson: the same answers without the byte-level paths', () => {
  let shipped: RunningExtender;
  let plain: RunningExtender;
  const agent = new http.Agent({ keepAlive: true });

  beforeAll(async () => {
    const index = new NameIndex(facts.values());
    const common = { policyFor: () => DEFAULT_POLICY, nodeByName: (n: string) => facts.get(n), nameIndex: () => index, logger: silentLogger() };
    shipped = await startExtender({ ...common, registry: createRegistry('shipped', false) });
    plain = await startExtender({ ...common, registry: createRegistry('plain', false), plainJson: true });
  });
  afterAll(async () => { agent.destroy(); await shipped.close(); await plain.close(); });

  async function both(path: string, body: string): Promise<[Reply, Reply]> {
    const [a, b] = await Promise.all([request(agent, shipped.port, path, body), request(agent, plain.port, path, body)]);
    expect({ status: b.status, body: JSON.parse(b.text) as unknown }).toEqual({ status: a.status, body: JSON.parse(a.text) as unknown });
    return [a, b];
  }

  it.each([
    ['NodeNames, restored', JSON.stringify(namesArgs(wirePod(true), NAMES))],
    ['NodeNames, not restored', JSON.stringify(namesArgs(wirePod(false), NAMES))],
    ['full Nodes, restored', JSON.stringify(fullArgs(wirePod(true), NODES))],
    ['full Nodes, not restored', JSON.stringify(fullArgs(wirePod(false), NODES))],
  ])('%s: filter and prioritize agree', async (_name, body) => {
    const [filtered] = await both('/filter', body);
    await both('/prioritize', body);
    expect(filtered.status).toBe(200);
  });

  it('a NodeNames array goes back as sent only on the shipped path', async () => {
    const body = JSON.stringify(namesArgs(wirePod(false), [])).replace('"NodeNames":[]', '"NodeNames":[ "good" ,\n"ghost"]');
    const [a, b] = await both('/filter', body);
    expect(a.text).toContain('"NodeNames":[ "good" ,\n"ghost"]');
    expect(b.text).toContain('"NodeNames":["good","ghost"]');
  });

  it('full-Nodes items are spliced from the request only on the shipped path', async () => {
    // Whitespace inside an item survives a splice, never JSON.stringify.
    const body = JSON.stringify(fullArgs(wirePod(true), NODES)).replace('"name":"good"', '"name" : "good"');
    const [a, b] = await both('/filter', body);
    expect(a.text).toContain('"name" : "good"');
    expect(b.text).not.toContain('"name" : "good"');
    expect(b.text).toContain('"name":"good"');
  });
});
