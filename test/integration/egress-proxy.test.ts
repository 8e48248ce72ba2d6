// The control plane's egress proxy and the node forwarder, as kube-apiserver and kube-scheduler
// use them for real nodes: CONNECT (kubelets, webhooks) and absolute-form HTTP (an extender
// behind a Service), routed through a forwarder's inbound Unix socket. Real processes and
// sockets on loopback; the forwarder runs without a network namespace here (the namespace only
// changes where its TCP connections land).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNodeProxy, type NodeProxy } from '../harness/node-proxy.js';
import { connectInto } from '../harness/netns-forwarder.js';

const here = path.dirname(fileURLToPath(import.meta.url));
let dir: string;
let forwarder: ChildProcess;
let proxy: NodeProxy;
let target: http.Server;
let targetPort: number;
const inbound = (): string => path.join(dir, 'in.sock');

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'lazarus-egress-'));
  target = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => res.end(JSON.stringify({ method: req.method, url: req.url, body })));
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
  targetPort = (target.address() as net.AddressInfo).port;
  forwarder = spawn(process.execPath, [path.join(here, '../harness/netns-forwarder.js'), JSON.stringify({ listen: [], inbound: inbound() })], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    forwarder.stdout?.once('data', () => resolve());
    forwarder.once('exit', (code) => reject(new Error(`forwarder exited ${String(code)}`)));
  });
  proxy = await startNodeProxy();
  // "10.250.1.2" stands for a node address: it is never dialled, only routed by name.
  proxy.setRouter(async (host, port) => (host === '10.250.1.2' || host === 'ext.lazarus-system.svc' ? connectInto(inbound(), '127.0.0.1', port) : undefined));
});

afterAll(async () => {
  forwarder.kill('SIGTERM');
  await proxy.close();
  await new Promise<void>((r) => target.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

function viaProxy(options: http.RequestOptions, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxy.port, timeout: 5000, ...options }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

it('forwards an absolute-form POST (an extender behind a Service) through the forwarder', async () => {
  const r = await viaProxy({ method: 'POST', path: `http://ext.lazarus-system.svc:${String(targetPort)}/filter`, headers: { 'content-type': 'application/json' } }, '{"Pod":{}}');
  expect(r.status).toBe(200);
  expect(JSON.parse(r.text)).toEqual({ method: 'POST', url: '/filter', body: '{"Pod":{}}' });
});

it('tunnels CONNECT to a node address through the forwarder, bytes both ways', async () => {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'CONNECT', path: `10.250.1.2:${String(targetPort)}` });
    req.on('connect', (res, s) => (res.statusCode === 200 ? resolve(s) : reject(new Error(`CONNECT ${String(res.statusCode)}`))));
    req.on('error', reject);
    req.end();
  });
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (c: Buffer) => { text += c.toString(); if (text.includes('"url":"/x"')) resolve(text); });
    socket.write('GET /x HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n');
  });
  socket.destroy();
  expect(answer).toMatch(/^HTTP\/1.1 200/);
});

it('answers 502 with the reason when the forwarder cannot reach the port', async () => {
  const closed = await new Promise<number>((resolve) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); }); });
  const r = await viaProxy({ method: 'GET', path: `http://ext.lazarus-system.svc:${String(closed)}/` });
  expect(r.status).toBe(502);
  expect(r.text).toMatch(/ECONNREFUSED/);
});
