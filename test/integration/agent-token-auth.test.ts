/**
 * Bearer-token auth against the real docker-registry: a token service in the test signs JWTs
 * (RS256, certificate in `x5c`) that the registry verifies against its rootcertbundle; the
 * agent gets its token with the dockerconfigjson credentials and pushes.
 */
import { createPrivateKey, randomUUID, sign } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkpointEntries, writeArchive } from '../unit/agent-fixtures.js';
import { describeWithTools, lazarus, must, startRegistry, tempDir } from './agent-env.js';

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

describeWithTools('agent build with Bearer-token auth (real docker-registry)', ['docker-registry', 'openssl'], false, () => {
  it('fetches a scoped token with the credentials and pushes; a wrong password is refused', async () => {
    const dir = await tempDir('agent-token');
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    await must('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=lazarus-test-token', '-keyout', key, '-out', cert, '-days', '1']);
    const privateKey = createPrivateKey(await readFile(key));
    const der = (await readFile(cert, 'utf8')).replace(/-----[^-]+-----|\s/g, '');
    const scopes: string[] = [];

    const tokens = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.headers.authorization !== `Basic ${Buffer.from('robot:t0ken-pw').toString('base64')}`) { res.writeHead(401).end(); return; }
      const scope = url.searchParams.get('scope') ?? '';
      scopes.push(scope);
      const [, name = '', actions = ''] = scope.split(':');
      const now = Math.floor(Date.now() / 1000);
      const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [der] }));
      const claims = b64url(JSON.stringify({
        iss: 'lazarus-test-issuer', sub: 'robot', aud: url.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(),
        access: scope ? [{ type: 'repository', name, actions: actions.split(',') }] : [],
      }));
      const signature = b64url(sign('sha256', Buffer.from(`${header}.${claims}`), privateKey));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${signature}` }));
    });
    await new Promise<void>((r) => tokens.listen(0, '127.0.0.1', r));
    const realm = `http://127.0.0.1:${String((tokens.address() as AddressInfo).port)}/token`;
    const registry = await startRegistry({ token: { realm, service: 'lazarus-test', issuer: 'lazarus-test-issuer', certPath: cert } });
    try {
      const archive = join(dir, 'ck.tar');
      await writeArchive(archive, checkpointEntries('podman'));
      const target = `${registry.host}/lazarus/token/ctr:1`;
      const auth = (pw: string): string => JSON.stringify({ auths: { [registry.host]: { username: 'robot', password: pw } } });

      await writeFile(join(dir, 'bad.json'), auth('wrong'));
      const refused = await lazarus(['agent', 'build', archive, target, '--insecure', '--auth-file', join(dir, 'bad.json')]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/token endpoint .*HTTP 401/);

      await writeFile(join(dir, 'good.json'), auth('t0ken-pw'));
      const pushed = await lazarus(['agent', 'build', archive, target, '--insecure', '--auth-file', join(dir, 'good.json')]);
      expect(pushed.stderr).toBe('');
      expect(pushed.code).toBe(0);
      expect(pushed.stdout.trim()).toMatch(new RegExp(`^${registry.host}/lazarus/token/ctr@sha256:[0-9a-f]{64}$`));
      expect(scopes).toContain('repository:lazarus/token/ctr:pull,push');

      const anonymous = await fetch(`http://${registry.host}/v2/lazarus/token/ctr/manifests/1`);
      expect(anonymous.status).toBe(401);
    } finally {
      await registry.stop();
      tokens.closeAllConnections();
      await new Promise((r) => tokens.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});



