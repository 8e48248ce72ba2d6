/** A throw-away CA and serving certificate for 127.0.0.1/localhost, for server tests. */
import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';

export interface TestTls { ca: string; cert: string; key: string }

export function testTls(): TestTls {
  const pair = (): { pem: string; forgeKey: forge.pki.rsa.PrivateKey; pub: forge.pki.rsa.PublicKey } => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const forgeKey = forge.pki.privateKeyFromPem(pem);
    return { pem, forgeKey, pub: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e) };
  };
  const now = new Date();
  const later = new Date(now.getTime() + 86_400_000);
  const caKey = pair();
  const ca = forge.pki.createCertificate();
  ca.publicKey = caKey.pub;
  ca.serialNumber = '01';
  ca.validity.notBefore = new Date(now.getTime() - 60_000);
  ca.validity.notAfter = later;
  ca.setSubject([{ name: 'commonName', value: 'test-ca' }]);
  ca.setIssuer([{ name: 'commonName', value: 'test-ca' }]);
  ca.setExtensions([{ name: 'basicConstraints', cA: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true }]);
  ca.sign(caKey.forgeKey, forge.md.sha256.create());

  const leafKey = pair();
  const leaf = forge.pki.createCertificate();
  leaf.publicKey = leafKey.pub;
  leaf.serialNumber = '02';
  leaf.validity.notBefore = ca.validity.notBefore;
  leaf.validity.notAfter = later;
  leaf.setSubject([{ name: 'commonName', value: 'localhost' }]);
  leaf.setIssuer(ca.subject.attributes);
  leaf.setExtensions([
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
  ]);
  leaf.sign(caKey.forgeKey, forge.md.sha256.create());
  return { ca: forge.pki.certificateToPem(ca), cert: forge.pki.certificateToPem(leaf), key: leafKey.pem };
}
