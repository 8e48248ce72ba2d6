/**
 * Certificate generation: a self-signed CA and a serving certificate it signs, built with
 * node-forge. Everything that varies (time, serial bytes, keys) is passed in, so the same
 * inputs give the same certificate and tests can pin the clock.
 *
 * Keys: node-forge's own RSA key generation is pure JavaScript unless it happens to detect
 * Node's crypto. Measured on this machine (2 cores, Node 20, RSA 2048, same run):
 * crypto.generateKeyPairSync + forge import 120 ms, forge default (which calls Node's crypto
 * internally) 155 ms, forge with usePureJavaScript 1230 ms (10x). We call Node's asynchronous
 * crypto.generateKeyPair ourselves: it is as fast as the native path, runs on the libuv thread
 * pool (an in-process renewal never blocks request handling), and does not depend on forge's
 * detection heuristics. forge only parses the PEM key and signs (forge certificates are RSA
 * only, so keys are RSA 2048).
 */
import crypto from 'node:crypto';
import net from 'node:net';
import forge from 'node-forge';

/** NotBefore is set this far in the past so that nodes with a slightly late clock accept a fresh certificate. */
export const BACKDATE_MS = 5 * 60_000;
export const DEFAULT_CA_LIFETIME_MS = 8760 * 3_600_000; // 1 year
export const DEFAULT_CERT_LIFETIME_MS = 2160 * 3_600_000; // 90 days
export const SERIAL_BYTES = 16;

export interface Identity {
  service: string;
  namespace: string;
  /** Extra DNS names beyond the four service names. */
  dnsNames?: readonly string[];
  ips?: readonly string[];
}

export interface Names { dns: string[]; ips: string[] }

/** The names a serving certificate must carry for a Service, in a stable order without duplicates. */
export function servingNames(id: Identity): Names {
  const { service: s, namespace: ns } = id;
  const dns = [s, `${s}.${ns}`, `${s}.${ns}.svc`, `${s}.${ns}.svc.cluster.local`, ...(id.dnsNames ?? [])];
  return { dns: [...new Set(dns)], ips: [...new Set(id.ips ?? [])] };
}

/** Problems with an identity (empty when fine); used by flag parsing and the manager. */
export function identityProblems(id: Identity): string[] {
  const problems: string[] = [];
  const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  if (!label.test(id.service)) problems.push(`service "${id.service}" is not a DNS label`);
  if (!label.test(id.namespace)) problems.push(`namespace "${id.namespace}" is not a DNS label`);
  for (const d of id.dnsNames ?? []) {
    if (!/^(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?$/.test(d)) problems.push(`dns name "${d}" is not a host name`);
  }
  for (const ip of id.ips ?? []) if (net.isIP(ip) === 0) problems.push(`ip "${ip}" is not an IP address`);
  return problems;
}

/**
 * A positive DER INTEGER from random bytes: the top bit is cleared (forge writes the hex as
 * is, so a set top bit would be a negative serial) and the next one set (no leading zero byte,
 * which strict DER parsers reject). 126 random bits remain.
 */
export function serialFromBytes(bytes: Uint8Array): string {
  if (bytes.length < 9) throw new Error('a serial needs at least 9 random bytes');
  const b = Buffer.from(bytes);
  b[0] = ((b[0] ?? 0) & 0x3f) | 0x40;
  return b.toString('hex');
}

/** A fresh RSA 2048 private key, PKCS#1 PEM (see the header for why Node's crypto). */
export function generateKey(): Promise<string> {
  return new Promise((resolve, reject) => {
    crypto.generateKeyPair('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    }, (err, _publicKey, privateKey) => (err ? reject(err) : resolve(privateKey)));
  });
}

function forgeKeys(keyPem: string): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } {
  // forge reads PKCS#1 and PKCS#8; normalise through Node so either kind of PEM works.
  const pkcs1 = crypto.createPrivateKey(keyPem).export({ type: 'pkcs1', format: 'pem' }).toString();
  const privateKey = forge.pki.privateKeyFromPem(pkcs1);
  return { privateKey, publicKey: forge.pki.setRsaPublicKey(privateKey.n, privateKey.e) };
}

function validity(cert: forge.pki.Certificate, now: number, lifetimeMs: number): void {
  if (!(lifetimeMs > 0)) throw new Error(`certificate lifetime must be positive, got ${lifetimeMs} ms`);
  cert.validity.notBefore = new Date(now - BACKDATE_MS);
  cert.validity.notAfter = new Date(now + lifetimeMs);
}

/** forge writes CRLF; Node and kubectl write LF. One form, so equal certificates compare equal as text. */
function pem(cert: forge.pki.Certificate): string {
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}

export interface CaRequest {
  keyPem: string;
  serial: string;
  now: number;
  lifetimeMs: number;
  commonName: string;
}

export function issueCa(req: CaRequest): string {
  const { privateKey, publicKey } = forgeKeys(req.keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = req.serial;
  validity(cert, req.now, req.lifetimeMs);
  const subject = [{ name: 'commonName', value: req.commonName }, { name: 'organizationName', value: 'lazarus' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(privateKey, forge.md.sha256.create());
  return pem(cert);
}

export interface ServingRequest {
  caCertPem: string;
  caKeyPem: string;
  keyPem: string;
  serial: string;
  now: number;
  lifetimeMs: number;
  names: Names;
}

export function issueServing(req: ServingRequest): string {
  if (req.names.dns.length === 0 && req.names.ips.length === 0) throw new Error('a serving certificate needs at least one name');
  const ca = forge.pki.certificateFromPem(req.caCertPem);
  const { privateKey: caKey } = forgeKeys(req.caKeyPem);
  const { publicKey } = forgeKeys(req.keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = req.serial;
  validity(cert, req.now, req.lifetimeMs);
  // Never outlive the CA: a chain is only as valid as its shortest link.
  if (cert.validity.notAfter > ca.validity.notAfter) cert.validity.notAfter = ca.validity.notAfter;
  // The CN is informational (clients match SANs); the `svc.ns.svc` name is what the API server dials. X.500 caps a CN at 64.
  const cn = [...req.names.dns.filter((d) => d.endsWith('.svc')), ...req.names.dns, ...req.names.ips].find((n) => n.length <= 64) ?? 'lazarus';
  cert.setSubject([{ name: 'commonName', value: cn }]);
  cert.setIssuer(ca.subject.attributes);
  const altNames = [
    ...req.names.dns.map((value) => ({ type: 2, value })),
    ...req.names.ips.map((ip) => ({ type: 7, ip })),
  ];
  const caSki = ca.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | null;
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
    { name: 'subjectKeyIdentifier' },
    ...(caSki?.subjectKeyIdentifier ? [{ name: 'authorityKeyIdentifier', keyIdentifier: forge.util.hexToBytes(caSki.subjectKeyIdentifier) }] : []),
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return pem(cert);
}

/** What a Secret holds. `ca` may be a bundle: the signing CA first, then older CAs still trusted. */
export interface Material {
  ca: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface Lifetimes { caLifetimeMs: number; certLifetimeMs: number }

/** The non-deterministic inputs, injected. */
export interface Entropy {
  now: () => number;
  randomBytes: (n: number) => Uint8Array;
  generateKey: () => Promise<string>;
}

export const systemEntropy: Entropy = {
  now: () => Date.now(),
  randomBytes: (n) => crypto.randomBytes(n),
  generateKey,
};

export function caCommonName(id: Identity, now: number): string {
  return `lazarus-ca ${id.service}.${id.namespace} ${new Date(now).toISOString()}`;
}

/** A new CA and a serving certificate signed by it. */
export async function generateMaterial(id: Identity, lifetimes: Lifetimes, entropy: Entropy): Promise<Material> {
  const now = entropy.now();
  const [caKey, key] = await Promise.all([entropy.generateKey(), entropy.generateKey()]);
  const ca = issueCa({ keyPem: caKey, serial: serialFromBytes(entropy.randomBytes(SERIAL_BYTES)), now, lifetimeMs: lifetimes.caLifetimeMs, commonName: caCommonName(id, now) });
  const cert = issueServing({
    caCertPem: ca, caKeyPem: caKey, keyPem: key, serial: serialFromBytes(entropy.randomBytes(SERIAL_BYTES)),
    now, lifetimeMs: lifetimes.certLifetimeMs, names: servingNames(id),
  });
  return { ca, caKey, cert, key };
}
