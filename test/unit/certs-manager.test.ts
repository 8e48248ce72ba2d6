import crypto from 'node:crypto';
import { createCertSource, MemoryStore, type CertSource } from '../../certs/index.js';
import { generateMaterial, type Identity } from '../../certs/generate.js';
import { CERT_MANAGER_ANNOTATION, CertHolder, decodeSecret, ensureCaBundle, ensureSecret, encodeMaterial, type SecretTarget } from '../../certs/manager.js';
import type { WebhookConfiguration } from '../../certs/store.js';
import { silentLogger } from '../../runtime/log.js';
import { handshake, liveEntropy, serialOf, startHttps, testEntropy } from './certs-helpers.js';

const H = 3_600_000;
const identity: Identity = { service: 'wh', namespace: 'lz', ips: ['127.0.0.1'] };
const target: SecretTarget = { namespace: 'lz', name: 'wh-tls', identity, lifetimes: { caLifetimeMs: 24 * H, certLifetimeMs: 3 * H } };
const log = silentLogger();

function webhookConfig(annotations: Record<string, string> = {}): WebhookConfiguration {
  return {
    metadata: { name: 'lazarus', annotations },
    webhooks: [
      { name: 'pods.lazarus.dev', clientConfig: { url: 'https://127.0.0.1:9443/mutate' } },
      { name: 'pods-again.lazarus.dev', clientConfig: { url: 'https://127.0.0.1:9443/mutate', caBundle: 'c3RhbGU=' } },
    ],
  };
}

function caBundles(store: MemoryStore): Promise<(string | undefined)[]> {
  return store.getWebhookConfig('lazarus').then((c) => (c?.webhooks ?? []).map((w) => w.clientConfig?.caBundle));
}

function secretSource(store: MemoryStore, extra: Record<string, unknown> = {}): Promise<CertSource> {
  return createCertSource({
    mode: 'secret', store, secretNamespace: 'lz', secretName: 'wh-tls', webhookConfigName: 'lazarus', identity,
    caLifetimeMs: 24 * H, certLifetimeMs: 3 * H, checkIntervalMs: 100, ...extra,
  }, { logger: log, entropy: liveEntropy() });
}

describe('two replicas starting at once against one store', () => {
  it.each([1, 2, 3])('end with one Secret and one CA, and both serve it (run %i)', async () => {
    const store = new MemoryStore();
    store.putWebhookConfig(webhookConfig());
    const [a, b] = await Promise.all([secretSource(store), secretSource(store)]);
    try {
      expect(store.secretCount()).toBe(1);
      expect(store.conflicts).toBeGreaterThanOrEqual(1); // the race really happened
      const stored = decodeSecret(await store.getSecret('lz', 'wh-tls'));
      expect(a.caBundle()).toBe(stored.ca);
      expect(b.caBundle()).toBe(stored.ca);
      expect(a.secureContextOptions()).toEqual(b.secureContextOptions());
      expect(a.ready() && b.ready()).toBe(true);
      const b64 = Buffer.from(stored.ca ?? '').toString('base64');
      expect(await caBundles(store)).toEqual([b64, b64]);
      // Behaviour, not shape: a client that trusts the injected bundle talks to either replica.
      for (const source of [a, b]) {
        const s = await startHttps(source.secureContextOptions());
        try { expect(await handshake(s.port, Buffer.from(b64, 'base64').toString(), 'wh.lz.svc')).toMatchObject({ ok: true }); } finally { await s.close(); }
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('also when the Secret exists but must be renewed by both at once (update conflict)', async () => {
    const store = new MemoryStore();
    const clock = { now: Date.now() };
    await ensureSecret(store, target, testEntropy(clock), log);
    const before = decodeSecret(await store.getSecret('lz', 'wh-tls'));
    clock.now += 2.5 * H; // past two thirds of the 3h serving cert
    const [r1, r2] = await Promise.all([ensureSecret(store, target, testEntropy(clock), log), ensureSecret(store, target, testEntropy(clock), log)]);
    expect(r1.material).toEqual(r2.material);
    expect([r1.wrote, r2.wrote].sort()).toEqual([false, true]);
    expect(store.conflicts).toBe(1);
    expect(serialOf(r1.material.cert)).not.toBe(serialOf(before.cert ?? ''));
    expect(r1.material.ca).toBe(before.ca); // same CA, new serving cert
  });
});

describe('replicas with different names (mid-rollout)', () => {
  it('converge on one certificate covering both instead of taking turns', async () => {
    const store = new MemoryStore();
    const source = (dnsNames: string[]): Promise<CertSource> => createCertSource({
      mode: 'secret', store, secretNamespace: 'lz', secretName: 'wh-tls', identity: { ...identity, dnsNames }, checkIntervalMs: 50,
    }, { logger: log, entropy: liveEntropy() });
    const [oldReplica, newReplica] = await Promise.all([source(['old.example']), source(['new.example'])]);
    try {
      await new Promise((r) => setTimeout(r, 600)); // a dozen check intervals
      const writes = store.writes;
      await new Promise((r) => setTimeout(r, 600));
      expect(store.writes).toBe(writes); // settled: nobody rewrites any more
      const cert = new crypto.X509Certificate(decodeSecret(await store.getSecret('lz', 'wh-tls')).cert ?? '');
      expect(cert.subjectAltName).toContain('DNS:old.example');
      expect(cert.subjectAltName).toContain('DNS:new.example');
      expect(oldReplica.secureContextOptions()).toEqual(newReplica.secureContextOptions());
    } finally { await Promise.all([oldReplica.stop(), newReplica.stop()]); }
  });
});

describe('repair', () => {
  it.each([
    ['garbage in every key', { 'ca.crt': 'Z2FyYmFnZQ==', 'ca.key': 'Z2FyYmFnZQ==', 'tls.crt': 'x', 'tls.key': 'y' }],
    ['only a cert and key (no CA key)', { 'tls.crt': 'eA==', 'tls.key': 'eQ==' }],
  ])('a Secret with %s is replaced by a working CA and certificate', async (_what, data) => {
    const store = new MemoryStore();
    store.putSecretData('lz', 'wh-tls', data);
    const { material, wrote } = await ensureSecret(store, target, liveEntropy(), log);
    expect(wrote).toBe(true);
    const s = await startHttps(material);
    try { expect(await handshake(s.port, material.ca, 'wh.lz.svc.cluster.local')).toMatchObject({ ok: true }); } finally { await s.close(); }
  });

  it('an expired CA is replaced; the expired CA is not carried in the bundle', async () => {
    const store = new MemoryStore();
    const clock = { now: Date.now() - 30 * H };
    const old = await generateMaterial(identity, { caLifetimeMs: 24 * H, certLifetimeMs: 3 * H }, testEntropy(clock));
    store.putSecretData('lz', 'wh-tls', encodeMaterial(old));
    const { material } = await ensureSecret(store, target, liveEntropy(), log);
    expect(material.ca).not.toContain(old.ca.trim());
    expect(material.ca.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
  });

  it('a running source serving a Secret that someone corrupts repairs it and keeps serving', async () => {
    const store = new MemoryStore();
    store.putWebhookConfig(webhookConfig());
    const source = await secretSource(store);
    try {
      const firstCert = source.secureContextOptions().cert;
      store.putSecretData('lz', 'wh-tls', { 'ca.crt': 'bm9wZQ==' });
      await waitFor(() => source.secureContextOptions().cert !== firstCert);
      const stored = decodeSecret(await store.getSecret('lz', 'wh-tls'));
      expect(source.secureContextOptions().cert).toBe(stored.cert);
      expect(await caBundles(store)).toEqual([Buffer.from(stored.ca ?? '').toString('base64'), Buffer.from(stored.ca ?? '').toString('base64')]);
    } finally { await source.stop(); }
  });
});

describe('API unavailable at start', () => {
  it('serves a throw-away certificate (never none), then the real one once the store answers', async () => {
    const store = new MemoryStore();
    const realGet = store.getSecret.bind(store);
    let failures = 3;
    store.getSecret = async (ns, name) => {
      if (failures > 0) { failures--; throw new Error('connect ECONNREFUSED 10.0.0.1:443'); }
      return realGet(ns, name);
    };
    const source = await createCertSource({
      mode: 'secret', store, secretNamespace: 'lz', secretName: 'wh-tls', identity, checkIntervalMs: 100,
    }, { logger: log, entropy: liveEntropy() });
    try {
      expect(source.ready()).toBe(false);
      expect(source.secureContextOptions().cert).toMatch(/BEGIN CERTIFICATE/);
      await waitFor(() => source.ready());
      expect(source.secureContextOptions().cert).toBe(decodeSecret(await realGet('lz', 'wh-tls')).cert);
    } finally { await source.stop(); }
  });
});

describe('caBundle', () => {
  it('is restored when someone overwrites it', async () => {
    const store = new MemoryStore();
    store.putWebhookConfig(webhookConfig());
    const source = await secretSource(store);
    try {
      const want = Buffer.from(source.caBundle()).toString('base64');
      expect(await caBundles(store)).toEqual([want, want]);
      store.putWebhookConfig(webhookConfig()); // e.g. `kubectl apply` of the manifest without caBundle
      await waitFor(async () => (await caBundles(store)).every((b) => b === want));
      expect(await caBundles(store)).toEqual([want, want]);
    } finally { await source.stop(); }
  });

  it('a patch that lost a race against a reordering of webhooks is retried, not misapplied', async () => {
    const store = new MemoryStore();
    store.putWebhookConfig(webhookConfig());
    const real = store.patchWebhookConfig.bind(store);
    let first = true;
    store.patchWebhookConfig = async (name, ops) => {
      if (first) { // someone swaps the webhooks between our read and our patch
        first = false;
        const c = webhookConfig();
        store.putWebhookConfig({ ...c, webhooks: [...(c.webhooks ?? [])].reverse() });
      }
      return real(name, ops);
    };
    expect(await ensureCaBundle(store, 'lazarus', 'PEM', log)).toBe('patched');
    expect(store.conflicts).toBe(1);
    expect(await caBundles(store)).toEqual([Buffer.from('PEM').toString('base64'), Buffer.from('PEM').toString('base64')]);
  });
});

describe('the eviction webhook\'s ValidatingWebhookConfiguration', () => {
  const evictions = (annotations: Record<string, string> = {}): WebhookConfiguration => ({
    metadata: { name: 'lazarus', annotations }, webhooks: [{ name: 'evictions.lazarus.dev', clientConfig: { url: 'https://127.0.0.1:9443/validate-eviction' } }],
  });
  const validatingBundles = (store: MemoryStore) => store.getWebhookConfig('lazarus', 'validating').then((c) => (c?.webhooks ?? []).map((w) => w.clientConfig?.caBundle));
  const b64 = Buffer.from('PEM').toString('base64');

  it('gets the same caBundle as the mutating one of the same name, and gets it back when overwritten', async () => {
    const store = new MemoryStore();
    store.putWebhookConfig(webhookConfig());
    store.putWebhookConfig(evictions(), 'validating');
    expect(await ensureCaBundle(store, 'lazarus', 'PEM', log)).toBe('patched');
    expect(await validatingBundles(store)).toEqual([b64]);
    store.putWebhookConfig(evictions(), 'validating'); // kubectl apply of the manifest without caBundle
    expect(await ensureCaBundle(store, 'lazarus', 'PEM', log)).toBe('unchanged');
    expect(await validatingBundles(store)).toEqual([b64]);
  });

  it('its absence, or a read the RBAC forbids, never stops the pod webhook\'s caBundle', async () => {
    const store = new MemoryStore();
    store.putWebhookConfig(webhookConfig());
    const real = store.getWebhookConfig.bind(store);
    store.getWebhookConfig = async (name, kind) => {
      if (kind === 'validating') throw new Error('validatingwebhookconfigurations "lazarus" is forbidden');
      return real(name, kind);
    };
    expect(await ensureCaBundle(store, 'lazarus', 'PEM', log)).toBe('patched');
    expect(await caBundles(store)).toEqual([b64, b64]);
  });

  it('cert-manager mode leaves both to cert-manager', async () => {
    const store = new MemoryStore();
    store.putWebhookConfig(webhookConfig({ [CERT_MANAGER_ANNOTATION]: 'lz/wh' }));
    store.putWebhookConfig(evictions({ [CERT_MANAGER_ANNOTATION]: 'lz/wh' }), 'validating');
    expect(await ensureCaBundle(store, 'lazarus', 'PEM', log)).toBe('cert-manager');
    expect(await validatingBundles(store)).toEqual([undefined]);
  });
});

describe('CA rotation', () => {
  it('keeps the old CA in the bundle, so servers still presenting the old certificate stay trusted', async () => {
    const store = new MemoryStore();
    // Issued 17h ago: the 24h CA has less than a third left; its 20h serving cert is still valid.
    const first = await ensureSecret(store, { ...target, lifetimes: { caLifetimeMs: 24 * H, certLifetimeMs: 20 * H } }, testEntropy({ now: Date.now() - 17 * H }), log);
    const second = await ensureSecret(store, target, testEntropy({ now: Date.now() }), log);
    expect(second.wrote).toBe(true);
    expect(second.material.ca.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(second.material.ca).toContain(first.material.ca.trim());
    // A replica that has not reloaded yet (old cert, old CA) and one that has (new cert, new CA):
    // a client with the new bundle trusts both.
    for (const pair of [first.material, second.material]) {
      const s = await startHttps(pair);
      try { expect(await handshake(s.port, second.material.ca, 'wh.lz.svc')).toMatchObject({ ok: true }); } finally { await s.close(); }
    }
    // The new certificate is signed by the new CA only.
    const s = await startHttps(second.material);
    try { expect((await handshake(s.port, first.material.ca, 'wh.lz.svc')).ok).toBe(false); } finally { await s.close(); }
  });
});

describe('CA rotation in a running replica', () => {
  it('patches the caBundle first and switches to the new CA only after caPropagationMs', async () => {
    const store = new MemoryStore();
    store.putWebhookConfig(webhookConfig());
    const clock = { now: Date.now() };
    const events: { what: 'patch' | 'rotate'; at: number }[] = [];
    const realPatch = store.patchWebhookConfig.bind(store);
    store.patchWebhookConfig = async (name, ops) => {
      const result = await realPatch(name, ops);
      events.push({ what: 'patch', at: Date.now() });
      return result;
    };
    const source = await createCertSource({
      mode: 'secret', store, secretNamespace: 'lz', secretName: 'wh-tls', webhookConfigName: 'lazarus', identity,
      caLifetimeMs: 24 * H, certLifetimeMs: 20 * H, checkIntervalMs: 50, caPropagationMs: 400,
    }, { logger: log, entropy: testEntropy(clock) });
    try {
      const firstCa = source.caBundle();
      source.onRotate(() => events.push({ what: 'rotate', at: Date.now() }));
      events.length = 0; // the initial injection
      clock.now += 17 * H; // the CA has less than a third left; the serving cert is still valid
      await waitFor(() => events.some((e) => e.what === 'rotate'));
      const patch = events.find((e) => e.what === 'patch');
      const rotate = events.find((e) => e.what === 'rotate');
      expect((rotate?.at ?? 0) - (patch?.at ?? Infinity)).toBeGreaterThanOrEqual(390);
      const injected = Buffer.from((await caBundles(store))[0] ?? '', 'base64').toString();
      expect(injected).toBe(source.caBundle());
      expect(injected.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
      expect(injected).toContain(firstCa.trim());
    } finally { await source.stop(); }
  });
});

describe('cert-manager', () => {
  it('with inject-ca-from set, writes neither the Secret nor the caBundle, and serves the mounted files', async () => {
    const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const dir = await mkdtemp(path.join(tmpdir(), 'lazarus-certs-'));
    const m = await generateMaterial(identity, { caLifetimeMs: H, certLifetimeMs: H }, liveEntropy());
    await writeFile(path.join(dir, 'tls.crt'), m.cert);
    await writeFile(path.join(dir, 'tls.key'), m.key);
    const store = new MemoryStore();
    store.putWebhookConfig(webhookConfig({ [CERT_MANAGER_ANNOTATION]: 'lz/wh-cert' }));
    const before = await store.getWebhookConfig('lazarus');
    const source = await secretSource(store, { certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key') });
    try {
      expect(source.mode).toBe('cert-manager');
      expect(source.secureContextOptions()).toEqual({ cert: m.cert, key: m.key });
      await new Promise((r) => setTimeout(r, 300)); // several check intervals
      expect(store.secretCount()).toBe(0);
      expect(store.writes).toBe(0);
      expect(await store.getWebhookConfig('lazarus')).toEqual(before);
    } finally {
      await source.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('with inject-ca-from set and no files configured, refuses to start with a clear reason', async () => {
    const store = new MemoryStore();
    store.putWebhookConfig(webhookConfig({ [CERT_MANAGER_ANNOTATION]: 'lz/wh-cert' }));
    await expect(secretSource(store)).rejects.toThrow(/cert-manager owns the certificate.*--tls-cert-file/);
  });
});

describe('CertHolder', () => {
  it('calls listeners only on change and survives a throwing listener', () => {
    const holder = new CertHolder({ cert: 'a', key: 'k', ca: 'c', source: 'secret' }, log);
    const seen: string[] = [];
    holder.onRotate(() => { throw new Error('boom'); });
    holder.onRotate((s) => seen.push(s.cert));
    expect(holder.set({ cert: 'a', key: 'k', ca: 'c', source: 'secret' })).toBe(false);
    expect(holder.set({ cert: 'b', key: 'k', ca: 'c', source: 'secret' })).toBe(true);
    expect(seen).toEqual(['b']);
  });
});

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

