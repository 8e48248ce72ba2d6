/**
 * `lazarus webhook` configuration: where the serving certificate comes from (files or secret
 * mode, exactly one), and the real executable hot-reloading rewritten certificate files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../../cli/flags.js';
import { generateMaterial } from '../../certs/generate.js';
import { MemoryStore } from '../../certs/store.js';
import { certSourceOptions, notReadyReason, parseWebhookConfig, type TlsConfig } from '../../webhook/command.js';
import { Drain } from '../../runtime/shutdown.js';
import { handshake, liveEntropy, serialOf } from './certs-helpers.js';

const problemsOf = (argv: string[], env: NodeJS.ProcessEnv = {}): readonly string[] => {
  try {
    parseWebhookConfig(argv, env);
  } catch (err) {
    if (err instanceof UsageError) return err.problems;
    throw err;
  }
  return [];
};

const SECRET_ARGS = ['--cert-secret=lazarus-webhook-tls', '--webhook-config=lazarus', '--service=lazarus-webhook'];

describe('parseWebhookConfig: the certificate source', () => {
  it.each<[string, string[], NodeJS.ProcessEnv, Partial<TlsConfig>]>([
    ['files mode', ['--tls-cert-file=/c/tls.crt', '--tls-key-file=/c/tls.key'], {}, { mode: 'files', certFile: '/c/tls.crt', keyFile: '/c/tls.key' }],
    ['files mode from the environment', [], { LAZARUS_TLS_CERT_FILE: '/e/c', LAZARUS_TLS_KEY_FILE: '/e/k' }, { mode: 'files', certFile: '/e/c', keyFile: '/e/k' }],
    ['secret mode, as manifests/base runs it: the Secret lives in the pod\'s namespace, 90-day certificates, cert-manager files under /tls', SECRET_ARGS, { POD_NAMESPACE: 'lz' }, {
      mode: 'secret', secretName: 'lazarus-webhook-tls', secretNamespace: 'lz', webhookConfig: 'lazarus',
      identity: { service: 'lazarus-webhook', namespace: 'lz', dnsNames: [], ips: [] },
      caLifetimeMs: 8760 * 3_600_000, certLifetimeMs: 2160 * 3_600_000, checkIntervalMs: 30_000,
      certManagerFiles: { certFile: '/tls/tls.crt', keyFile: '/tls/tls.key' },
    }],
    ['secret mode with every option', [...SECRET_ARGS, '--cert-secret-namespace=certs', '--cert-ip=127.0.0.1', '--cert-dns=wh.example.test', '--ca-lifetime=20s', '--cert-lifetime=6s', '--cert-check-interval=500ms', '--cert-manager-dir=/mnt/cm'], {}, {
      mode: 'secret', secretNamespace: 'certs', identity: { service: 'lazarus-webhook', namespace: 'lazarus-system', dnsNames: ['wh.example.test'], ips: ['127.0.0.1'] },
      caLifetimeMs: 20_000, certLifetimeMs: 6_000, checkIntervalMs: 500, certManagerFiles: { certFile: '/mnt/cm/tls.crt', keyFile: '/mnt/cm/tls.key' },
    }],
  ])('%s', (_what, argv, env, expected) => {
    const config = parseWebhookConfig(argv, env);
    expect(config.tls).toMatchObject(expected);
    expect(Object.isFrozen(config) && Object.isFrozen(config.tls)).toBe(true);
  });

  it.each<[string, string[], RegExp[]]>([
    ['no certificate at all', [], [/no serving certificate: give --tls-cert-file and --tls-key-file, or --cert-secret/]],
    ['both modes', ['--tls-cert-file=c', '--tls-key-file=k', ...SECRET_ARGS], [/choose one source for the serving certificate.*not both/]],
    ['half a file pair', ['--tls-cert-file=c'], [/--tls-cert-file and --tls-key-file go together/]],
    ['secret mode without its companions', ['--cert-secret=s'], [/needs --webhook-config/, /needs --service/]],
    ['secret-mode options in files mode', ['--tls-cert-file=c', '--tls-key-file=k', '--webhook-config=w', '--cert-lifetime=1h'], [/--webhook-config only applies with --cert-secret/, /--cert-lifetime only applies with --cert-secret/]],
    ['a certificate outliving its CA, a bad IP and a bad service name', [...SECRET_ARGS.slice(0, 2), '--service=Not_A_Label', '--ca-lifetime=1h', '--cert-lifetime=2h', '--cert-ip=nope'], [/must not exceed --ca-lifetime/, /ip "nope" is not an IP address/, /service "Not_A_Label" is not a DNS label/]],
    ['a bad duration next to a bad port', [...SECRET_ARGS, '--cert-lifetime=soon', '--port=70000'], [/--cert-lifetime: "soon" is not a duration/, /--port: 70000 is not a port/]],
    ['a drain longer than the pods\' grace period', [...SECRET_ARGS, '--shutdown-drain=40s'], [/--shutdown-drain must be at most 25s/]],
  ])('lists every problem: %s', (_what, argv, expected) => {
    const problems = problemsOf(argv);
    for (const re of expected) expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(re)]));
    expect(problems).toHaveLength(expected.length);
  });
});

describe('parseWebhookConfig: --registry, the trusted prefix for checkpoint images', () => {
  it.each<[string, string[], string]>([
    ['none by default', [], ''],
    ['as given', ['--registry=registry.example/lazarus'], 'registry.example/lazarus'],
    ['a trailing slash goes', ['--registry=registry.example/lazarus/'], 'registry.example/lazarus'],
  ])('%s', (_name, argv, want) => expect(parseWebhookConfig([...SECRET_ARGS, ...argv], {}).defaultRegistry).toBe(want));

  it.each(['https://registry.example/lazarus', 'registry.example/lazarus@sha256:00', 'registry.example/a b'])('%s is refused with a clear reason', (value) => {
    expect(problemsOf([...SECRET_ARGS, `--registry=${value}`])).toEqual([expect.stringMatching(/^--registry: ".*" is not a registry prefix like registry.example\/lazarus/)]);
  });
});

describe('certSourceOptions', () => {
  const store = new MemoryStore();

  it('files mode reloads the files; nothing in the cluster is touched', () => {
    const config = parseWebhookConfig(['--tls-cert-file=/c/tls.crt', '--tls-key-file=/c/tls.key'], {});
    expect(certSourceOptions(config.tls, config.namespace, store)).toEqual({
      mode: 'files', certFile: '/c/tls.crt', keyFile: '/c/tls.key', identity: { service: 'lazarus-webhook', namespace: 'lazarus-system' },
    });
  });

  it('secret mode hands the store, the Secret, the webhook configuration and the cert-manager files to the manager', () => {
    const config = parseWebhookConfig([...SECRET_ARGS, '--cert-ip=127.0.0.1', '--cert-lifetime=6s', '--ca-lifetime=20s'], {});
    expect(certSourceOptions(config.tls, config.namespace, store)).toEqual({
      mode: 'secret', store, secretNamespace: 'lazarus-system', secretName: 'lazarus-webhook-tls', webhookConfigName: 'lazarus',
      identity: { service: 'lazarus-webhook', namespace: 'lazarus-system', dnsNames: [], ips: ['127.0.0.1'] },
      caLifetimeMs: 20_000, certLifetimeMs: 6_000, checkIntervalMs: 30_000, certFile: '/tls/tls.crt', keyFile: '/tls/tls.key',
    });
  });
});

describe('notReadyReason', () => {
  it.each<[string, string | undefined, boolean, RegExp | undefined]>([
    ['caches synced, real certificate', undefined, true, undefined],
    ['caches not synced', 'checkpoints not synced', true, /checkpoints not synced/],
    ['a throw-away certificate', undefined, false, /throw-away certificate/],
  ])('%s', (_what, cache, certReady, expected) => {
    const reason = notReadyReason(cache, { ready: () => certReady });
    if (expected) expect(reason).toMatch(expected);
    else expect(reason).toBeUndefined();
  });

  it('shutting down comes first: not ready however good everything else is', () => {
    const drain = new Drain();
    expect(notReadyReason(undefined, { ready: () => true }, drain)).toBeUndefined();
    drain.begin(0);
    expect(notReadyReason(undefined, { ready: () => true }, drain)).toMatch(/^shutting down/);
  });
});

describe('lazarus webhook (the real executable), files mode', () => {
  const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');
  let dir: string;
  let child: ChildProcess | undefined;
  beforeEach(async () => { dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lazarus-webhook-cmd-')); });
  afterEach(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    child = undefined;
    await fs.rm(dir, { recursive: true, force: true });
  });

  const writePair = async (pair: { cert: string; key: string }): Promise<void> => {
    // As the kubelet updates a mounted Secret: new files, then an atomic rename.
    for (const [name, text] of [['tls.key', pair.key], ['tls.crt', pair.cert]] as const) {
      await fs.writeFile(path.join(dir, `.${name}`), text);
      await fs.rename(path.join(dir, `.${name}`), path.join(dir, name));
    }
  };

  it('serves the files and, when they are replaced, the new certificate without a restart; SIGTERM exits 0', async () => {
    const identity = { service: 'lazarus-webhook', namespace: 'lazarus-system', ips: ['127.0.0.1'] };
    const lifetimes = { caLifetimeMs: 3_600_000, certLifetimeMs: 3_600_000 };
    const [first, second] = await Promise.all([generateMaterial(identity, lifetimes, liveEntropy()), generateMaterial(identity, lifetimes, liveEntropy())]);
    await writePair(first);
    // A kubeconfig for an API server that is not there: the caches stay unsynced, TLS is served regardless.
    const kubeconfig = path.join(dir, 'kubeconfig');
    await fs.writeFile(kubeconfig, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'x',
      clusters: [{ name: 'x', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'x', user: { token: 't' } }], contexts: [{ name: 'x', context: { cluster: 'x', user: 'x' } }],
    }));
    const proc = spawn(process.execPath, [main, 'webhook', '--port=0', '--metrics-port=0', '--bind-address=127.0.0.1', `--kubeconfig=${kubeconfig}`,
      `--tls-cert-file=${path.join(dir, 'tls.crt')}`, `--tls-key-file=${path.join(dir, 'tls.key')}`, '--shutdown-drain=0s'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const lines = createInterface({ input: proc.stdout });
    const port = await new Promise<number>((resolve, reject) => {
      lines.on('line', (line) => {
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number };
          if (entry.msg === 'webhook serving' && entry.port) resolve(entry.port);
        } catch { /* not JSON */ }
      });
      proc.once('exit', (code) => reject(new Error(`webhook exited early with ${String(code)}`)));
    });

    expect(await handshake(port, first.ca)).toEqual({ ok: true, serial: serialOf(first.cert) });
    await writePair(second);
    const deadline = Date.now() + 10_000;
    let seen = await handshake(port, second.ca);
    while (!seen.ok && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      seen = await handshake(port, second.ca);
    }
    expect(seen).toEqual({ ok: true, serial: serialOf(second.cert) });
    expect(await handshake(port, first.ca)).toMatchObject({ ok: false });

    const exit = new Promise<number | null>((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    expect(await exit).toBe(0);
  }, 30_000);
});
