/**
 * The API server's node proxy only dials global unicast addresses (loopback: "address not
 * allowed"). Real clusters route that traffic through an egress proxy (konnectivity) via the
 * API server's EgressSelectorConfiguration; tests do the same with this HTTP CONNECT proxy on a
 * unix socket, which sends every tunnel to the same port on 127.0.0.1. Fake nodes then carry a
 * documentation address (192.0.2.x) and nothing ever leaves loopback.
 */
import http from 'node:http';
import net from 'node:net';
import { writeFile } from 'node:fs/promises';

export const FAKE_NODE_ADDRESS = '192.0.2.10';

export interface ConnectProxy {
  readonly socketPath: string;
  /** Targets asked for, `host:port`. */
  readonly tunnels: string[];
  /** Writes an EgressSelectorConfiguration for `--egress-selector-config-file`. */
  writeEgressConfig(path: string): Promise<void>;
  close(): Promise<void>;
}

/** `socketPath`: where to listen (a unix socket in a private directory). */
export async function startConnectProxy(socketPath: string): Promise<ConnectProxy> {
  const tunnels: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => { res.writeHead(405).end(); });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const target = req.url ?? '';
    tunnels.push(target);
    const port = Number(target.slice(target.lastIndexOf(':') + 1));
    const upstream = net.connect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); }
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(socketPath, () => resolve()));
  return {
    socketPath, tunnels,
    writeEgressConfig: (path) => writeFile(path, [
      'apiVersion: apiserver.k8s.io/v1beta1',
      'kind: EgressSelectorConfiguration',
      'egressSelections:',
      '- name: cluster',
      '  connection:',
      '    proxyProtocol: HTTPConnect',
      '    transport:',
      '      uds:',
      `        udsName: ${socketPath}`,
      '',
    ].join('\n')),
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
