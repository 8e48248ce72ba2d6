/**
 * A small OCI distribution client: exactly what pushing one image needs. Hand-written because
 * the npm registry clients either buffer blobs in memory or pull in a container runtime; this
 * one streams the body from a factory (so a retry re-opens the file), asks the registry which
 * blobs it already has, and speaks Basic and Bearer-token auth.
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { backoffDelay, type Backoff } from '../runtime/backoff.js';

// ---- references -------------------------------------------------------------------------------

export interface ImageRef {
  /** host[:port] as used on the wire (docker.io → registry-1.docker.io). */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const DOCKER_HUB = 'docker.io';

/** `host:5000/ns/app:tag`, `app`, `ns/app@sha256:…` → parts, with Docker's defaults. */
export function parseImageRef(ref: string): ImageRef {
  let rest = ref.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new Error(`"${ref}": bad digest`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  let registry = DOCKER_HUB;
  let repository = rest;
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    repository = rest.slice(slash + 1);
  }
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repository)) {
    throw new Error(`"${ref}": bad repository name "${repository}"`);
  }
  if (tag !== undefined && !/^[\w][\w.-]{0,127}$/.test(tag)) throw new Error(`"${ref}": bad tag "${tag}"`);
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

export function formatRef(ref: ImageRef, digest: string): string {
  return `${ref.registry}/${ref.repository}@${digest}`;
}

// ---- credentials ------------------------------------------------------------------------------

export interface Credentials { username: string; password: string }

/** `.dockerconfigjson` (`{"auths": {host: {auth | username+password}}}`) → credentials for `registry`. */
export function credentialsFor(dockerConfigJson: string, registry: string): Credentials | undefined {
  let parsed: unknown;
  try { parsed = JSON.parse(dockerConfigJson); } catch { throw new Error('docker config is not JSON'); }
  const auths = (parsed as { auths?: Record<string, { auth?: string; username?: string; password?: string }> }).auths ?? {};
  const wanted = registry === DOCKER_HUB ? ['docker.io', 'index.docker.io', 'registry-1.docker.io'] : [registry];
  for (const [key, entry] of Object.entries(auths)) {
    const host = key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    if (!wanted.includes(host)) continue;
    if (entry.username !== undefined && entry.password !== undefined) return { username: entry.username, password: entry.password };
    if (entry.auth) {
      const text = Buffer.from(entry.auth, 'base64').toString('utf8');
      const i = text.indexOf(':');
      if (i > 0) return { username: text.slice(0, i), password: text.slice(i + 1) };
    }
  }
  return undefined;
}

export interface Challenge { scheme: string; params: Record<string, string> }

/** `Bearer realm="https://a/token",service="reg",scope="repository:x:pull"` → parts. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m?.[1]) return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p = re.exec(m[2] ?? ''); p; p = re.exec(m[2] ?? '')) {
    if (p[1]) params[p[1].toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: m[1].toLowerCase(), params };
}

// ---- transport --------------------------------------------------------------------------------

export class RegistryError extends Error {
  constructor(readonly status: number, message: string, readonly retryable: boolean) {
    super(message);
    this.name = 'RegistryError';
  }
}

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string }

type Body = Buffer | (() => Readable);

/** Tries per request (the first included), and the waits between them. */
export interface RetryPolicy extends Backoff { attempts: number }

export interface RegistryClientOptions {
  insecure: boolean;
  credentials?: Credentials;
  retry?: RetryPolicy;
  /** Injected so tests need not wait; must honour the signal. */
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
  onRetry?: (what: string, attempt: number, err: Error) => void;
}


const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseMs: 500, maxMs: 10_000 };

export class RegistryClient {
  private readonly base: URL;
  private readonly agent: http.Agent;
  private authorization: string | undefined;
  private readonly retry: RetryPolicy;

  constructor(readonly ref: ImageRef, private readonly options: RegistryClientOptions) {
    const host = ref.registry === DOCKER_HUB ? 'registry-1.docker.io' : ref.registry;
    this.base = new URL(`${options.insecure ? 'http' : 'https'}://${host}`);
    this.agent = options.insecure ? new http.Agent({ keepAlive: true }) : new https.Agent({ keepAlive: true });
    this.retry = options.retry ?? DEFAULT_RETRY;
  }

  close(): void { this.agent.destroy(); }

  /**
   * One request, following redirects (blob uploads and downloads are often sent on to storage).
   * Credentials go only where they were meant for: the registry's token or Basic credentials to
   * the registry's own origin, an explicit `authorization` header to the origin first asked; a hop
   * to another origin carries neither, as containerd's per-host authorizer does. A redirect from
   * HTTPS to plain HTTP is refused: the body is a process's memory.
   */
  private async send(method: string, url: URL, headers: Record<string, string>, body?: Body): Promise<Reply> {
    const firstOrigin = url.origin;
    let target = url;
    let verb = method;
    let payload = body;
    let sent = headers;
    for (let hop = 0; ; hop++) {
      const { authorization: explicit, ...rest } = sent;
      const credential = target.origin === firstOrigin ? explicit : undefined;
      const registryCredential = target.origin === this.base.origin ? this.authorization : undefined;
      const authorization = registryCredential ?? credential;
      const reply = await this.sendOnce(verb, target, { ...rest, ...(authorization ? { authorization } : {}) }, payload);
      const location = reply.headers.location;
      if (!REDIRECTS.has(reply.status) || !location) return reply;
      if (hop >= MAX_REDIRECTS) throw new RegistryError(reply.status, `${method} ${url.pathname}: more than ${MAX_REDIRECTS} redirects`, false);
      const next = new URL(location, target);
      if (target.protocol === 'https:' && next.protocol !== 'https:') {
        throw new RegistryError(reply.status, `${method} ${url.pathname}: refusing a redirect from HTTPS to ${next.protocol.replace(':', '')} (${next.origin})`, false);
      }
      // 307/308 repeat the request as is; 301/302/303 turn anything but GET/HEAD into a GET, as browsers and Go do.
      if (reply.status !== 307 && reply.status !== 308 && verb !== 'GET' && verb !== 'HEAD') {
        verb = 'GET';
        payload = undefined;
        const { 'content-length': _length, 'content-type': _type, ...kept } = sent;
        sent = kept;
      }
      target = next;
    }
  }

  private sendOnce(method: string, url: URL, headers: Record<string, string>, body?: Body): Promise<Reply> {
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise<Reply>((resolve, reject) => {
      const req = lib.request(url, {
        // The keep-alive agent speaks the registry's protocol; a redirect to the other one uses Node's default.
        method, agent: url.protocol === this.base.protocol ? this.agent : undefined,
        headers,
        ...(this.options.signal ? { signal: this.options.signal } : {}),
      }, (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (c: Buffer) => { if (kept < 64 * 1024) { chunks.push(c); kept += c.length; } });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(120_000, () => req.destroy(new Error(`${method} ${url.pathname}: no response for 120 s`)));
      req.on('error', reject);
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        const stream = body();
        stream.on('error', (e) => req.destroy(e));
        stream.pipe(req);
      }
    });
  }

  /** Sends with retries on network errors, 429 and 5xx; one re-try after authenticating on 401. */
  private async call(what: string, method: string, url: URL, headers: Record<string, string>, body?: Body): Promise<Reply> {
    let authed = false;
    for (let attempt = 1; ; attempt++) {
      let reply: Reply;
      try {
        reply = await this.send(method, url, headers, body);
      } catch (err) {
        if (this.options.signal?.aborted) throw err;
        const e = err instanceof Error ? err : new Error(String(err));
        if (attempt >= this.retry.attempts) throw new RegistryError(0, `${what}: ${e.message}`, true);
        this.options.onRetry?.(what, attempt, e);
        await this.options.sleep(backoffDelay(attempt, this.retry), this.options.signal);
        continue;
      }
      if (reply.status === 401 && !authed) {
        authed = true;
        await this.authenticate(reply.headers['www-authenticate']);
        attempt--;
        continue;
      }
      if ((reply.status === 429 || reply.status >= 500) && attempt < this.retry.attempts) {
        this.options.onRetry?.(what, attempt, new Error(`HTTP ${reply.status}`));
        await this.options.sleep(backoffDelay(attempt, this.retry), this.options.signal);
        continue;
      }
      return reply;
    }
  }

  private async authenticate(header: string | undefined): Promise<void> {
    const challenge = parseChallenge(header);
    const creds = this.options.credentials;
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (!challenge) throw new RegistryError(401, 'registry refused the request without an auth challenge', false);
    if (challenge.scheme === 'basic') {
      if (!basic) throw new RegistryError(401, `registry ${this.ref.registry} wants Basic auth and no credentials were given`, false);
      this.authorization = basic;
      return;
    }
    if (challenge.scheme !== 'bearer' || !challenge.params.realm) throw new RegistryError(401, `unsupported auth challenge "${header ?? ''}"`, false);
    const realm = new URL(challenge.params.realm);
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
    realm.searchParams.set('scope', `repository:${this.ref.repository}:pull,push`);
    this.authorization = undefined;
    const reply = await this.send('GET', realm, { accept: 'application/json', ...(basic ? { authorization: basic } : {}) });
    if (reply.status !== 200) throw new RegistryError(reply.status, `token endpoint ${realm.origin}${realm.pathname}: HTTP ${reply.status}`, reply.status >= 500);
    const body = JSON.parse(reply.body) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(reply.status, 'token endpoint returned no token', false);
    this.authorization = `Bearer ${token}`;
  }

  private url(path: string): URL {
    return new URL(`/v2/${this.ref.repository}/${path}`, this.base);
  }

  private fail(what: string, reply: Reply): never {
    throw new RegistryError(reply.status, `${what}: HTTP ${reply.status} ${reply.body.slice(0, 300)}`, reply.status === 429 || reply.status >= 500);
  }

  async hasBlob(digest: string): Promise<boolean> {
    const reply = await this.call('HEAD blob', 'HEAD', this.url(`blobs/${digest}`), {});
    if (reply.status === 200) return true;
    if (reply.status === 404) return false;
    return this.fail(`HEAD blob ${digest}`, reply);
  }

  /**
   * POST an upload session, then one streamed PUT with the digest and length: a monolithic
   * upload. A failed attempt starts a fresh session (the registry discards the old one).
   */
  async uploadBlob(digest: string, size: number, body: Body): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const start = await this.call('start upload', 'POST', this.url('blobs/uploads/'), { 'content-length': '0' });
      if (start.status !== 202) this.fail('start upload', start);
      const location = start.headers.location;
      if (!location) throw new RegistryError(start.status, 'start upload: no Location', false);
      const put = new URL(location, this.base);
      put.searchParams.set('digest', digest);
      let reply: Reply;
      try {
        reply = await this.send('PUT', put, { 'content-type': 'application/octet-stream', 'content-length': String(size) }, body);
      } catch (err) {
        if (this.options.signal?.aborted || attempt >= this.retry.attempts) throw new RegistryError(0, `upload ${digest}: ${err instanceof Error ? err.message : String(err)}`, true);
        this.options.onRetry?.(`upload ${digest}`, attempt, err instanceof Error ? err : new Error(String(err)));
        await this.options.sleep(backoffDelay(attempt, this.retry), this.options.signal);
        continue;
      }
      if (reply.status === 201) return;
      if ((reply.status === 429 || reply.status >= 500) && attempt < this.retry.attempts) {
        await this.options.sleep(backoffDelay(attempt, this.retry), this.options.signal);
        continue;
      }
      this.fail(`upload ${digest}`, reply);
    }
  }

  /** PUT the manifest under `reference` (tag or digest); returns the digest the registry computed. */
  async putManifest(reference: string, manifest: Buffer, mediaType: string): Promise<string> {
    const reply = await this.call('PUT manifest', 'PUT', this.url(`manifests/${reference}`), { 'content-type': mediaType, 'content-length': String(manifest.length) }, manifest);
    if (reply.status !== 201 && reply.status !== 200) this.fail(`PUT manifest ${reference}`, reply);
    const digest = reply.headers['docker-content-digest'];
    return typeof digest === 'string' ? digest : '';
  }
}
