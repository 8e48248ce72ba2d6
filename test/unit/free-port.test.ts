/**
 * test/harness/processes.ts freePort: ports for the control plane's servers come from below the
 * kernel's ephemeral range, which outgoing connections draw from (a CI run lost kube-apiserver's
 * port to one between the check and the bind).
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { freePort } from '../harness/processes.js';

it('gives distinct listenable ports below net.ipv4.ip_local_port_range', async () => {
  const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
  for (const port of ports) expect(port >= 10_000 && port < low).toBe(true);
  expect(new Set(ports).size).toBe(ports.length);
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(ports[0], '127.0.0.1', resolve); });
  await new Promise((resolve) => server.close(resolve));
});
