/**
 * The floor for any extender in Node, for bench/scheduler.ts: a bare node:http server that parses
 * each request and passes every node (filter echoes NodeNames),
 * with no cache, policy, metrics or logging; prioritize lists every node with score 0. Usage: node dist/bench/noop-extender.js PORT
 */
import http from 'node:http';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error('usage: noop-extender.js PORT');

/** Seconds from request headers to response written, and calls, per verb — like lazarus_extender_request_duration_seconds. */
const stats: Record<string, { sum: number; count: number }> = { filter: { sum: 0, count: 0 }, prioritize: { sum: 0, count: 0 } };

const server = http.createServer((req, res) => {
  const start = process.hrtime.bigint();
  if (req.method !== 'POST') {
    const data = req.url === '/stats' ? JSON.stringify(stats) : 'ok';
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(data);
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const args = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { NodeNames?: string[] | null };
    // Prioritize answers every node (score 0), so the scheduler decodes a list as long as ours.
    const names = args.NodeNames ?? [];
    const answer = req.url === '/filter' ? { NodeNames: names, FailedNodes: {}, FailedAndUnresolvableNodes: {}, Error: '' } : names.map((Host) => ({ Host, Score: 0 }));
    const data = Buffer.from(JSON.stringify(answer));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': data.length });
    res.end(data);
    const s = stats[req.url === '/filter' ? 'filter' : 'prioritize'];
    if (s) { s.sum += Number(process.hrtime.bigint() - start) / 1e9; s.count++; }
  });
});
server.keepAliveTimeout = 95_000;
server.listen(port, '127.0.0.1');
process.once('SIGTERM', () => { server.close(); server.closeAllConnections(); });
