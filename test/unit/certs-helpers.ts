/** Real TLS servers and clients for the certificate tests (no mocks: handshakes are the assertion). */
import crypto from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { generateKey, type Entropy } from '../../certs/generate.js';

export interface TestServer { server: https.Server; port: number; close(): Promise<void> }

/** An HTTPS server answering 200 "ok" with the given pair. */
export async function startHttps(pair: { cert: string; key: string }): Promise<TestServer> {
  const server = https.createServer({ cert: pair.cert, key: pair.key, keepAliveTimeout: 60_000 }, (_req, res) => {
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server, port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export type Handshake = { ok: true; serial: string } | { ok: false; error: string };

/** Connects trusting only `ca`; `servername` (a DNS name) or the IP `host` is what the certificate must match. */
export function handshake(port: number, ca: string, servername?: string, host = '127.0.0.1'): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port, ca, ...(servername ? { servername } : {}) }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve({ ok: true, serial });
    });
    socket.on('error', (err) => resolve({ ok: false, error: err.message }));
  });
}

export function serialOf(pem: string): string {
  return new crypto.X509Certificate(pem).serialNumber;
}

/** Real keys and randomness, a clock the test controls. */
export function testEntropy(clock: { now: number }): Entropy {
  return { now: () => clock.now, randomBytes: (n) => crypto.randomBytes(n), generateKey };
}

/** Real keys and randomness, the real clock (for tests that run against real timers). */
export function liveEntropy(): Entropy {
  return { now: () => Date.now(), randomBytes: (n) => crypto.randomBytes(n), generateKey };
}
