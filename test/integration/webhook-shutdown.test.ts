/**
 * A rollout of Lazarus itself skips no admission (issue 13, housekeeping): the real `lazarus
 * webhook` executable, its caches synced against a real kube-apiserver, gets SIGTERM. /readyz
 * fails at once (the endpoint goes), while admission requests — on fresh connections and on a
 * kept-alive one, as the API server sends them — keep being answered for the whole drain period;
 * then the process exits 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { installCrds } from '../harness/apply.js';
import { freePort } from '../harness/processes.js';
import { generateMaterial, systemEntropy } from '../../certs/generate.js';

const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');
const DRAIN_MS = 3_000;
interface Review { request: { uid: string }; response?: { uid: string; allowed: boolean } }
const review = JSON.parse(readFileSync('test/fixtures/admission-review-bare.json', 'utf8')) as Review;

let cp: ControlPlane;
let dir: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  cp = await startControlPlane({ log: () => undefined });
  await installCrds(cp.client);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lazarus-webhook-drain-'));
}, 120_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await cp?.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

function getStatus(port: number, urlPath: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    }).on('error', reject);
  });
}

function admit(port: number, ca: string, agent: https.Agent | false, uid: string): Promise<{ ok: boolean; detail: string }> {
  const body = JSON.stringify({ ...review, request: { ...review.request, uid } });
  return new Promise((resolve) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca, agent, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => {
        const answer = JSON.parse(text) as Review;
        resolve({ ok: res.statusCode === 200 && answer.response?.uid === uid && answer.response.allowed, detail: `${res.statusCode ?? 0} ${text.slice(0, 200)}` });
      });
    });
    req.on('error', (err) => resolve({ ok: false, detail: err.message }));
    req.end(body);
  });
}

it('after SIGTERM, /readyz fails at once while admissions keep being answered for the drain period, then exit 0', async () => {
  const material = await generateMaterial({ service: 'lazarus-webhook', namespace: 'lazarus-system', ips: ['127.0.0.1'] }, { caLifetimeMs: 3_600_000, certLifetimeMs: 3_600_000 }, systemEntropy);
  await fs.writeFile(path.join(dir, 'tls.crt'), material.cert);
  await fs.writeFile(path.join(dir, 'tls.key'), material.key);
  const proc = spawn(process.execPath, [MAIN, 'webhook', '--port=0', `--metrics-port=${await freePort()}`, '--bind-address=127.0.0.1', `--kubeconfig=${cp.kubeconfigPath}`,
    `--tls-cert-file=${path.join(dir, 'tls.crt')}`, `--tls-key-file=${path.join(dir, 'tls.key')}`, `--shutdown-drain=${DRAIN_MS}ms`], { stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  let output = '';
  proc.stderr.on('data', (c: Buffer) => { output += c.toString(); });
  proc.stdout.on('data', (c: Buffer) => { output += c.toString(); });
  const ports = await new Promise<{ port: number; metricsPort: number }>((resolve, reject) => {
    createInterface({ input: proc.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number; metricsPort?: number };
        if (entry.msg === 'webhook serving' && entry.port && entry.metricsPort) resolve({ port: entry.port, metricsPort: entry.metricsPort });
      } catch { /* not JSON */ }
    });
    proc.once('exit', (code) => reject(new Error(`webhook exited early with ${String(code)}: ${output.slice(-3000)}`)));
    setTimeout(() => reject(new Error(`no 'webhook serving' line: ${output.slice(-3000)}`)), 20_000).unref();
  });
  const deadline = Date.now() + 30_000;
  while ((await getStatus(ports.metricsPort, '/readyz')).status !== 200) {
    if (Date.now() > deadline) throw new Error(`the webhook never became ready: ${(await getStatus(ports.metricsPort, '/readyz')).text}\n${output.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 1 });
  expect(await admit(ports.port, material.ca, keepAlive, 'before')).toMatchObject({ ok: true });

  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  const termAt = Date.now();
  proc.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 100));
  const ready = await getStatus(ports.metricsPort, '/readyz');
  expect({ status: ready.status, text: ready.text }).toEqual({ status: 503, text: expect.stringMatching(/^not ready: shutting down/) });

  const outcomes: Array<{ at: number; ok: boolean; detail: string }> = [];
  for (let i = 0; Date.now() - termAt < DRAIN_MS - 300; i++) {
    const o = await admit(ports.port, material.ca, i % 2 === 0 ? keepAlive : false, `during-${i}`);
    outcomes.push({ at: Date.now() - termAt, ...o });
    await new Promise((r) => setTimeout(r, 50));
  }
  keepAlive.destroy();
  expect(outcomes.filter((o) => !o.ok)).toEqual([]);
  expect(outcomes.length).toBeGreaterThan(10);
  expect(outcomes[outcomes.length - 1]?.at).toBeGreaterThan(DRAIN_MS - 600);
  expect(await exited).toBe(0);
  const stoppedAfter = Date.now() - termAt;
  expect(stoppedAfter).toBeGreaterThanOrEqual(DRAIN_MS);
  console.log(`webhook drain: ${outcomes.length} admissions answered in the ${DRAIN_MS} ms after SIGTERM, 0 failed; exited after ${stoppedAfter} ms`);
}, 60_000);
