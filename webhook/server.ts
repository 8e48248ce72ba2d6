/**
 * The webhook's HTTPS server. POST /mutate goes straight to a lean handler on node:https
 * (express' middleware costs ~3x throughput on this path, measured in bench/); everything
 * else — /healthz, /readyz, /metrics — is an express app.
 */
import https from 'node:https';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type tls from 'node:tls';
import type { Express } from 'express';
import { serveAdmission } from './admission.js';
import type { HttpAnswer } from './handler.js';

/** Where the ValidatingWebhookConfiguration sends `pods/eviction` (manifests/base/webhook.yaml). */
export const EVICTION_PATH = '/validate-eviction';

export interface TlsMaterial { cert: string | Buffer; key: string | Buffer }

/**
 * A certificate that changes while the server runs (certs/ CertSource fits): the server starts
 * with the current pair and `attach` swaps it with setSecureContext on every rotation.
 */
export interface TlsSource {
  secureContextOptions(): TlsMaterial;
  /** Returns a function that stops the updates. */
  attach(server: tls.Server): () => void;
}

function isSource(t: TlsMaterial | TlsSource): t is TlsSource {
  return typeof (t as Partial<TlsSource>).attach === 'function';
}

export interface WebhookServerOptions {
  port: number;
  host?: string;
  /** Fixed material, or a source that rotates it (open connections keep theirs, new handshakes get the new one). */
  tls: TlsMaterial | TlsSource;
  handle: (body: string) => HttpAnswer;
  /** POST /validate-eviction (webhook/eviction-handler.ts); without it the path is not served. */
  handleEviction?: (body: string) => Promise<HttpAnswer>;
  ops: Express;
  /** How long a client may take to send its body; default BODY_TIMEOUT_MS. */
  bodyTimeoutMs?: number;
  /** True while shutting down: answers carry `Connection: close` so kept-alive clients move to another replica. */
  draining?: () => boolean;
}

export interface RunningServer {
  server: https.Server | http.Server;
  port: number;
  /** Stops accepting, lets requests in flight finish for up to `graceMs`, then drops what is left. */
  close(graceMs?: number): Promise<void>;
}

/**
 * The API server gives up on a webhook call after its timeoutSeconds (3 s in manifests/), so
 * waiting longer than that for a request in flight helps nobody.
 */
export const CLOSE_GRACE_MS = 3_000;

export function listen(server: https.Server | http.Server, port: number, host: string, onClose: () => void = () => undefined): Promise<RunningServer> {
  // Raw sockets, including ones still in the TLS handshake, which closeIdleConnections does not see.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        close: (graceMs = CLOSE_GRACE_MS) => new Promise<void>((done) => {
          onClose();
          const timer = setTimeout(() => { for (const s of sockets) s.destroy(); }, graceMs);
          server.close(() => { clearTimeout(timer); done(); });
          server.closeIdleConnections();
        }),
      });
    });
  });
}

export async function startWebhookServer(options: WebhookServerOptions): Promise<RunningServer> {
  const t = options.tls;
  const source = isSource(t) ? t : undefined;
  const initial = isSource(t) ? t.secureContextOptions() : t;
  const server = https.createServer({ cert: initial.cert, key: initial.key, keepAliveTimeout: 65_000 }, (req, res) => {
    if (options.draining?.()) res.setHeader('connection', 'close');
    const url = req.url ?? '';
    const handleEviction = options.handleEviction;
    if (url === '/mutate' || url.startsWith('/mutate?')) serveAdmission(req, res, options.handle, options.bodyTimeoutMs);
    else if (handleEviction && (url === EVICTION_PATH || url.startsWith(`${EVICTION_PATH}?`))) serveAdmission(req, res, handleEviction, options.bodyTimeoutMs);
    else options.ops(req, res);
  });
  server.headersTimeout = 15_000;
  server.requestTimeout = 30_000;
  const detach = source ? source.attach(server) : () => undefined;
  try {
    return await listen(server, options.port, options.host ?? '0.0.0.0', detach);
  } catch (err) {
    detach();
    throw err;
  }
}

/** Plain-HTTP /healthz, /readyz and /metrics for kubelet probes and Prometheus. */
export function startOpsServer(ops: Express, port: number, host = '0.0.0.0'): Promise<RunningServer> {
  return listen(http.createServer(ops), port, host);
}
