/**
 * Child process for bench/webhook.ts: `lazarus` serves the real webhook with its caches loaded
 * with 30,000 Checkpoints, 50,000 ReplicaSets and 5,000 Nodes (`lazarus-fresh`: the same with
 * decision reuse off, so every admission is decided afresh); `floor` is a bare node:https
 * server that reads and JSON.parses the body and answers a constant AdmissionReview of the
 * same size; `floor-batched` does the same through the webhook's own transport (webhook/server.ts),
 * which answers a turn's bodies together. Prints `port=N` when listening.
 */
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { createAdmissionHandler } from '../webhook/handler.js';
import { startWebhookServer } from '../webhook/server.js';
import { opsApp } from '../runtime/ops-app.js';
import { silentLogger } from '../runtime/log.js';
import { REGISTRY } from '../test/support/builders.js';
import { benchCaches } from './webhook-caches.js';

const [mode, tlsDir, answerSize] = process.argv.slice(2);
// A clean exit on SIGTERM lets --cpu-prof write its profile.
process.on('SIGTERM', () => process.exit(0));
const tls = { cert: readFileSync(`${tlsDir}/tls.crt`), key: readFileSync(`${tlsDir}/tls.key`) };

/** A constant AdmissionReview of `size` bytes. */
function constantAnswer(size: number): string {
  const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'x', allowed: true, pad: '' } });
  return body.replace('"pad":""', `"pad":"${'x'.repeat(Math.max(0, size - body.length))}"`);
}

if (mode === 'floor-batched') {
  const constant = constantAnswer(Number(answerSize));
  const handle = (body: string): { status: number; body: string } => { JSON.parse(body); return { status: 200, body: constant }; };
  const running = await startWebhookServer({ port: 0, host: '127.0.0.1', tls, handle, ops: opsApp({ registry: new Registry(), notReadyReason: () => undefined }) });
  console.log(`port=${running.port}`);
} else if (mode === 'floor') {
  const constant = constantAnswer(Number(answerSize));
  const server = https.createServer({ ...tls, keepAliveTimeout: 65_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      JSON.parse(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(constant) });
      res.end(constant);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    console.log(`port=${typeof address === 'object' && address ? address.port : 0}`);
  });
} else {
  const log = silentLogger();
  const cache = benchCaches(log);
  const registry = new Registry();
  const handle = createAdmissionHandler({ view: cache, ...(mode === 'lazarus-fresh' ? {} : { generation: (namespace: string) => cache.generation(namespace) }), notReady: () => cache.notSynced(), excludedNamespaces: new Set(['kube-system']), defaultRegistry: REGISTRY, clock: Date.now, log, registry });
  const running = await startWebhookServer({ port: 0, host: '127.0.0.1', tls, handle, ops: opsApp({ registry, notReadyReason: () => undefined }) });
  console.log(`port=${running.port}`);
}
