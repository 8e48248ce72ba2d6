/**
 * Why this exists: the API server refuses to proxy to a node whose address is not global
 * unicast ("address not allowed" for 127.0.0.1), yet nothing here may listen beyond loopback.
 * So fake nodes get a private address (10.255.0.1 by default) and kube-apiserver runs with
 * HTTPS_PROXY pointing at this CONNECT proxy, which sends ADDRESS:PORT to 127.0.0.1:PORT.
 * TLS stays end to end: the fake kubelet still sees the API server's kubelet client certificate.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface NodeProxy {
  readonly port: number;
  readonly url: string;
  /** CONNECT targets seen, e.g. "10.255.0.1:41234". */
  readonly targets: string[];
  close(): Promise<void>;
}

export async function startNodeProxy(): Promise<NodeProxy> {
  const targets: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => { res.writeHead(405).end('CONNECT only\n'); });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const target = req.url ?? '';
    const port = Number(target.slice(target.lastIndexOf(':') + 1));
    targets.push(target);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const upstream = net.connect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port, url: `http://127.0.0.1:${port}`, targets,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
