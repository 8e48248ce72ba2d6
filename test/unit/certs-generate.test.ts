import crypto from 'node:crypto';
import {
  BACKDATE_MS, generateMaterial, identityProblems, issueServing, serialFromBytes, servingNames, type Identity,
} from '../../certs/generate.js';
import { handshake, serialOf, startHttps, testEntropy, type TestServer } from './certs-helpers.js';

const identity: Identity = { service: 'lazarus-webhook', namespace: 'lazarus-system', dnsNames: ['webhook.example.test'], ips: ['127.0.0.1'] };
const lifetimes = { caLifetimeMs: 3_600_000, certLifetimeMs: 600_000 };

describe('generated CA and serving certificate, checked by real TLS handshakes', () => {
  let material: Awaited<ReturnType<typeof generateMaterial>>;
  let server: TestServer;
  const clock = { now: Date.now() };

  beforeAll(async () => {
    material = await generateMaterial(identity, lifetimes, testEntropy(clock));
    server = await startHttps(material);
  });
  afterAll(() => server.close());

  it.each([
    ['service', 'lazarus-webhook'],
    ['service.namespace', 'lazarus-webhook.lazarus-system'],
    ['service.namespace.svc', 'lazarus-webhook.lazarus-system.svc'],
    ['service.namespace.svc.cluster.local', 'lazarus-webhook.lazarus-system.svc.cluster.local'],
    ['extra DNS name', 'webhook.example.test'],
  ])('a client trusting only the CA completes the handshake for the %s SAN', async (_what, servername) => {
    const result = await handshake(server.port, material.ca, servername);
    expect(result).toEqual({ ok: true, serial: serialOf(material.cert) });
  });

  it('a client trusting only the CA completes the handshake for the IP SAN', async () => {
    expect(await handshake(server.port, material.ca)).toMatchObject({ ok: true });
  });

  it.each([
    ['a name not in the certificate', 'evil.example.test', /does not match|not in the cert's altnames/i],
    ['a sibling service', 'other-webhook.lazarus-system.svc', /does not match|not in the cert's altnames/i],
  ])('the handshake fails for %s', async (_what, servername, error) => {
    const result = await handshake(server.port, material.ca, servername);
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.error).toMatch(error);
  });

  it('the handshake fails for a client that trusts another CA', async () => {
    const other = await generateMaterial(identity, lifetimes, testEntropy(clock));
    const result = await handshake(server.port, other.ca, 'lazarus-webhook.lazarus-system.svc');
    expect(result.ok).toBe(false);
  });

  it('the handshake by IP fails when the IP is not a SAN', async () => {
    const noIp = await generateMaterial({ ...identity, ips: [] }, lifetimes, testEntropy(clock));
    const s = await startHttps(noIp);
    try {
      const result = await handshake(s.port, noIp.ca);
      expect(result.ok ? '' : result.error).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/);
    } finally { await s.close(); }
  });

  it('the keys match their certificates and the CA signed the serving certificate', () => {
    const cert = new crypto.X509Certificate(material.cert);
    const ca = new crypto.X509Certificate(material.ca);
    expect(cert.checkPrivateKey(crypto.createPrivateKey(material.key))).toBe(true);
    expect(ca.checkPrivateKey(crypto.createPrivateKey(material.caKey))).toBe(true);
    expect(cert.checkPrivateKey(crypto.createPrivateKey(material.caKey))).toBe(false);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
  });

  it('has the key usages a TLS server needs and NotBefore backdated for clock skew', () => {
    const cert = new crypto.X509Certificate(material.cert);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // extKeyUsage serverAuth
    // Certificates carry whole seconds.
    const second = (ms: number): number => Math.floor(ms / 1000) * 1000;
    expect(Date.parse(cert.validFrom)).toBe(second(clock.now - BACKDATE_MS));
    expect(Date.parse(cert.validTo)).toBe(second(clock.now + lifetimes.certLifetimeMs));
    expect(Date.parse(new crypto.X509Certificate(material.ca).validTo)).toBe(second(clock.now + lifetimes.caLifetimeMs));
  });

  it('two generations have different serials and keys', async () => {
    const again = await generateMaterial(identity, lifetimes, testEntropy(clock));
    expect(serialOf(again.cert)).not.toBe(serialOf(material.cert));
    expect(serialOf(again.ca)).not.toBe(serialOf(material.ca));
    expect(again.key).not.toBe(material.key);
  });

  it('a serving certificate never outlives its CA', () => {
    const cert = issueServing({
      caCertPem: material.ca, caKeyPem: material.caKey, keyPem: material.key, serial: serialFromBytes(crypto.randomBytes(16)),
      now: clock.now, lifetimeMs: 10 * lifetimes.caLifetimeMs, names: servingNames(identity),
    });
    expect(new crypto.X509Certificate(cert).validTo).toBe(new crypto.X509Certificate(material.ca).validTo);
  });
});

describe('serialFromBytes', () => {
  it.each([
    ['all ones', 0xff],
    ['all zeros', 0x00],
    ['top bit only', 0x80],
  ])('is a positive 16-byte DER integer for %s', (_what, fill) => {
    const hex = serialFromBytes(new Uint8Array(16).fill(fill));
    expect(hex).toHaveLength(32);
    const first = parseInt(hex.slice(0, 2), 16);
    expect(first & 0x80).toBe(0); // positive
    expect(first).toBeGreaterThan(0); // no leading zero byte
  });
});

describe('identity', () => {
  it('servingNames lists the four service names, extras, and no duplicates', () => {
    expect(servingNames({ service: 's', namespace: 'n', dnsNames: ['s.n', 'x.example'], ips: ['10.0.0.1', '10.0.0.1'] })).toEqual({
      dns: ['s', 's.n', 's.n.svc', 's.n.svc.cluster.local', 'x.example'], ips: ['10.0.0.1'],
    });
  });

  it.each([
    ['a good identity', { service: 'wh', namespace: 'ns', dnsNames: ['a.example'], ips: ['10.0.0.1', '::1'] }, []],
    ['an upper-case service', { service: 'WH', namespace: 'ns' }, ['service "WH" is not a DNS label']],
    ['a bad IP', { service: 'wh', namespace: 'ns', ips: ['300.1.1.1'] }, ['ip "300.1.1.1" is not an IP address']],
    ['a bad DNS name', { service: 'wh', namespace: 'ns', dnsNames: ['a b'] }, ['dns name "a b" is not a host name']],
  ])('identityProblems: %s', (_what, id: Identity, problems) => {
    expect(identityProblems(id)).toEqual(problems);
  });
});
