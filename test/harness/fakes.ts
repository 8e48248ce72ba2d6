/**
 * Small servers that stand in for the parts the real control plane calls out to, recording
 * exactly what it sent: a scheduler extender, an admission webhook, a kubelet.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createAuthority, issueCertificate, type Authority } from './pki.js';

export interface Recorded { method: string; path: string; headers: http.IncomingHttpHeaders; body: string; clientCN?: string }

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function listen(server: http.Server | https.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function closer(server: http.Server | https.Server): () => Promise<void> {
  return () => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

export interface RecordingServer {
  readonly port: number;
  readonly url: string;
  readonly calls: Recorded[];
  close(): Promise<void>;
}

// ---- scheduler extender ------------------------------------------------------------------

export interface ExtenderArgs {
  Pod: { metadata: { name?: string; namespace?: string; annotations?: Record<string, string> } };
  Nodes?: { items: Array<{ metadata: { name: string } }> } | null;
  NodeNames?: string[] | null;
}

/** Per call: which nodes fail (name → reason). Default: none. */
export type ExtenderFilter = (args: ExtenderArgs, prefix: string) => Record<string, string>;

/**
 * An HTTP extender serving `/<prefix>/filter` and `/<prefix>/prioritize` for any prefix, so one
 * server can play several extenders (e.g. one per nodeCacheCapable mode). Answers in the mode
 * it was asked in: NodeNames when the args carry NodeNames, else Nodes.
 */
export async function startRecordingExtender(filter: ExtenderFilter = () => ({})): Promise<RecordingServer> {
  const calls: Recorded[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      calls.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
      const [, prefix = '', verb = ''] = (req.url ?? '').split('/');
      const args = JSON.parse(body) as ExtenderArgs;
      const names = args.NodeNames ?? args.Nodes?.items.map((n) => n.metadata.name) ?? [];
      let answer: unknown;
      if (verb === 'filter') {
        const failed = filter(args, prefix);
        const keep = (n: string): boolean => !(n in failed);
        answer = args.NodeNames
          ? { NodeNames: names.filter(keep), FailedNodes: failed, FailedAndUnresolvableNodes: {}, Error: '' }
          : { Nodes: { ...args.Nodes, items: (args.Nodes?.items ?? []).filter((n) => keep(n.metadata.name)) }, NodeNames: null, FailedNodes: failed, FailedAndUnresolvableNodes: {}, Error: '' };
      } else if (verb === 'prioritize') {
        answer = names.map((Host) => ({ Host, Score: 0 }));
      } else {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    })().catch((err: unknown) => { res.writeHead(500).end(String(err)); });
  });
  const port = await listen(server);
  return { port, url: `http://127.0.0.1:${port}`, calls, close: closer(server) };
}

// ---- admission webhook -------------------------------------------------------------------

export interface RecordingWebhook extends RecordingServer {
  /** PEM of the CA that signed the serving certificate (base64 it for caBundle). */
  readonly caPem: string;
  readonly ca: Authority;
}

/** An HTTPS admission webhook on 127.0.0.1 that records every AdmissionReview and allows it unchanged. */
export async function startRecordingWebhook(): Promise<RecordingWebhook> {
  const ca = await createAuthority('recording-webhook-ca');
  const serving = await issueCertificate(ca, { commonName: '127.0.0.1', ips: ['127.0.0.1'], dnsNames: ['localhost'], usage: 'server' });
  const calls: Recorded[] = [];
  const server = https.createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    void (async () => {
      const body = await readBody(req);
      calls.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
      const review = JSON.parse(body) as { apiVersion?: string; request?: { uid?: string } };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        apiVersion: review.apiVersion ?? 'admission.k8s.io/v1', kind: 'AdmissionReview',
        response: { uid: review.request?.uid ?? '', allowed: true },
      }));
    })().catch((err: unknown) => { res.writeHead(500).end(String(err)); });
  });
  const port = await listen(server);
  return { port, url: `https://127.0.0.1:${port}`, calls, caPem: ca.certPem, ca, close: closer(server) };
}

// ---- kubelet -----------------------------------------------------------------------------

/**
 * An HTTPS "kubelet" for the API server's node proxy (/api/v1/nodes/NAME/proxy/...): serving
 * certificate from `ca`, asks for a client certificate and records its CN. `answer` decides the
 * reply; default 200 "ok".
 */
export async function startFakeKubelet(ca: Authority, answer: (call: Recorded) => { status: number; body: string } = () => ({ status: 200, body: 'ok' })): Promise<RecordingServer> {
  const serving = await issueCertificate(ca, { commonName: 'fake-kubelet', ips: ['127.0.0.1'], usage: 'server' });
  const calls: Recorded[] = [];
  const server = https.createServer({ cert: serving.certPem, key: serving.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    void (async () => {
      const body = await readBody(req);
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      const cn = peer.subject?.CN;
      const call: Recorded = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, ...(typeof cn === 'string' ? { clientCN: cn } : {}) };
      calls.push(call);
      const { status, body: out } = answer(call);
      res.writeHead(status, { 'content-type': 'text/plain' }).end(out);
    })().catch((err: unknown) => { res.writeHead(500).end(String(err)); });
  });
  const port = await listen(server);
  return { port, url: `https://127.0.0.1:${port}`, calls, close: closer(server) };
}
