/**
 * Pure checks on certificate material (Node's X509Certificate parses, nothing is written):
 * does it parse, do keys match, is it signed by the CA, does it cover the names, how long until
 * it should be renewed. `assess` turns these into one decision for the Secret manager.
 */
import crypto from 'node:crypto';
import { BACKDATE_MS, type Material, type Names } from './generate.js';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM bundle; throws if the text holds none or one does not parse. */
export function parseCerts(pem: string): crypto.X509Certificate[] {
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new Error('no PEM certificate found');
  return blocks.map((b) => new crypto.X509Certificate(b));
}

export function parseKey(pem: string): crypto.KeyObject {
  return crypto.createPrivateKey(pem);
}

export function notAfter(cert: crypto.X509Certificate): number { return Date.parse(cert.validTo); }
export function notBefore(cert: crypto.X509Certificate): number { return Date.parse(cert.validFrom); }

/** The intended lifetime: the backdating for clock skew is not part of it. */
export function lifetimeMs(cert: crypto.X509Certificate): number {
  const span = notAfter(cert) - notBefore(cert);
  return span > BACKDATE_MS ? span - BACKDATE_MS : span;
}

/** When a certificate is due for renewal: a third of its lifetime before it expires. */
export function renewAt(cert: crypto.X509Certificate): number {
  return notAfter(cert) - lifetimeMs(cert) / 3;
}

/** Names from `wanted` that the certificate does not cover (exact SAN match, no wildcards, no CN fallback). */
export function missingNames(cert: crypto.X509Certificate, wanted: Names): string[] {
  const missing: string[] = [];
  for (const d of wanted.dns) if (cert.checkHost(d, { wildcards: false, subject: 'never' }) === undefined) missing.push(d);
  for (const ip of wanted.ips) if (cert.checkIP(ip) === undefined) missing.push(ip);
  return missing;
}

export type Assessment =
  | { kind: 'ok'; renewAt: number }
  /** Everything new: there is no usable CA (missing, garbage, key mismatch, expired). */
  | { kind: 'new-ca'; reasons: string[] }
  /** The signing CA is due: a new CA signs a new serving cert; the old CA stays in the bundle. */
  | { kind: 'rotate-ca'; reasons: string[] }
  /**
   * The CA is fine; the serving certificate is not. `keep` holds the names of a still-valid
   * certificate that was renewed only because names were missing: the new one carries them too,
   * so replicas with different name flags (mid-rollout) converge instead of taking turns.
   */
  | { kind: 'renew-cert'; reasons: string[]; keep?: Names }
  /** All good, but the bundle still carries expired CAs. */
  | { kind: 'prune'; reasons: string[] };

export type Loose<T> = { [K in keyof T]?: T[K] | undefined };

/** The decision for the stored material at time `now` for a server that must answer for `names`. */
export function assess(m: Loose<Material>, now: number, names: Names): Assessment {
  if (!m.ca || !m.caKey) return { kind: 'new-ca', reasons: [`${!m.ca ? 'ca.crt' : 'ca.key'} is missing`] };
  let cas: crypto.X509Certificate[];
  let caKey: crypto.KeyObject;
  try { cas = parseCerts(m.ca); } catch (err) { return { kind: 'new-ca', reasons: [`ca.crt is unreadable: ${message(err)}`] }; }
  try { caKey = parseKey(m.caKey); } catch (err) { return { kind: 'new-ca', reasons: [`ca.key is unreadable: ${message(err)}`] }; }
  const [signer] = cas;
  if (!signer) return { kind: 'new-ca', reasons: ['ca.crt is empty'] };
  if (!signer.ca) return { kind: 'new-ca', reasons: ['the first certificate in ca.crt is not a CA'] };
  if (!signer.checkPrivateKey(caKey)) return { kind: 'new-ca', reasons: ['ca.key does not match the first certificate in ca.crt'] };
  if (notAfter(signer) <= now) return { kind: 'new-ca', reasons: [`the CA expired at ${signer.validTo}`] };
  if (renewAt(signer) <= now) return { kind: 'rotate-ca', reasons: [`the CA expires at ${signer.validTo}, less than a third of its lifetime away`] };

  const certProblem = servingProblem(m, signer, now, names);
  if (certProblem) return { kind: 'renew-cert', reasons: [certProblem.reason], ...(certProblem.keep ? { keep: certProblem.keep } : {}) };
  const cert = parseCerts(m.cert ?? '')[0];
  const expired = cas.slice(1).filter((c) => notAfter(c) <= now);
  if (expired.length > 0) return { kind: 'prune', reasons: [`ca.crt carries ${expired.length} expired CA(s)`] };
  return { kind: 'ok', renewAt: Math.min(renewAt(signer), cert ? renewAt(cert) : now) };
}

function servingProblem(m: Loose<Material>, signer: crypto.X509Certificate, now: number, names: Names): { reason: string; keep?: Names } | undefined {
  const only = (reason: string): { reason: string } => ({ reason });
  if (!m.cert || !m.key) return only(`${!m.cert ? 'tls.crt' : 'tls.key'} is missing`);
  let cert: crypto.X509Certificate | undefined;
  let key: crypto.KeyObject;
  try { cert = parseCerts(m.cert)[0]; } catch (err) { return only(`tls.crt is unreadable: ${message(err)}`); }
  try { key = parseKey(m.key); } catch (err) { return only(`tls.key is unreadable: ${message(err)}`); }
  if (!cert) return only('tls.crt is empty');
  if (!cert.checkPrivateKey(key)) return only('tls.key does not match tls.crt');
  if (!cert.checkIssued(signer) || !cert.verify(signer.publicKey)) return only('tls.crt is not signed by the CA');
  if (notAfter(cert) <= now) return only(`tls.crt expired at ${cert.validTo}`);
  if (renewAt(cert) <= now) return only(`tls.crt expires at ${cert.validTo}, less than a third of its lifetime away`);
  const missing = missingNames(cert, names);
  if (missing.length > 0) return { reason: `tls.crt does not cover ${missing.join(', ')}`, keep: sanNames(cert) };
  return undefined;
}

/** The DNS and IP SANs of a certificate (Node prints them as `DNS:a, IP Address:1.2.3.4`). */
export function sanNames(cert: crypto.X509Certificate): Names {
  const dns: string[] = [];
  const ips: string[] = [];
  for (const part of (cert.subjectAltName ?? '').split(', ')) {
    if (part.startsWith('DNS:')) dns.push(part.slice(4));
    else if (part.startsWith('IP Address:')) ips.push(part.slice(11));
  }
  return { dns, ips };
}

/** Problems with a certificate/key pair read from files (empty when it can be served). */
export function pairProblems(certPem: string, keyPem: string, now: number): string[] {
  let cert: crypto.X509Certificate | undefined;
  let key: crypto.KeyObject;
  try { cert = parseCerts(certPem)[0]; } catch (err) { return [`certificate is unreadable: ${message(err)}`]; }
  try { key = parseKey(keyPem); } catch (err) { return [`key is unreadable: ${message(err)}`]; }
  if (!cert) return ['certificate file is empty'];
  const problems: string[] = [];
  if (!cert.checkPrivateKey(key)) problems.push('key does not match the certificate');
  if (notAfter(cert) <= now) problems.push(`certificate expired at ${cert.validTo}`);
  return problems;
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
