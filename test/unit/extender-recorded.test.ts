/**
 * Replays requests recorded from a real kube-scheduler v1.35.4 (test/fixtures/extender/,
 * refreshed by the integration test with LAZARUS_RECORD_FIXTURES=1): four nodes "best",
 * "newer-criu" (compatible), "old-criu" and "arm" (not), and a pod restored from an amd64,
 * CRIU 4.1.1, kernel 6.8.0-45 checkpoint.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { nodeFacts, type NodeFacts } from '../../api/compat.js';
import { DEFAULT_POLICY } from '../../api/policy.js';
import type { Node } from '../../api/types.js';
import { silentLogger } from '../../runtime/log.js';
import { createRegistry } from '../../runtime/metrics.js';
import { NameIndex } from '../../extender/name-index.js';
import { SpanScratch, readNamesArgs } from '../../extender/names-wire.js';
import { startExtender, type RunningExtender } from '../../extender/server.js';
import type { ExtenderFilterResult, HostPriorityList } from '../../extender/protocol.js';
import { request } from './extender-http.js';

/** The recorded body, compact again as Go's encoding/json sends it. */
function recorded(name: string): string {
  const path = new URL(`../../../test/fixtures/extender/${name}.json`, import.meta.url);
  return JSON.stringify(JSON.parse(readFileSync(path, 'utf8')));
}

describe('requests recorded from kube-scheduler', () => {
  let ext: RunningExtender | undefined;
  const agent = new http.Agent({ keepAlive: true });
  const full = JSON.parse(recorded('filter-full')) as { Nodes: { items: Node[] } };
  const cache = new Map<string, NodeFacts>(full.Nodes.items.map((n) => [n.metadata.name ?? '', nodeFacts(n, { index: true })]));

  beforeAll(async () => {
    const index = new NameIndex(cache.values());
    ext = await startExtender({ policyFor: () => DEFAULT_POLICY, nodeByName: (n) => cache.get(n), nameIndex: () => index, logger: silentLogger(), registry: createRegistry('r', false) });
  });
  afterAll(async () => { agent.destroy(); await ext?.close(); });

  const post = async (path: string, fixture: string): Promise<string> => (await request(agent, ext?.port ?? 0, path, recorded(fixture))).text;

  it.each(['filter-names', 'prioritize-names'])('%s: what kube-scheduler sends is read in place, every name', (fixture) => {
    const body = recorded(fixture);
    const sent = (JSON.parse(body) as { NodeNames: string[] }).NodeNames;
    const args = readNamesArgs(Buffer.from(body), new SpanScratch());
    expect(args?.names.count).toBe(sent.length);
    expect(sent.map((_n, i) => body.slice(args?.names.spans[2 * i], args?.names.spans[2 * i + 1]))).toEqual(sent);
  });

  it('full Nodes: passing nodes come back as sent, in order, the rest with reasons', async () => {
    const body = JSON.parse(await post('/filter', 'filter-full')) as ExtenderFilterResult;
    expect(body.Error).toBe('');
    expect(body.NodeNames).toBeNull();
    expect(body.Nodes?.items).toEqual(full.Nodes.items.filter((n) => ['best', 'newer-criu'].includes(n.metadata.name ?? '')));
    expect(body.FailedAndUnresolvableNodes).toEqual({
      arm: "lazarus: architecture arm64 differs from the checkpoint's amd64",
      'old-criu': "lazarus: criu 3.17.1 is older than the checkpoint's 4.1.1",
    });
  });

  it('NodeNames: the names that pass, in the order sent', async () => {
    const body = JSON.parse(await post('/filter', 'filter-names')) as ExtenderFilterResult;
    expect(body).toMatchObject({ Nodes: null, NodeNames: ['best', 'newer-criu'], Error: '' });
    expect(Object.keys(body.FailedAndUnresolvableNodes).sort()).toEqual(['arm', 'old-criu']);
  });

  it.each(['prioritize-full', 'prioritize-names'])('%s: exact match 10, newer CRIU, same kernel major, same runtime, no image 3', async (fixture) => {
    expect(JSON.parse(await post('/prioritize', fixture)) as HostPriorityList).toEqual([{ Host: 'best', Score: 10 }, { Host: 'newer-criu', Score: 1 + 1 + 1 }]);
  });
});
