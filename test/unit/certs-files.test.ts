/** Files mode (cert-manager or any mounted Secret): reload on change, never serve without a certificate. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createCertSource, type CertSource } from '../../certs/index.js';
import { generateMaterial, type Material } from '../../certs/generate.js';
import { silentLogger } from '../../runtime/log.js';
import { handshake, liveEntropy, serialOf, startHttps } from './certs-helpers.js';

const H = 3_600_000;
const identity = { service: 'wh', namespace: 'lz' };
let dir: string;
let m1: Material;
let m2: Material;

beforeAll(async () => {
  [m1, m2] = await Promise.all([
    generateMaterial(identity, { caLifetimeMs: H, certLifetimeMs: H }, liveEntropy()),
    generateMaterial(identity, { caLifetimeMs: H, certLifetimeMs: H }, liveEntropy()),
  ]);
});
beforeEach(async () => { dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lazarus-certs-files-')); });
afterEach(() => fs.rm(dir, { recursive: true, force: true }));

/** Writes the pair the way the kubelet updates a Secret volume: a new data dir, then a symlink swap. */
async function kubeletWrite(pair: { cert: string; key: string }, generation: number): Promise<void> {
  const data = path.join(dir, `..data-${generation}`);
  await fs.mkdir(data);
  await fs.writeFile(path.join(data, 'tls.crt'), pair.cert);
  await fs.writeFile(path.join(data, 'tls.key'), pair.key);
  await fs.symlink(path.basename(data), path.join(dir, '..data_tmp'));
  await fs.rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const f of ['tls.crt', 'tls.key']) {
    await fs.symlink(path.join('..data', f), path.join(dir, `${f}.tmp`)).catch(() => undefined);
    await fs.rename(path.join(dir, `${f}.tmp`), path.join(dir, f)).catch(() => undefined);
  }
}

function filesSource(pollIntervalMs: number, watch = true): Promise<CertSource> {
  return createCertSource({ mode: 'cert-manager', certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key'), pollIntervalMs, watch, identity }, { logger: silentLogger(), entropy: liveEntropy() });
}

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

it.each([
  ['fs.watch (poll far away)', 60_000, true],
  ['the periodic stat alone (no watch)', 100, false],
])('reloads a symlink-swapped pair via %s and the server presents it', async (_how, poll, watch) => {
  await kubeletWrite(m1, 1);
  const source = await filesSource(poll, watch);
  const server = await startHttps(source.secureContextOptions());
  const detach = source.attach(server.server);
  try {
    expect(await handshake(server.port, m1.ca, 'wh.lz.svc')).toEqual({ ok: true, serial: serialOf(m1.cert) });
    await kubeletWrite(m2, 2);
    await waitFor(() => source.secureContextOptions().cert === m2.cert);
    expect(await handshake(server.port, m2.ca, 'wh.lz.svc')).toEqual({ ok: true, serial: serialOf(m2.cert) });
  } finally {
    detach();
    await server.close();
    await source.stop();
  }
});

it('keeps serving the last good pair when the files become mismatched, and takes the next good pair', async () => {
  await kubeletWrite(m1, 1);
  const source = await filesSource(50);
  try {
    await kubeletWrite({ cert: m2.cert, key: m1.key }, 2); // half-rotated: cert and key disagree
    await new Promise((r) => setTimeout(r, 300));
    expect(source.secureContextOptions().cert).toBe(m1.cert);
    await kubeletWrite(m2, 3);
    await waitFor(() => source.secureContextOptions().cert === m2.cert);
    expect(source.secureContextOptions().key).toBe(m2.key);
  } finally { await source.stop(); }
});

it.each([
  ['missing files', async () => undefined],
  ['garbage files', async () => kubeletWrite({ cert: 'garbage', key: 'garbage' }, 1)],
  ['a mismatched pair', async () => kubeletWrite({ cert: m1.cert, key: m2.key }, 1)],
])('starts with %s on a throw-away certificate (never none), then serves the real pair once it appears', async (_what, setup) => {
  await setup();
  const source = await filesSource(50);
  const server = await startHttps(source.secureContextOptions());
  const detach = source.attach(server.server);
  try {
    expect(source.ready()).toBe(false);
    expect(source.secureContextOptions().cert).toMatch(/BEGIN CERTIFICATE/);
    expect((await handshake(server.port, m1.ca, 'wh.lz.svc')).ok).toBe(false);
    await kubeletWrite(m1, 9);
    await waitFor(() => source.ready());
    expect(await handshake(server.port, m1.ca, 'wh.lz.svc')).toEqual({ ok: true, serial: serialOf(m1.cert) });
  } finally {
    detach();
    await server.close();
    await source.stop();
  }
});

it('stop() ends the watcher and the poll loop', async () => {
  await kubeletWrite(m1, 1);
  const controller = new AbortController();
  const source = await createCertSource({ mode: 'files', certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key'), pollIntervalMs: 50 }, { logger: silentLogger(), signal: controller.signal });
  controller.abort();
  await source.stop(); // resolves: the loop saw the abort
  await kubeletWrite(m2, 2);
  await new Promise((r) => setTimeout(r, 200));
  expect(source.secureContextOptions().cert).toBe(m1.cert);
});
