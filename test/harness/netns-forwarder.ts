/**
 * Runs inside a real node's network namespace (`nsenter --net=… node netns-forwarder.js CONFIG`)
 * and joins it to the host's loopback through Unix sockets, which do not belong to any network
 * namespace:
 * - `listen`: TCP addresses inside the namespace (the `kubernetes` Service IP, the registry's
 *   loopback port) forwarded to Unix sockets the harness serves on the host;
 * - `inbound`: a Unix socket the harness' egress proxy connects to; the first line names
 *   `HOST:PORT` inside the namespace (a kubelet, a pod), answered `OK` or `ERR reason`.
 * Nothing leaves the namespace except through these sockets.
 */
import net from 'node:net';
import { rmSync } from 'node:fs';

export interface ForwarderConfig {
  listen: Array<{ host: string; port: number; unix: string }>;
  inbound: string;
}

function pipeBoth(a: net.Socket, b: net.Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}

function serveInbound(client: net.Socket): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    const nl = head.indexOf(10);
    if (nl < 0) {
      if (head.length > 512) client.destroy();
      return;
    }
    client.off('data', onData);
    client.pause();
    const target = head.subarray(0, nl).toString('utf8').trim();
    const rest = head.subarray(nl + 1);
    const i = target.lastIndexOf(':');
    const port = Number(target.slice(i + 1));
    const upstream = net.connect(port, target.slice(0, i));
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      client.write('OK\n');
      if (rest.length > 0) upstream.write(rest);
      pipeBoth(client, upstream);
      client.resume();
    });
    upstream.once('error', (err) => { if (!connected) client.end(`ERR ${err.message}\n`); });
  };
  client.on('data', onData);
  client.on('error', () => client.destroy());
}

export async function runForwarder(config: ForwarderConfig): Promise<void> {
  const servers: net.Server[] = [];
  for (const l of config.listen) {
    const server = net.createServer((client) => {
      const upstream = net.connect(l.unix);
      upstream.once('connect', () => pipeBoth(client, upstream));
      upstream.once('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(l.port, l.host, () => resolve()); });
    servers.push(server);
  }
  rmSync(config.inbound, { force: true });
  const inbound = net.createServer(serveInbound);
  await new Promise<void>((resolve, reject) => { inbound.once('error', reject); inbound.listen(config.inbound, () => resolve()); });
  servers.push(inbound);
  process.stdout.write('forwarding\n');
  const stop = (): void => { for (const s of servers) s.close(); rmSync(config.inbound, { force: true }); process.exit(0); };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/** Connects through a forwarder's inbound socket to HOST:PORT inside its namespace. */
export function connectInto(inbound: string, host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(inbound);
    let answer = '';
    const onData = (chunk: Buffer): void => {
      answer += chunk.toString('latin1');
      const nl = answer.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      const line = answer.slice(0, nl);
      const rest = answer.slice(nl + 1);
      if (line !== 'OK') { s.destroy(); reject(new Error(`${host}:${String(port)}: ${line.replace(/^ERR /, '')}`)); return; }
      s.pause();
      if (rest.length > 0) s.unshift(Buffer.from(rest, 'latin1'));
      resolve(s);
    };
    s.once('connect', () => s.write(`${host}:${String(port)}\n`));
    s.on('data', onData);
    s.once('error', reject);
  });
}

if (process.argv[1]?.endsWith('netns-forwarder.js') && process.argv[2]) {
  runForwarder(JSON.parse(process.argv[2]) as ForwarderConfig).catch((err: unknown) => {
    process.stderr.write(`netns-forwarder: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
