import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { RegistryClient, RegistryError, credentialsFor, parseChallenge, parseImageRef } from '../../agent/registry.js';

describe('parseImageRef', () => {
  it.each([
    ['127.0.0.1:5000/lazarus/shop/web-app:ck1', { registry: '127.0.0.1:5000', repository: 'lazarus/shop/web-app', tag: 'ck1' }],
    ['registry.example/web', { registry: 'registry.example', repository: 'web', tag: 'latest' }],
    ['localhost/web:1', { registry: 'localhost', repository: 'web', tag: '1' }],
    ['busybox', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' }],
    ['me/app:v2', { registry: 'docker.io', repository: 'me/app', tag: 'v2' }],
    [`reg.example:443/a/b@sha256:${'e'.repeat(64)}`, { registry: 'reg.example:443', repository: 'a/b', digest: `sha256:${'e'.repeat(64)}` }],
  ])('%s', (ref, want) => expect(parseImageRef(ref)).toEqual(want));

  it.each(['reg.example/UPPER:1', 'reg.example/a@sha256:short', 'reg.example/a:bad tag'])('rejects %s', (ref) => {
    expect(() => parseImageRef(ref)).toThrow();
  });
});

describe('credentials and challenges', () => {
  const cfg = JSON.stringify({
    auths: {
      'reg.example:5000': { auth: Buffer.from('robot:s3cr:et').toString('base64') },
      'https://other.example/v1/': { username: 'u', password: 'p' },
      'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw').toString('base64') },
    },
  });
  it.each([
    ['reg.example:5000', { username: 'robot', password: 's3cr:et' }],
    ['other.example', { username: 'u', password: 'p' }],
    ['docker.io', { username: 'hub', password: 'pw' }],
    ['unknown.example', undefined],
  ])('dockerconfigjson for %s', (registry, want) => expect(credentialsFor(cfg, registry)).toEqual(want));

  it.each([
    ['Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull"', { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a:pull' } }],
    ['Basic realm="Registry Realm"', { scheme: 'basic', params: { realm: 'Registry Realm' } }],
    [undefined, undefined],
  ])('parseChallenge(%s)', (header, want) => expect(parseChallenge(header)).toEqual(want));
});

/** A small in-memory registry speaking the distribution API over real HTTP, with token auth and fault injection. */
function fakeRegistry(opts: { failFirst?: number; failPuts?: number; token?: boolean; storage?: string } = {}) {
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, Buffer>();
  const log: string[] = [];
  let failures = opts.failFirst ?? 0;
  let uploads = 0;
  let putFailures = opts.failPuts ?? 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    log.push(`${req.method ?? ''} ${url.pathname}`);
    if (url.pathname === '/token') {
      const basic = req.headers.authorization === `Basic ${Buffer.from('robot:pw').toString('base64')}`;
      if (!basic || url.searchParams.get('scope') !== 'repository:team/app:pull,push') { res.writeHead(401).end(); return; }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'T0KEN' }));
      return;
    }
    if (opts.token && req.headers.authorization !== 'Bearer T0KEN') {
      const { port } = server.address() as AddressInfo;
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${String(port)}/token",service="fake"` }).end();
      return;
    }
    if (failures > 0) { failures--; req.resume(); res.writeHead(503).end('busy'); return; }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const blob = /^\/v2\/team\/app\/blobs\/(sha256:[0-9a-f]+)$/.exec(url.pathname);
      if (blob?.[1] && req.method === 'HEAD' && opts.storage) { res.writeHead(307, { location: `${opts.storage}/blobs/${blob[1]}` }).end(); return; }
      if (blob?.[1] && req.method === 'HEAD') { res.writeHead(blobs.has(blob[1]) ? 200 : 404).end(); return; }
      if (url.pathname === '/v2/team/app/blobs/uploads/' && req.method === 'POST') {
        const path = `/v2/team/app/blobs/uploads/u${String(++uploads)}?state=x`;
        res.writeHead(202, { location: opts.storage ? `${opts.storage}${path}` : path }).end();
        return;
      }
      if (url.pathname.startsWith('/v2/team/app/blobs/uploads/u') && req.method === 'PUT') {
        if (putFailures > 0) { putFailures--; res.writeHead(500).end('storage hiccup'); return; }
        const digest = url.searchParams.get('digest') ?? '';
        if (`sha256:${createHash('sha256').update(body).digest('hex')}` !== digest) { res.writeHead(400).end('DIGEST_INVALID'); return; }
        blobs.set(digest, body);
        res.writeHead(201).end();
        return;
      }
      const m = /^\/v2\/team\/app\/manifests\/(.+)$/.exec(url.pathname);
      if (m?.[1] && req.method === 'PUT') {
        const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
        manifests.set(m[1], body);
        res.writeHead(201, { 'docker-content-digest': digest }).end();
        return;
      }
      res.writeHead(404).end();
    });
  });
  return { server, blobs, manifests, log };
}

describe('RegistryClient against a fake registry (real HTTP)', () => {
  const noSleep = (): Promise<void> => Promise.resolve();
  const body = Buffer.from('layer bytes '.repeat(1000));
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;

  async function withServer(opts: Parameters<typeof fakeRegistry>[0], fn: (host: string, reg: ReturnType<typeof fakeRegistry>) => Promise<void>): Promise<void> {
    const reg = fakeRegistry(opts);
    await new Promise<void>((r) => reg.server.listen(0, '127.0.0.1', r));
    try {
      await fn(`127.0.0.1:${String((reg.server.address() as AddressInfo).port)}`, reg);
    } finally {
      reg.server.closeAllConnections();
      await new Promise((r) => reg.server.close(r));
    }
  }

  it('gets a Bearer token with the dockerconfigjson credentials, uploads, and skips an existing blob', async () => {
    await withServer({ token: true }, async (host, reg) => {
      const client = new RegistryClient(parseImageRef(`${host}/team/app:1`), { insecure: true, credentials: { username: 'robot', password: 'pw' }, sleep: noSleep });
      try {
        expect(await client.hasBlob(digest)).toBe(false);
        await client.uploadBlob(digest, body.length, () => Readable.from([body.subarray(0, 100), body.subarray(100)]));
        expect(reg.blobs.get(digest)?.equals(body)).toBe(true);
        expect(await client.hasBlob(digest)).toBe(true);
        const manifest = Buffer.from('{"schemaVersion":2}');
        expect(await client.putManifest('1', manifest, 'application/vnd.oci.image.manifest.v1+json')).toBe(`sha256:${createHash('sha256').update(manifest).digest('hex')}`);
        expect(reg.log.filter((l) => l === 'GET /token')).toHaveLength(1);
      } finally { client.close(); }
    });
  });

  it('fails clearly without credentials when the registry wants a token', async () => {
    await withServer({ token: true }, async (host) => {
      const client = new RegistryClient(parseImageRef(`${host}/team/app:1`), { insecure: true, sleep: noSleep });
      try {
        await expect(client.hasBlob(digest)).rejects.toThrow(/token endpoint .*HTTP 401/);
      } finally { client.close(); }
    });
  });

  it('retries 503s with backoff, and a failed upload PUT with a new session and a re-opened body', async () => {
    await withServer({ failFirst: 3, failPuts: 2 }, async (host, reg) => {
      const sleeps: number[] = [];
      let opened = 0;
      const client = new RegistryClient(parseImageRef(`${host}/team/app:1`), {
        insecure: true, retry: { attempts: 5, baseMs: 10, maxMs: 1000 },
        sleep: (ms) => { sleeps.push(ms); return Promise.resolve(); },
      });
      try {
        await client.uploadBlob(digest, body.length, () => { opened++; return Readable.from([body]); });
        expect(sleeps).toEqual([10, 20, 40, 10, 20]);
        expect(opened).toBe(3);
        expect(reg.log.filter((l) => l === 'POST /v2/team/app/blobs/uploads/')).toHaveLength(6);
        expect(reg.blobs.has(digest)).toBe(true);
      } finally { client.close(); }
    });
  });

  it('gives up after the last attempt with a retryable RegistryError', async () => {
    await withServer({ failFirst: 100 }, async (host) => {
      const client = new RegistryClient(parseImageRef(`${host}/team/app:1`), { insecure: true, retry: { attempts: 3, baseMs: 1, maxMs: 1 }, sleep: noSleep });
      try {
        const err = await client.hasBlob(digest).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RegistryError);
        expect((err as RegistryError).retryable).toBe(true);
        expect((err as RegistryError).status).toBe(503);
      } finally { client.close(); }
    });
  });

  it('speaks TLS unless the registry is marked insecure: no plaintext request reaches an HTTP-only registry', async () => {
    await withServer({}, async (host, reg) => {
      const client = new RegistryClient(parseImageRef(`${host}/team/app:1`), { insecure: false, retry: { attempts: 1, baseMs: 1, maxMs: 1 }, sleep: noSleep });
      try {
        await expect(client.hasBlob(digest)).rejects.toThrow();
        expect(reg.log).toEqual([]);
      } finally { client.close(); }
    });
  });

  it('never sends the registry\'s token to another host: uploads and blob checks redirected to storage carry no credential', async () => {
    // A second loopback server stands in for object storage; it records what it was sent.
    const storageBlobs = new Map<string, Buffer>();
    const seen: string[] = [];
    const storage = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      seen.push(`${req.method ?? ''} ${url.pathname} authorization=${req.headers.authorization ?? '-'}`);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'PUT') { storageBlobs.set(url.searchParams.get('digest') ?? '', Buffer.concat(chunks)); res.writeHead(201).end(); return; }
        const m = /^\/blobs\/(.+)$/.exec(url.pathname);
        res.writeHead(m?.[1] && storageBlobs.has(m[1]) ? 200 : 404).end();
      });
    });
    await new Promise<void>((r) => storage.listen(0, '127.0.0.1', r));
    const storageOrigin = `http://127.0.0.1:${String((storage.address() as AddressInfo).port)}`;
    try {
      await withServer({ token: true, storage: storageOrigin }, async (host, reg) => {
        const client = new RegistryClient(parseImageRef(`${host}/team/app:1`), { insecure: true, credentials: { username: 'robot', password: 'pw' }, sleep: noSleep });
        try {
          expect(await client.hasBlob(digest)).toBe(false);
          await client.uploadBlob(digest, body.length, () => Readable.from([body]));
          expect(storageBlobs.get(digest)?.equals(body)).toBe(true);
          expect(await client.hasBlob(digest)).toBe(true);
          const manifest = Buffer.from('{"schemaVersion":2}');
          await client.putManifest('1', manifest, 'application/vnd.oci.image.manifest.v1+json');
        } finally { client.close(); }
        expect(seen).toEqual([
          `HEAD /blobs/${digest} authorization=-`,
          'PUT /v2/team/app/blobs/uploads/u1 authorization=-',
          `HEAD /blobs/${digest} authorization=-`,
        ]);
        // The registry itself still got the token: the manifest went through with it.
        expect(reg.manifests.has('1')).toBe(true);
      });
    } finally {
      storage.closeAllConnections();
      await new Promise((r) => storage.close(r));
    }
  });

  it('follows at most a few redirects, then fails clearly', async () => {
    const loop = http.createServer((req, res) => { res.writeHead(307, { location: req.url ?? '/' }).end(); });
    await new Promise<void>((r) => loop.listen(0, '127.0.0.1', r));
    const host = `127.0.0.1:${String((loop.address() as AddressInfo).port)}`;
    const client = new RegistryClient(parseImageRef(`${host}/team/app:1`), { insecure: true, retry: { attempts: 1, baseMs: 1, maxMs: 1 }, sleep: noSleep });
    try {
      await expect(client.hasBlob(digest)).rejects.toThrow(/more than 5 redirects/);
    } finally {
      client.close();
      loop.closeAllConnections();
      await new Promise((r) => loop.close(r));
    }
  });
});
