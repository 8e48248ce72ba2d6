/**
 * 12,000 malformed or mutated requests against a live extender: zero 5xx, zero crashes, every
 * answer well-formed (a 4xx with an Error, or a valid result), and no answer ever names a node
 * that was not in its request. Seeded, so a failure replays.
 */
import { prng } from '../support/http.js';
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

const SEED = 0x1a2a75;
const REQUESTS = 12_000;
const LIMIT = 256 * 1024;


type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

class Fuzzer {
  constructor(private readonly r: () => number) {}
  int(n: number): number { return Math.floor(this.r() * n); }
  pick<T>(items: readonly T[]): T { return items[this.int(items.length)] as T; }
  chance(p: number): boolean { return this.r() < p; }

  junk(depth = 0): Json {
    switch (this.int(depth > 2 ? 7 : 10)) {
      case 0: return null;
      case 1: return this.chance(0.5);
      case 2: return this.pick([0, -1, 1e308, -0.5, 2 ** 53 + 1, 40101]);
      case 3: return this.pick(['', 'true', '40101', 'amd64', 'cri-o://', '://', '\u0000', '💥'.repeat(this.int(20)), 'a'.repeat(this.int(5000))]);
      case 4: return 'x'.repeat(this.int(40));
      case 5: return this.pick(['__proto__', 'constructor', 'toString', 'hasOwnProperty']);
      case 6: return String(this.r());
      case 7: return Array.from({ length: this.int(4) }, () => this.junk(depth + 1));
      case 8: return Object.fromEntries(Array.from({ length: this.int(4) }, () => [this.pick(['metadata', 'name', 'items', 'labels', 'annotations', 'status', '__proto__', 'k']), this.junk(depth + 1)]));
      default: return Array.from({ length: this.int(3) }, () => this.junk(depth + 1));
    }
  }

  /** Replaces, deletes or adds at a random place in the tree. */
  mutate(value: Json, depth = 0): Json {
    if (depth > 0 && this.chance(0.25)) return this.junk();
    if (Array.isArray(value)) {
      if (value.length === 0 || this.chance(0.1)) return [...value, this.junk()];
      const copy = [...value];
      const i = this.int(copy.length);
      if (this.chance(0.2)) copy.splice(i, 1);
      else copy[i] = this.mutate(copy[i] ?? null, depth + 1);
      return copy;
    }
    if (value !== null && typeof value === 'object') {
      const keys = Object.keys(value);
      const copy: Record<string, Json> = { ...value };
      if (keys.length === 0 || this.chance(0.1)) { copy[this.pick(['Pod', 'Nodes', 'NodeNames', 'items', 'metadata', 'x'])] = this.junk(); return copy; }
      const key = this.pick(keys);
      if (this.chance(0.15)) delete copy[key];
      else copy[key] = this.mutate(copy[key] ?? null, depth + 1);
      return copy;
    }
    return this.junk();
  }

  /** Byte-level damage to an encoded body. */
  corrupt(text: string): Buffer {
    const bytes = Buffer.from(text);
    switch (this.int(5)) {
      case 0: return bytes.subarray(0, this.int(bytes.length + 1));
      case 1: { for (let k = 0; k < 1 + this.int(8); k++) bytes[this.int(bytes.length)] = this.int(256); return bytes; }
      case 2: return Buffer.concat([bytes, Buffer.from(this.pick([',', '}', ']', '"', '\\', '\u0000', ' garbage']))]);
      case 3: return Buffer.from(Array.from({ length: this.int(200) }, () => this.int(256)));
      default: return Buffer.from(text.toLowerCase()); // the old, wrong lowercase field names
    }
  }
}

/** Names a valid answer may mention: the names present in the request it answers. */
function inputNames(body: Buffer): Set<string> | undefined {
  let parsed: unknown;
  try { parsed = JSON.parse(body.toString('utf8')); } catch { return undefined; }
  const names = new Set<string>();
  const args = parsed as { Nodes?: { items?: unknown }; NodeNames?: unknown } | null;
  const items = args?.Nodes?.items;
  if (Array.isArray(items)) {
    for (const item of items) {
      const name = (item as { metadata?: { name?: unknown } } | null)?.metadata?.name;
      if (typeof name === 'string') names.add(name);
    }
  }
  if (Array.isArray(args?.NodeNames)) for (const n of args.NodeNames) if (typeof n === 'string') names.add(n);
  return names;
}

/** Empty when the reply is well-formed; else what is wrong with it. */
function problems(path: string, sent: Buffer, reply: Reply): string[] {
  const out: string[] = [];
  if (reply.status >= 500 || reply.status < 200) out.push(`status ${reply.status}`);
  let body: unknown;
  try { body = JSON.parse(reply.text); } catch { return [...out, `not JSON: ${reply.text.slice(0, 80)}`]; }
  if (reply.status >= 400) {
    if (typeof (body as { Error?: unknown }).Error !== 'string') out.push('4xx without an Error string');
    return out;
  }
  const names = inputNames(sent);
  const named: string[] = [];
  if (path.startsWith('/filter')) {
    const r = body as Record<string, unknown>;
    if (Object.keys(r).sort().join() !== 'Error,FailedAndUnresolvableNodes,FailedNodes,NodeNames,Nodes') out.push(`filter result keys ${Object.keys(r).join()}`);
    if (typeof r.Error !== 'string') out.push('Error not a string');
    if (r.Error === '' && r.Nodes === null && r.NodeNames === null) out.push('no Error, yet neither Nodes nor NodeNames: the scheduler would drop every node');
    for (const map of [r.FailedNodes, r.FailedAndUnresolvableNodes]) {
      if (typeof map !== 'object' || map === null || Array.isArray(map)) out.push('failed map not an object');
      else for (const [k, v] of Object.entries(map)) { named.push(k); if (typeof v !== 'string') out.push('failure message not a string'); }
    }
    if (Array.isArray(r.NodeNames)) named.push(...(r.NodeNames as string[]));
    const items = (r.Nodes as { items?: unknown } | null)?.items;
    if (Array.isArray(items)) {
      for (const item of items) {
        const name = (item as { metadata?: { name?: unknown } } | null)?.metadata?.name;
        if (typeof name === 'string') named.push(name);
      }
    }
  } else {
    if (!Array.isArray(body)) return [...out, 'prioritize result not an array'];
    for (const hp of body as { Host?: unknown; Score?: unknown }[]) {
      if (typeof hp.Host !== 'string' || !Number.isInteger(hp.Score) || (hp.Score as number) < 0 || (hp.Score as number) > 10) out.push(`bad HostPriority ${JSON.stringify(hp)}`);
      else named.push(hp.Host);
    }
  }
  if (!names) out.push('200 for a body that is not JSON');
  else for (const n of named) if (!names.has(n)) out.push(`names ${n}, which was not in the request`);
  return out;
}

describe('fuzz', () => {
  let ext: RunningExtender | undefined;
  const cacheNodes = [goodNode('good'), goodNode('arm', { arch: 'arm64' }), wireNode({ name: 'no-agent' })];
  const cache = new Map<string, NodeFacts>(cacheNodes.map((n) => [nodeFacts(n as unknown as Node).name, nodeFacts(n as unknown as Node)]));
  beforeAll(async () => {
    // As in production with a node cache: NodeNames requests take the in-place path.
    const index = new NameIndex(cache.values());
    ext = await startExtender({ policyFor: () => DEFAULT_POLICY, nodeByName: (n) => cache.get(n), nameIndex: () => index, logger: silentLogger(), registry: createRegistry('fuzz', false), maxBodyBytes: LIMIT });
  });
  afterAll(async () => { await ext?.close(); });

  it(`${REQUESTS} malformed requests: no crash, no 5xx, every answer well-formed, no invented node`, async () => {
    const port = ext?.port ?? 0;
    const f = new Fuzzer(prng(SEED));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const seeds: Json[] = [
      fullArgs(wirePod(true), cacheNodes) as Json,
      fullArgs(wirePod(false), cacheNodes.slice(0, 2)) as Json,
      namesArgs(wirePod(true), ['good', 'arm', 'no-agent', 'ghost']) as Json,
      namesArgs(wirePod(false), ['good']) as Json,
    ];
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let next = 0;

    async function one(): Promise<void> {
      const path = f.pick(['/filter', '/prioritize', '/filter?x=1', '/prioritize/']);
      const route = path.startsWith('/filter') ? '/filter' : '/prioritize';
      let body: Buffer;
      const headers: Record<string, string> = {};
      let method = 'POST';
      const kind = f.int(10);
      if (kind < 6) {
        let value = f.pick(seeds);
        for (let k = 0; k <= f.int(3); k++) value = f.mutate(value);
        body = Buffer.from(JSON.stringify(value));
      } else if (kind < 9) {
        body = f.corrupt(JSON.stringify(f.pick(seeds)));
      } else {
        body = Buffer.from(JSON.stringify(f.pick(seeds)));
        switch (f.int(4)) {
          case 0: method = f.pick(['GET', 'PUT', 'DELETE', 'PATCH']); break;
          case 1: headers['content-type'] = f.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/merge-patch+json', 'application/json; charset=utf-8']); break;
          case 2: body = Buffer.concat([body, Buffer.alloc(LIMIT)]); break;
          default: body = Buffer.alloc(0);
        }
      }
      const sendBody = method === 'GET' ? undefined : body;
      const reply = await request(agent, port, path === '/prioritize/' ? '/prioritize' : path, sendBody, { method, headers });
      statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
      for (const p of problems(route, body, reply)) if (failures.length < 20) failures.push(`${route} ${method} ${body.subarray(0, 120).toString()}: ${p}`);
    }

    async function worker(): Promise<void> {
      while (next < REQUESTS) { next++; await one(); }
    }
    await Promise.all([worker(), worker(), worker(), worker()]);
    agent.destroy();

    expect(failures).toEqual([]);
    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(REQUESTS);
    // The mix really exercised both answers: valid results and refusals.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(REQUESTS / 5);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(REQUESTS / 10);
    expect(statuses.get(413) ?? 0).toBeGreaterThan(0);
    expect(statuses.get(415) ?? 0).toBeGreaterThan(0);
    expect(statuses.get(405) ?? 0).toBeGreaterThan(0);
    // Still serving.
    const after = await request(new http.Agent(), port, '/healthz', undefined, { method: 'GET' });
    expect(after.text).toBe('ok');
  }, 120_000);
});
