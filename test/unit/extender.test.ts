import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeFacts, type NodeFacts } from '../../api/compat.js';
import { DEFAULT_POLICY, effectivePolicy } from '../../api/policy.js';
import type { EffectivePolicy, Node } from '../../api/types.js';
import { silentLogger } from '../../runtime/log.js';
import { createRegistry } from '../../runtime/metrics.js';
import { NO_CACHE_ERROR } from '../../extender/decide.js';
import { startExtender, type ExtenderDeps, type RunningExtender } from '../../extender/server.js';
import { createCertSource } from '../../certs/index.js';
import type { ExtenderFilterResult, HostPriorityList } from '../../extender/protocol.js';
import { fullArgs, goodNode, namesArgs, selfSignedCert, wireNode, wirePod } from './extender-fixtures.js';
import { postJson, request } from './extender-http.js';

/** Four nodes: one perfect, one arm64, one with old CRIU, one without the agent. */
const NODES = [
  goodNode('good', {}, 0),
  goodNode('arm', { arch: 'arm64' }, 1),
  goodNode('old-criu', { criu: '31701' }, 2),
  wireNode({ name: 'no-agent' }, 3),
];
const NEWER = goodNode('newer', { criu: '40200', kernel: '6.8.12-1-generic', images: [] }, 4);

function cacheOf(nodes: unknown[]): Map<string, NodeFacts> {
  return new Map(nodes.map((n) => { const f = nodeFacts(n as Node); return [f.name, f]; }));
}

interface Harness { ext: RunningExtender; agent: http.Agent; registry: ReturnType<typeof createRegistry> }

async function start(over: Partial<ExtenderDeps> = {}): Promise<Harness> {
  const registry = createRegistry('extender', false);
  const ext = await startExtender({ policyFor: () => DEFAULT_POLICY, logger: silentLogger(), registry, ...over });
  return { ext, agent: new http.Agent({ keepAlive: true, maxSockets: 1 }), registry };
}

async function stop(h: Harness | undefined): Promise<void> {
  h?.agent.destroy();
  await h?.ext.close();
}

function filterResult(text: string): ExtenderFilterResult {
  return JSON.parse(text) as ExtenderFilterResult;
}

describe('extender over HTTP, full-Nodes mode (nodeCacheCapable: false, no cluster)', () => {
  let h: Harness | undefined;
  beforeAll(async () => { h = await start(); });
  afterAll(() => stop(h));
  const port = (): number => h?.ext.port ?? 0;
  const agent = (): http.Agent => h?.agent ?? new http.Agent();

  it('a pod that was not restored: every node comes back whole, nothing failed', async () => {
    const r = await postJson(agent(), port(), '/filter', fullArgs(wirePod(false), NODES));
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    const body = filterResult(r.text);
    expect(body.Nodes?.items).toEqual(NODES);
    expect(body).toMatchObject({ NodeNames: null, FailedNodes: {}, FailedAndUnresolvableNodes: {}, Error: '' });
  });

  it('a restored pod: compatible nodes come back as full objects, the rest fail with reasons', async () => {
    const r = await postJson(agent(), port(), '/filter', fullArgs(wirePod(true), [...NODES, NEWER]));
    const body = filterResult(r.text);
    expect(r.status).toBe(200);
    expect(body.Error).toBe('');
    expect(body.NodeNames).toBeNull();
    // The scheduler builds its NodeInfo from what comes back: it must be the input node, intact.
    expect(body.Nodes?.items).toEqual([NODES[0], NEWER]);
    expect(body.Nodes?.metadata).toEqual({});
    expect(body.FailedNodes).toEqual({});
    expect(Object.keys(body.FailedAndUnresolvableNodes).sort()).toEqual(['arm', 'no-agent', 'old-criu']);
    expect(body.FailedAndUnresolvableNodes.arm).toBe("lazarus: architecture arm64 differs from the checkpoint's amd64");
    expect(body.FailedAndUnresolvableNodes['old-criu']).toBe("lazarus: criu 3.17.1 is older than the checkpoint's 4.1.1");
    expect(body.FailedAndUnresolvableNodes['no-agent']).toContain('not restore-capable');
  });

  it('passing nodes are the request\'s own bytes (an int64 beyond 2^53 comes back unrounded)', async () => {
    const text = JSON.stringify(fullArgs(wirePod(true), [NODES[0], NODES[1]])).replace('"sizeBytes":10000000}', '"sizeBytes":9007199254740993}');
    const r = await request(agent(), port(), '/filter', text);
    expect(r.text).toContain('"sizeBytes":9007199254740993}');
    expect(Object.keys(filterResult(r.text).FailedAndUnresolvableNodes)).toEqual(['arm']);
  });

  it('prioritize: a score per input node, in input order, 0 for incompatible nodes', async () => {
    const r = await postJson(agent(), port(), '/prioritize', fullArgs(wirePod(true), [...NODES, NEWER]));
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text) as HostPriorityList).toEqual([
      { Host: 'good', Score: 10 }, { Host: 'arm', Score: 0 }, { Host: 'old-criu', Score: 0 }, { Host: 'no-agent', Score: 0 },
      { Host: 'newer', Score: 2 + 1 + 1 },
    ]);
  });

  it('prioritize for a pod that was not restored: all zeros', async () => {
    const r = await postJson(agent(), port(), '/prioritize', fullArgs(wirePod(false), NODES));
    expect(JSON.parse(r.text)).toEqual(NODES.map((n) => ({ Host: (n.metadata as { name: string }).name, Score: 0 })));
  });

  it('NodeNames request without a node cache: Error for a restored pod (never a silent pass)', async () => {
    const r = await postJson(agent(), port(), '/filter', namesArgs(wirePod(true), ['good', 'arm']));
    expect(r.status).toBe(200);
    expect(filterResult(r.text)).toEqual({ Nodes: null, NodeNames: null, FailedNodes: {}, FailedAndUnresolvableNodes: {}, Error: NO_CACHE_ERROR });
  });

  it('NodeNames request without a node cache, pod not restored: every name passes', async () => {
    const r = await postJson(agent(), port(), '/filter', namesArgs(wirePod(false), ['good', 'arm']));
    expect(filterResult(r.text)).toMatchObject({ Nodes: null, NodeNames: ['good', 'arm'], Error: '' });
  });

  it('reads a chunked body (no Content-Length) as well', async () => {
    const text = JSON.stringify(fullArgs(wirePod(true), NODES));
    const reply = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: port(), path: '/filter', method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        let data = '';
        res.on('data', (c: Buffer) => { data += c.toString(); });
        res.on('end', () => resolve(data));
      });
      req.on('error', reject);
      req.write(text.slice(0, 1000));
      setTimeout(() => req.end(text.slice(1000)), 20);
    });
    expect(Object.keys(filterResult(reply).FailedAndUnresolvableNodes).sort()).toEqual(['arm', 'no-agent', 'old-criu']);
  });

  it('keeps the connection alive across requests', async () => {
    const first = await postJson(agent(), port(), '/filter', fullArgs(wirePod(false), []));
    const second = await postJson(agent(), port(), '/prioritize', fullArgs(wirePod(false), []));
    expect(first.status).toBe(200);
    expect(second.socketReused).toBe(true);
  });
});

describe('extender over HTTP, NodeNames mode (nodeCacheCapable: true, node cache injected)', () => {
  let h: Harness | undefined;
  let policy: EffectivePolicy = DEFAULT_POLICY;
  const cache = cacheOf([...NODES, NEWER]);
  beforeAll(async () => { h = await start({ policyFor: () => policy, nodeByName: (n) => cache.get(n) }); });
  afterAll(() => stop(h));
  afterEach(() => { policy = DEFAULT_POLICY; });
  const port = (): number => h?.ext.port ?? 0;
  const agent = (): http.Agent => h?.agent ?? new http.Agent();

  it('a restored pod: passing names back, failures with reasons, a node missing from the cache passes', async () => {
    const names = ['good', 'arm', 'old-criu', 'no-agent', 'newer', 'not-in-cache'];
    const r = await postJson(agent(), port(), '/filter', namesArgs(wirePod(true), names));
    const body = filterResult(r.text);
    expect(body).toMatchObject({ Nodes: null, NodeNames: ['good', 'newer', 'not-in-cache'], FailedNodes: {}, Error: '' });
    expect(Object.keys(body.FailedAndUnresolvableNodes).sort()).toEqual(['arm', 'no-agent', 'old-criu']);
  });

  it('a node called __proto__ is reported like any other', async () => {
    const r = await postJson(agent(), port(), '/filter', fullArgs(wirePod(true), [goodNode('__proto__', { arch: 'arm64' }), NODES[0]]));
    expect(r.text).toContain('"FailedAndUnresolvableNodes":{"__proto__":"lazarus: architecture arm64');
  });

  it('only input names ever come back, even when the cache knows more nodes', async () => {
    const r = await postJson(agent(), port(), '/filter', namesArgs(wirePod(true), ['arm']));
    const body = filterResult(r.text);
    expect(body.NodeNames).toEqual([]);
    expect(Object.keys(body.FailedAndUnresolvableNodes)).toEqual(['arm']);
  });

  it('prioritize: scores from the cache, 0 for unknown nodes', async () => {
    const r = await postJson(agent(), port(), '/prioritize', namesArgs(wirePod(true), ['good', 'newer', 'not-in-cache']));
    expect(JSON.parse(r.text)).toEqual([{ Host: 'good', Score: 10 }, { Host: 'newer', Score: 4 }, { Host: 'not-in-cache', Score: 0 }]);
  });

  it('applies the pod\'s policy: criu Exact rejects newer CRIU, placement Require filters on the kernel', async () => {
    policy = effectivePolicy({ metadata: { name: 'strict' }, spec: { compatibility: { criu: 'Exact', kernel: 'SameMajorMinor' }, placement: 'Require' } });
    const r = await postJson(agent(), port(), '/filter', namesArgs(wirePod(true), ['good', 'newer']));
    const body = filterResult(r.text);
    expect(body.NodeNames).toEqual(['good']);
    expect(body.FailedAndUnresolvableNodes.newer).toBe("lazarus: criu 4.2.0 differs from the checkpoint's 4.1.1 (policy criu: Exact)");
  });

  it('full-Nodes requests still work with a cache (the request\'s own node objects are judged)', async () => {
    const r = await postJson(agent(), port(), '/filter', fullArgs(wirePod(true), [NODES[1]]));
    expect(filterResult(r.text)).toMatchObject({ Nodes: { metadata: {}, items: [] }, NodeNames: null });
  });

  it('an unsynced node cache answers NodeNames filters with an Error', async () => {
    const u = await start({ nodeByName: () => undefined, nodeCacheProblem: () => 'lazarus extender: node cache not synced yet' });
    try {
      const r = await postJson(u.agent, u.ext.port, '/filter', namesArgs(wirePod(true), ['good']));
      expect(filterResult(r.text).Error).toBe('lazarus extender: node cache not synced yet');
    } finally {
      await stop(u);
    }
  });
});

describe('transport rules and bad input', () => {
  let h: Harness | undefined;
  beforeAll(async () => { h = await start({ maxBodyBytes: 64 * 1024, notReadyReason: () => 'caches not synced: nodes' }); });
  afterAll(() => stop(h));
  const port = (): number => h?.ext.port ?? 0;
  const fresh = (): http.Agent => new http.Agent({ keepAlive: false });

  it.each<[string, string, string | undefined, { method?: string; headers?: Record<string, string> }, number]>([
    ['GET /filter', '/filter', undefined, { method: 'GET' }, 405],
    ['text/plain body', '/filter', '{}', { headers: { 'content-type': 'text/plain' } }, 415],
    ['malformed JSON', '/filter', '{"Pod":', {}, 400],
    ['malformed JSON on prioritize', '/prioritize', 'nul', {}, 400],
    ['body over the limit', '/filter', JSON.stringify(fullArgs(wirePod(true), Array.from({ length: 30 }, (_, i) => goodNode(`n${i}`)))), {}, 413],
    ['missing Pod on prioritize', '/prioritize', JSON.stringify({ Pod: null, Nodes: null, NodeNames: ['a'] }), {}, 400],
  ])('%s → %s', async (_name, path, body, options, status) => {
    const r = await request(fresh(), port(), path, body, options);
    expect(r.status).toBe(status);
    expect(typeof (JSON.parse(r.text) as { Error: unknown }).Error).toBe('string');
  });

  it('a declared Content-Length over the limit is refused before reading', async () => {
    const big = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: port(), path: '/filter', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('error', reject);
      req.write('{'); // and never the rest
    });
    expect(big).toBe(413);
  });

  it.each<[string, unknown, string]>([
    ['no Pod', { Nodes: { items: [] }, NodeNames: null }, 'ExtenderArgs.Pod is missing'],
    ['neither Nodes nor NodeNames', { Pod: wirePod(true), Nodes: null, NodeNames: null }, 'neither Nodes nor NodeNames'],
    ['NodeNames not strings', { Pod: wirePod(true), Nodes: null, NodeNames: [1, 2] }, 'NodeNames is not an array of strings'],
    ['Nodes.items not an array', { Pod: wirePod(true), Nodes: { items: {} }, NodeNames: null }, 'Nodes.items is not an array'],
    ['a JSON array', [1, 2], 'not a JSON object'],
  ])('filter with %s: a well-formed result carrying Error', async (_name, payload, error) => {
    const r = await postJson(fresh(), port(), '/filter', payload);
    expect(r.status).toBe(200);
    const body = filterResult(r.text);
    expect(body.Error).toContain(error);
    expect(body.Nodes).toBeNull();
    expect(body.NodeNames).toBeNull();
  });

  it('nodes without nodeInfo or labels, or not objects at all, fail cleanly or pass through unnamed', async () => {
    const items = [{ metadata: { name: 'bare' } }, { metadata: { name: 'weird', labels: 'x' }, status: { nodeInfo: 7 } }, 'garbage', null];
    const r = await postJson(fresh(), port(), '/filter', fullArgs(wirePod(true), items));
    const body = filterResult(r.text);
    expect(Object.keys(body.FailedAndUnresolvableNodes).sort()).toEqual(['bare', 'weird']);
    expect(body.Nodes?.items).toEqual(['garbage', null]);
  });

  it('a client that hangs up mid-body is counted, not left pending', async () => {
    const registry = h?.registry;
    const socket = net.connect(port(), '127.0.0.1', () => {
      socket.write('POST /filter HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"Pod":');
      setTimeout(() => socket.destroy(), 20);
    });
    let counted = '';
    for (let i = 0; i < 100 && !/outcome="invalid"[^}]*\} [1-9]/.test(counted); i++) {
      await new Promise((r) => setTimeout(r, 10));
      counted = (await registry?.getSingleMetricAsString('lazarus_extender_requests_total')) ?? '';
    }
    expect(counted).toMatch(/verb="filter",outcome="invalid"[^}]*\} [1-9]/);
  });

  it('bytes that are not HTTP get a JSON 400, not a dropped connection', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port(), '127.0.0.1', () => socket.write('NOT-HTTP \u0000\r\n\r\n'));
      let data = '';
      socket.on('data', (c: Buffer) => { data += c.toString(); });
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4))).toHaveProperty('Error');
  });

  it('serves /healthz, /readyz (with the reason) and /metrics through the ops app', async () => {
    expect((await request(fresh(), port(), '/healthz', undefined, { method: 'GET' })).text).toBe('ok');
    const ready = await request(fresh(), port(), '/readyz', undefined, { method: 'GET' });
    expect(ready.status).toBe(503);
    expect(ready.text).toContain('caches not synced: nodes');
  });
});

describe('metrics', () => {
  it('counts requests by verb and outcome, latency, and filtered nodes by rule', async () => {
    const h = await start();
    try {
      await postJson(h.agent, h.ext.port, '/filter', fullArgs(wirePod(true), NODES));
      await postJson(h.agent, h.ext.port, '/filter', fullArgs(wirePod(false), NODES));
      await postJson(h.agent, h.ext.port, '/prioritize', namesArgs(wirePod(true), ['a']));
      await request(h.agent, h.ext.port, '/filter', '{', {});
      const text = (await request(h.agent, h.ext.port, '/metrics', undefined, { method: 'GET' })).text;
      expect(text).toMatch(/lazarus_extender_requests_total\{verb="filter",outcome="restored"[^}]*\} 1/);
      expect(text).toMatch(/lazarus_extender_requests_total\{verb="filter",outcome="not-restored"[^}]*\} 1/);
      expect(text).toMatch(/lazarus_extender_requests_total\{verb="filter",outcome="invalid"[^}]*\} 1/);
      expect(text).toMatch(/lazarus_extender_requests_total\{verb="prioritize",outcome="restored"[^}]*\} 1/);
      expect(text).toMatch(/lazarus_extender_request_duration_seconds_count\{[^}]*verb="filter"[^}]*\} 3/);
      expect(text).toMatch(/lazarus_extender_nodes_filtered_total\{rule="architecture"[^}]*\} 1/);
      expect(text).toMatch(/lazarus_extender_nodes_filtered_total\{rule="criu"[^}]*\} 2/);
      expect(text).toMatch(/lazarus_extender_nodes_filtered_total\{rule="restoreCapable"[^}]*\} 1/);
      expect(text).toMatch(/lazarus_extender_nodes_filtered_total\{rule="kernel"[^}]*\} 0/);
    } finally {
      await stop(h);
    }
  });
});

describe('TLS', () => {
  function postTls(port: number, ca: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, path: '/filter', method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
        let data = '';
        res.on('data', (c: Buffer) => { data += c.toString(); });
        res.on('end', () => resolve(data));
      });
      req.on('error', reject);
      req.end(JSON.stringify(fullArgs(wirePod(true), [NODES[0]])));
    });
  }

  it('serves the verbs over HTTPS to a client that trusts the certificate', async () => {
    const { cert, key } = selfSignedCert('lazarus-extender');
    const ext = await startExtender({ policyFor: () => DEFAULT_POLICY, logger: silentLogger(), registry: createRegistry('x', false), tls: { cert, key } });
    try {
      expect(filterResult(await postTls(ext.port, cert)).Nodes?.items).toEqual([NODES[0]]);
    } finally {
      await ext.close();
    }
  });

  it('picks up rotated certificate files without a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lazarus-tls-'));
    const files = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
    const first = selfSignedCert('first');
    const second = selfSignedCert('second');
    writeFileSync(files.certFile, first.cert);
    writeFileSync(files.keyFile, first.key);
    const stop = new AbortController();
    // What `lazarus extender --tls-cert-file --tls-key-file` does: certs/ files mode, attached to the server.
    const certs = await createCertSource({ mode: 'files', ...files, pollIntervalMs: 20 }, { logger: silentLogger(), signal: stop.signal });
    const ext = await startExtender({ policyFor: () => DEFAULT_POLICY, logger: silentLogger(), registry: createRegistry('x', false), tls: certs.secureContextOptions() });
    certs.attach(ext.server as https.Server);
    try {
      await expect(postTls(ext.port, second.cert)).rejects.toThrow();
      writeFileSync(files.keyFile, second.key);
      writeFileSync(files.certFile, second.cert);
      let answer = '';
      for (let i = 0; i < 100 && !answer; i++) {
        await new Promise((r) => setTimeout(r, 20));
        answer = await postTls(ext.port, second.cert).catch(() => '');
      }
      expect(filterResult(answer).Nodes?.items).toEqual([NODES[0]]);
    } finally {
      stop.abort();
      await certs.stop();
      await ext.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
