import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { UsageError } from '../../cli/flags.js';
import { parseConfig, runCerts, type CertsConfig } from '../../certs/command.js';
import { CERT_MANAGER_ANNOTATION, decodeSecret } from '../../certs/manager.js';
import { MemoryStore } from '../../certs/store.js';
import { silentLogger } from '../../runtime/log.js';
import { handshake, liveEntropy, serialOf, startHttps } from './certs-helpers.js';

const run = promisify(execFile);
const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');
let dir: string;
beforeEach(async () => { dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lazarus-certs-cmd-')); });
afterEach(() => fs.rm(dir, { recursive: true, force: true }));

describe('lazarus certs (the real executable)', () => {
  it('offline: writes ca.crt, tls.crt and a private tls.key that a client trusting ca.crt accepts', async () => {
    const out = path.join(dir, 'out');
    await run(process.execPath, [main, 'certs', '--out-dir', out, '--service', 'wh', '--namespace', 'lz', '--dns', 'wh.example.test', '--ip', '127.0.0.1', '--cert-lifetime', '1h', '--ca-lifetime', '2h']);
    const [ca, cert, key] = await Promise.all(['ca.crt', 'tls.crt', 'tls.key'].map((f) => fs.readFile(path.join(out, f), 'utf8')));
    expect(((await fs.stat(path.join(out, 'tls.key'))).mode & 0o777).toString(8)).toBe('600');
    const x = new crypto.X509Certificate(cert ?? '');
    expect(Date.parse(x.validTo) - Date.now()).toBeLessThan(3_600_000 + 5_000);
    const s = await startHttps({ cert: cert ?? '', key: key ?? '' });
    try {
      for (const name of ['wh.lz.svc', 'wh.example.test', undefined]) {
        expect(await handshake(s.port, ca ?? '', name)).toMatchObject({ ok: true });
      }
    } finally { await s.close(); }
  });

  it.each([
    ['no flags', [], /--service is required.*--namespace is required.*--out-dir/],
    ['a bad IP and lifetime', ['--out-dir', 'x', '--service', 'wh', '--namespace', 'lz', '--ip', 'nope', '--cert-lifetime', 'soon'], /ip "nope" is not an IP address.*--cert-lifetime: "soon"/],
  ])('exits 2 with one line on %s', async (_what, args, message) => {
    const result = await run(process.execPath, [main, 'certs', ...args]).then(() => ({ code: 0, stderr: '' }), (err: { code: number; stderr: string }) => err);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(message);
  });
});

describe('parseConfig', () => {
  it.each([
    ['defaults', ['--out-dir', 'd', '--service', 's', '--namespace', 'n'], { caLifetimeMs: 8760 * 3_600_000, certLifetimeMs: 2160 * 3_600_000, outDir: 'd' }],
    ['cluster mode: the Secret namespace defaults to --namespace', ['--service', 's', '--namespace', 'n', '--secret', 'tls', '--webhook-config', 'wc'], { secret: { name: 'tls', namespace: 'n' }, webhookConfig: 'wc' }],
    ['an explicit Secret namespace', ['--service', 's', '--namespace', 'n', '--secret', 'tls', '--secret-namespace', 'other'], { secret: { name: 'tls', namespace: 'other' } }],
  ])('%s', (_what, argv, expected) => {
    expect(parseConfig(argv, {})).toMatchObject(expected);
  });

  it.each([
    ['a cert outliving its CA', ['--out-dir', 'd', '--service', 's', '--namespace', 'n', '--ca-lifetime', '1h', '--cert-lifetime', '2h'], /must not exceed/],
    ['--webhook-config without --secret', ['--out-dir', 'd', '--service', 's', '--namespace', 'n', '--webhook-config', 'w'], /needs --secret/],
  ])('rejects %s', (_what, argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(UsageError);
    expect(() => parseConfig(argv, {})).toThrow(message);
  });
});

describe('runCerts in cluster mode', () => {
  const cfg = (extra: Partial<CertsConfig> = {}): CertsConfig => ({
    identity: { service: 'wh', namespace: 'lz' }, caLifetimeMs: 3_600_000, certLifetimeMs: 1_800_000, logLevel: 'info',
    secret: { namespace: 'lz', name: 'wh-tls' }, webhookConfig: 'lazarus', ...extra,
  });
  const deps = (store: MemoryStore) => ({ logger: silentLogger(), entropy: liveEntropy(), openStore: async () => store });

  it('creates the Secret, injects the caBundle into every webhook, and reuses both on a second run', async () => {
    const store = new MemoryStore();
    store.putWebhookConfig({ metadata: { name: 'lazarus' }, webhooks: [{ name: 'a', clientConfig: {} }, { name: 'b', clientConfig: { caBundle: 'b2xk' } }] });
    expect(await runCerts(cfg({ outDir: path.join(dir, 'o') }), deps(store))).toBe(0);
    const first = decodeSecret(await store.getSecret('lz', 'wh-tls'));
    const b64 = Buffer.from(first.ca ?? '').toString('base64');
    expect((await store.getWebhookConfig('lazarus'))?.webhooks?.map((w) => w.clientConfig?.caBundle)).toEqual([b64, b64]);
    expect(await fs.readFile(path.join(dir, 'o', 'tls.crt'), 'utf8')).toBe(first.cert);
    const writes = store.writes;
    expect(await runCerts(cfg(), deps(store))).toBe(0);
    expect(store.writes).toBe(writes); // nothing rewritten
    expect(serialOf(decodeSecret(await store.getSecret('lz', 'wh-tls')).cert ?? '')).toBe(serialOf(first.cert ?? ''));
  });

  it('leaves a cert-manager configuration alone: no Secret, no caBundle', async () => {
    const store = new MemoryStore();
    store.putWebhookConfig({ metadata: { name: 'lazarus', annotations: { [CERT_MANAGER_ANNOTATION]: 'lz/wh' } }, webhooks: [{ name: 'a', clientConfig: {} }] });
    expect(await runCerts(cfg(), deps(store))).toBe(0);
    expect(store.secretCount()).toBe(0);
    expect(store.writes).toBe(0);
  });

  it('fails when the webhook configuration does not exist', async () => {
    expect(await runCerts(cfg(), deps(new MemoryStore()))).toBe(1);
  });
});
