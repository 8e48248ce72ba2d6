/**
 * Why this exists: the API server refuses to proxy to a node whose address is not global
 * unicast ("address not allowed" for 127.0.0.1), yet nothing here may listen beyond loopback.
 * So nodes get private addresses and kube-apiserver (and kube-scheduler) run with HTTPS_PROXY /
 * HTTP_PROXY pointing at this proxy:
 * - CONNECT ADDRESS:PORT (kubelets, webhooks behind a Service) goes to 127.0.0.1:PORT for fake
 *   nodes, or wherever the router says: a real node lives in its own network namespace
 *   (real-node.ts), reached through a Unix socket;
 * - an absolute-form HTTP request (`POST http://svc.ns.svc:8888/filter`, a scheduler extender
 *   behind a Service) is forwarded the same way.
 * TLS stays end to end: the kubelet still sees the API server's kubelet client certificate.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** Opens a connection to host:port, or returns undefined for the default (127.0.0.1:port). */
export type EgressRouter = (host: string, port: number) => Promise<net.Socket | undefined>;

export interface NodeProxy {
  readonly port: number;
  readonly url: string;
  /** CONNECT targets seen, e.g. "10.255.0.1:41234". */
  readonly targets: string[];
  /** Routes later connections (real nodes register theirs once they exist). */
  setRouter(router: EgressRouter | undefined): void;
  close(): Promise<void>;
}

function splitHostPort(target: string): { host: string; port: number } {
  const i = target.lastIndexOf(':');
  return { host: target.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(target.slice(i + 1)) };
}

function connectLoopback(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.off('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

export async function startNodeProxy(): Promise<NodeProxy> {
  const targets: string[] = [];
  const sockets = new Set<net.Socket>();
  let router: EgressRouter | undefined;
  const track = (s: net.Socket): void => { sockets.add(s); s.on('close', () => sockets.delete(s)); };
  const open = async (host: string, port: number): Promise<net.Socket> => (await router?.(host, port)) ?? await connectLoopback(port);

  // Absolute-form HTTP through the proxy: one upstream connection per request.
  const server = http.createServer((req, res) => {
    let url: URL;
    try { url = new URL(req.url ?? ''); } catch { res.writeHead(400).end('absolute-form URL or CONNECT only\n'); return; }
    const port = Number(url.port || 80);
    targets.push(`${url.hostname}:${String(port)}`);
    open(url.hostname, port).then((upstream) => {
      track(upstream);
      const { 'proxy-connection': _hop, ...rest } = req.headers;
      const headers = { ...rest, connection: 'close' };
      const out = http.request({ method: req.method, path: `${url.pathname}${url.search}`, headers, createConnection: () => upstream }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      // A routed connection arrives paused (its first bytes were read by hand): let the parser read.
      out.on('socket', (socket) => socket.resume());
      out.on('error', (err) => { if (!res.headersSent) res.writeHead(502).end(`${err.message}\n`); else res.destroy(); });
      req.pipe(out);
    }, (err: Error) => { res.writeHead(502).end(`${url.host}: ${err.message}\n`); });
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const target = req.url ?? '';
    const { host, port } = splitHostPort(target);
    targets.push(target);
    track(client);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    client.on('error', () => client.destroy());
    open(host, port).then((upstream) => {
      track(upstream);
      if (client.destroyed) { upstream.destroy(); return; }
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    }, () => { client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'); });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port, url: `http://127.0.0.1:${port}`, targets,
    setRouter(r) { router = r; },
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
