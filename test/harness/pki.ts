/**
 * Certificates for the local control plane and for test servers. Keys come from node:crypto
 * (native, fast); node-forge builds and signs the X.509 certificates, which node:crypto cannot.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { SERIAL_BYTES, issueCa, serialFromBytes } from '../../certs/generate.js';

const generateRsa = promisify(generateKeyPair);

export interface KeyPair {
  certPem: string;
  keyPem: string;
}

export interface Authority extends KeyPair {
  readonly cert: forge.pki.Certificate;
  readonly key: forge.pki.rsa.PrivateKey;
}

export interface CertRequest {
  commonName: string;
  organizations?: readonly string[];
  dnsNames?: readonly string[];
  ips?: readonly string[];
  usage: 'server' | 'client' | 'both';
  /** Validity start; defaults to one hour ago so clock skew never bites. */
  notBefore?: Date;
  days?: number;
}

export interface RsaKey { keyPem: string; key: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey }

/** RSA 2048 (forge signs only RSA). Generation costs ~150 ms, so callers may share one key. */
export async function createRsaKey(): Promise<RsaKey> {
  const { privateKey } = await generateRsa('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const key = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  return { keyPem: privateKey, key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e) };
}

const serial = (): string => serialFromBytes(randomBytes(SERIAL_BYTES));

function validity(cert: forge.pki.Certificate, notBefore: Date | undefined, days: number): void {
  const from = notBefore ?? new Date(Date.now() - 60 * 60 * 1000);
  cert.validity.notBefore = from;
  cert.validity.notAfter = new Date(from.getTime() + days * 24 * 60 * 60 * 1000);
}

/** A CA as Lazarus' own certificates make one (certs/generate.ts), with its forge objects. */
export async function createAuthority(commonName: string, days = 30): Promise<Authority> {
  const { keyPem, key } = await createRsaKey();
  const certPem = issueCa({ keyPem, serial: serial(), now: Date.now(), lifetimeMs: days * 24 * 60 * 60 * 1000, commonName });
  return { cert: forge.pki.certificateFromPem(certPem), key, certPem, keyPem };
}

/** A certificate signed by `ca`, for `key` (a new key unless one is given). */
export async function issueCertificate(ca: Authority, req: CertRequest, key?: RsaKey): Promise<KeyPair> {
  const { keyPem, publicKey } = key ?? await createRsaKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serial();
  validity(cert, req.notBefore, req.days ?? 30);
  cert.setSubject([
    { name: 'commonName', value: req.commonName },
    ...(req.organizations ?? []).map((o) => ({ name: 'organizationName', value: o })),
  ]);
  cert.setIssuer(ca.cert.subject.attributes);
  const altNames = [
    ...(req.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(req.ips ?? []).map((ip) => ({ type: 7, ip })),
  ];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: req.usage !== 'client', clientAuth: req.usage !== 'server' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.cert.generateSubjectKeyIdentifier().getBytes() },
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
  ]);
  cert.sign(ca.key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

/** An ECDSA P-256 key pair in PEM (cheap to make), e.g. for service-account token signing. */
export async function createSigningKey(): Promise<{ publicPem: string; privatePem: string }> {
  const { publicKey, privateKey } = await generateRsa('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicPem: publicKey, privatePem: privateKey };
}
