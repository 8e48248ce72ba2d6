/**
 * The webhook's HTTPS server. POST /mutate goes straight to a lean handler on node:https
 * (express' middleware costs ~3x throughput on this path, measured in bench/); everything
 * else — /healthz, /readyz, /metrics — is an express app.
 */
import https from 'node:https';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { serveAdmission } from './admission.js';
import type { HttpAnswer } from './handler.js';

export interface TlsMaterial { cert: string | Buffer; key: string | Buffer }

export interface WebhookServerOptions {
  port: number;
  host?: string;
  tls: TlsMaterial;
  handle: (body: string) => HttpAnswer;
  ops: Express;
  /** How long a client may take to send its body; default BODY_TIMEOUT_MS. */
  bodyTimeoutMs?: number;
}

export interface RunningServer {
  server: https.Server | http.Server;
  port: number;
  close(graceMs?: number): Promise<void>;
}

export function listen(server: https.Server | http.Server, port: number, host: string): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        // In-flight requests get a short grace period; idle keep-alive connections (the API
        // server keeps several) are closed at once, stragglers after the grace period.
        close: (graceMs = 2_000) => new Promise<void>((done) => {
          server.close(() => { clearTimeout(timer); done(); });
          server.closeIdleConnections();
          const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        }),
      });
    });
  });
}

export function startWebhookServer(options: WebhookServerOptions): Promise<RunningServer> {
  const server = https.createServer({ cert: options.tls.cert, key: options.tls.key, keepAliveTimeout: 65_000 }, (req, res) => {
    const url = req.url ?? '';
    if (url === '/mutate' || url.startsWith('/mutate?')) serveAdmission(req, res, options.handle, options.bodyTimeoutMs);
    else options.ops(req, res);
  });
  server.headersTimeout = 15_000;
  server.requestTimeout = 30_000;
  return listen(server, options.port, options.host ?? '0.0.0.0');
}

/** Plain-HTTP /healthz, /readyz and /metrics for kubelet probes and Prometheus. */
export function startOpsServer(ops: Express, port: number, host = '0.0.0.0'): Promise<RunningServer> {
  return listen(http.createServer(ops), port, host);
}
