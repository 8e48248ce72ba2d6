/**
 * A stand-in for the kubelet's checkpoint API (KEP-2008): `POST /checkpoint/{ns}/{pod}/{container}`
 * over HTTPS, answering `{"items":[path]}` like the real one, and writing a (small) archive there.
 * The API server's node proxy reaches it through the fake Node's InternalIP and kubelet port.
 */
import https from 'node:https';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createAuthority, issueCertificate } from '../harness/pki.js';

export interface CheckpointHit { at: number; namespace: string; pod: string; container: string; timeout: string | null; status: number; path?: string; clientCn?: string; /** When the answer was sent (after `delayMs`). */ doneAt?: number }

export interface FakeKubelet {
  readonly port: number;
  readonly dir: string;
  readonly hits: CheckpointHit[];
  /** Status to answer for a pod (default 200). */
  answer: (namespace: string, pod: string, container: string) => number;
  /** Called after a 200 (e.g. to create the Checkpoint object as the agent would). */
  onCheckpoint: ((hit: CheckpointHit) => Promise<void>) | undefined;
  /** How long a successful checkpoint takes before it is answered (default 0): a runtime's dump. */
  delayMs: number;
  close(): Promise<void>;
}

export async function startFakeKubelet(): Promise<FakeKubelet> {
  const ca = await createAuthority('fake-kubelet-ca');
  const serving = await issueCertificate(ca, { commonName: 'fake-kubelet', usage: 'server', ips: ['127.0.0.1'], dnsNames: ['localhost'] });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lazarus-kubelet-'));
  const hits: CheckpointHit[] = [];
  const kubelet: Omit<FakeKubelet, 'port' | 'close'> = { dir, hits, answer: () => 200, onCheckpoint: undefined, delayMs: 0 };
  const server = https.createServer({ cert: serving.certPem, key: serving.keyPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://kubelet');
    const m = /^\/checkpoint\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (req.method !== 'POST' || !m) { res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found'); return; }
    const [, namespace = '', pod = '', container = ''] = m.map(decodeURIComponent);
    const status = kubelet.answer(namespace, pod, container);
    const peer = (req.socket as TLSSocket).getPeerCertificate?.();
    const hit: CheckpointHit = { at: Date.now(), namespace, pod, container, timeout: url.searchParams.get('timeout'), status, ...(peer?.subject?.CN ? { clientCn: String(peer.subject.CN) } : {}) };
    hits.push(hit);
    if (status !== 200) {
      res.writeHead(status, { 'content-type': 'text/plain' }).end(`checkpointing of ${namespace}/${pod}/${container} failed: rpc error: code = Unknown desc = criu failed: type NOTIFY errno 0`);
      return;
    }
    const file = path.join(dir, `checkpoint-${pod}_${namespace}-${container}-${new Date(hit.at).toISOString().replace(/[:.]/g, '')}.tar`);
    hit.path = file;
    void new Promise((resolve) => setTimeout(resolve, kubelet.delayMs))
      .then(() => writeFile(file, 'fake checkpoint archive\n'))
      .then(() => kubelet.onCheckpoint?.(hit))
      .then(() => { hit.doneAt = Date.now(); })
      .then(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items: [file] })))
      .catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  // Raw sockets too: one still in its TLS handshake (the API server dialling through the proxy
  // as the test ends) is unknown to closeAllConnections and would hold close() for minutes.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(kubelet, {
    port,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      await rm(dir, { recursive: true, force: true });
    },
  });
}
