/**
 * Keeping a server's certificate valid while it runs.
 *
 * - `CertHolder` owns what the server presents; `attach(server)` makes every change a
 *   `setSecureContext` call, so open connections finish on the old certificate and new
 *   handshakes get the new one, with no restart and no dropped request.
 * - `ensureSecret` makes the Secret hold a usable CA and serving certificate. Every write carries
 *   the resourceVersion it read (create of an existing name conflicts too), so when two replicas
 *   start at once exactly one write wins and the loser re-reads and adopts the winner's CA.
 * - `ensureCaBundle` keeps the CA bundle in every webhook of a MutatingWebhookConfiguration and
 *   of the ValidatingWebhookConfiguration of the same name (evictions), restoring it if someone
 *   overwrote it; it stands aside when cert-manager's cainjector owns the configuration.
 * - `runSecretManager` and `runFileReloader` are the loops (both stop with their AbortSignal).
 *
 * Order on renewal: Secret first, then caBundle, then the local server. A client that already
 * has the new bundle trusts both CAs (the old one stays in it until it expires), so replicas
 * that have not reloaded yet keep working; a client that still has the old bundle is only
 * handed a certificate from a new CA after the bundle was patched and `caPropagationMs` passed
 * (every replica patches before it reloads, so this holds for the ones that did not write).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { backoffDelay, type Backoff } from '../runtime/backoff.js';
import { sleep } from '../runtime/sleep.js';
import {
  generateMaterial, issueServing, serialFromBytes, servingNames,
  SERIAL_BYTES, type Entropy, type Identity, type Lifetimes, type Material, type Names,
} from './generate.js';
import { assess, lifetimeMs, message, notAfter, pairProblems, parseCerts, sanNames, type Assessment, type Loose } from './inspect.js';
import { StoreConflict, type CertStore, type PatchOperation, type SecretObject, type WebhookConfiguration, type WebhookKind } from './store.js';

export const CERT_MANAGER_ANNOTATION = 'cert-manager.io/inject-ca-from';
export const SECRET_TYPE_TLS = 'kubernetes.io/tls';
/** The CA bundle keeps at most this many CAs (the signer and the ones it replaced, while valid). */
const MAX_BUNDLE = 4;
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;
const PEM_BLOCKS = new RegExp(PEM_BLOCK.source, 'g');

export interface Served {
  cert: string;
  key: string;
  /** PEM bundle a client should trust. */
  ca: string;
  /** `fallback` is a throw-away self-signed certificate served only while the real source is broken. */
  source: 'secret' | 'files' | 'fallback';
  /** The CA that signed `cert`, when this process holds its key (secret mode): lets it re-issue on the spot. */
  signer?: { cert: string; key: string };
}

/**
 * The last line against serving an expired certificate. Renewal runs on a timer, and a timer can
 * be late (a loaded machine, a suspended VM, a clock jump); the guard looks at the clock when a
 * connection arrives instead, and swaps in a fresh certificate before the handshake starts.
 */
export interface ExpiryGuard {
  now: () => number;
  /** A replacement for `stale` issued right now, or undefined when none can be made here (files, an expired CA). */
  reissue: (stale: Served) => Served | undefined;
}

/** How close to its expiry a certificate is no longer handed to a new handshake: a sixth of its lifetime, at most 30 s. */
export function serveMarginMs(lifetime: number): number {
  return Math.min(30_000, Math.max(0, lifetime) / 6);
}

export class CertHolder {
  private served: Served;
  private readonly listeners = new Set<(s: Served) => void>();
  private readonly staleListeners = new Set<() => void>();
  /** notAfter and margin of `served.cert`, parsed once per certificate (the check runs on every connection). */
  private expiry: { cert: string; notAfter: number; margin: number } | undefined;
  /** The certificate an unfixable expiry was last logged for, so a flood of connections logs once. */
  private reported = '';

  constructor(initial: Served, private readonly log: Logger, private readonly guard?: ExpiryGuard) {
    this.served = initial;
  }

  get(): Served { return this.served; }

  /**
   * What a handshake starting now gets: the served pair, unless it is expired or within its
   * margin of expiry, in which case a fresh one is issued first (when the guard can) and the
   * renewal loop is woken to store a proper one.
   */
  current(): Served {
    if (!this.guard) return this.served;
    const now = this.guard.now();
    const { notAfter: expires, margin } = this.expiryOf(this.served.cert);
    if (expires - margin > now) return this.served;
    const stale = this.served;
    let next: Served | undefined;
    try { next = this.guard.reissue(stale); } catch (err) { this.log.error({ err: message(err) }, 'could not re-issue the serving certificate'); }
    for (const cb of this.staleListeners) cb();
    if (next) {
      this.log.warn({ notAfter: new Date(expires).toISOString(), now: new Date(now).toISOString() },
        'the serving certificate reached its expiry before its renewal ran (a late timer, a suspended VM or a clock jump); issued a fresh one before serving');
      this.set(next);
    } else if (this.reported !== stale.cert) {
      this.reported = stale.cert;
      this.log.error({ notAfter: new Date(expires).toISOString(), source: stale.source }, 'the serving certificate is expired or about to, and no fresh one can be issued here; clients will refuse it until it is replaced');
    }
    return this.served;
  }

  /** Called when `current()` found the served certificate stale: the renewal loop should run now. */
  onStale(cb: () => void): () => void {
    this.staleListeners.add(cb);
    return () => { this.staleListeners.delete(cb); };
  }

  private expiryOf(cert: string): { notAfter: number; margin: number } {
    if (this.expiry?.cert !== cert) {
      try {
        const [c] = parseCerts(cert);
        this.expiry = c ? { cert, notAfter: notAfter(c), margin: serveMarginMs(lifetimeMs(c)) } : { cert, notAfter: Infinity, margin: 0 };
      } catch {
        this.expiry = { cert, notAfter: Infinity, margin: 0 };
      }
    }
    return this.expiry;
  }

  /** Returns whether anything changed; listeners run only then. */
  set(next: Served): boolean {
    const prev = this.served;
    if (prev.cert === next.cert && prev.key === next.key && prev.ca === next.ca && prev.source === next.source) return false;
    this.served = next;
    for (const cb of this.listeners) {
      try { cb(next); } catch (err) { this.log.error({ err: message(err) }, 'certificate rotation listener failed'); }
    }
    return true;
  }

  onRotate(cb: (s: Served) => void): () => void {
    this.listeners.add(cb);
    return () => { this.listeners.delete(cb); };
  }

  /**
   * Keeps `server`'s certificate current; returns a detach function. The expiry check runs in a
   * `connection` listener placed before the TLS server's own: that one creates the TLS socket
   * from the context set at that moment, so a swap here reaches this very handshake.
   */
  attach(server: tls.Server): () => void {
    const apply = (s: Served): void => server.setSecureContext({ cert: s.cert, key: s.key });
    const check = (): void => { this.current(); };
    apply(this.current());
    server.prependListener('connection', check);
    const stop = this.onRotate(apply);
    return () => { stop(); server.off('connection', check); };
  }
}

/**
 * A fresh serving certificate for the same key and names, signed by the CA that signed the
 * stale one (the one every client already trusts), or undefined when there is no CA key here or
 * the CA itself has expired. Synchronous: it runs before a handshake.
 */
export function reissueServing(stale: Served, identity: Identity, certLifetimeMs: number, entropy: Pick<Entropy, 'now' | 'randomBytes'>): Served | undefined {
  if (!stale.signer) return undefined;
  const now = entropy.now();
  const [ca] = parseCerts(stale.signer.cert);
  if (!ca || notAfter(ca) - serveMarginMs(lifetimeMs(ca)) <= now) return undefined;
  const [old] = parseCerts(stale.cert);
  const cert = issueServing({
    caCertPem: stale.signer.cert, caKeyPem: stale.signer.key, keyPem: stale.key, serial: serialFromBytes(entropy.randomBytes(SERIAL_BYTES)),
    now, lifetimeMs: certLifetimeMs, names: withKept(servingNames(identity), old ? sanNames(old) : undefined),
  });
  return { ...stale, cert };
}

// ---------------------------------------------------------------- Secret

export interface SecretTarget {
  namespace: string;
  name: string;
  identity: Identity;
  lifetimes: Lifetimes;
}

export function decodeSecret(secret: SecretObject | undefined): Loose<Material> {
  const d = secret?.data ?? {};
  const get = (k: string): string | undefined => (d[k] === undefined ? undefined : Buffer.from(d[k] ?? '', 'base64').toString('utf8'));
  return { ca: get('ca.crt'), caKey: get('ca.key'), cert: get('tls.crt'), key: get('tls.key') };
}

export function encodeMaterial(m: Material): Record<string, string> {
  const b = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
  return { 'ca.crt': b(m.ca), 'ca.key': b(m.caKey), 'tls.crt': b(m.cert), 'tls.key': b(m.key) };
}

/** CAs from an old bundle worth keeping: parseable, CA, still valid at `now`, not `except`. */
function carriedCas(bundle: string | undefined, now: number, except: readonly string[]): string[] {
  const blocks = bundle?.match(PEM_BLOCKS) ?? [];
  const seen = new Set(except.map((e) => e.trim()));
  const kept: string[] = [];
  for (const b of blocks) {
    try {
      const [c] = parseCerts(b);
      if (c && c.ca && notAfter(c) > now && !seen.has(b.trim())) { kept.push(`${b.trim()}\n`); seen.add(b.trim()); }
    } catch { /* garbage in an old bundle is dropped */ }
  }
  return kept;
}

function bundle(signer: string, carried: readonly string[]): string {
  return [signer.trim() + '\n', ...carried].slice(0, MAX_BUNDLE).join('');
}

/** `want` plus the names an existing certificate already carried (see Assessment `keep`); IPs compared canonically. */
function withKept(want: Names, keep: Names | undefined): Names {
  if (!keep) return want;
  const canon = (ip: string): string => (net.isIPv6(ip) ? new net.SocketAddress({ address: ip, family: 'ipv6' }).address : ip);
  const ips = new Map([...want.ips, ...keep.ips].map((ip) => [canon(ip), ip] as const));
  return { dns: [...new Set([...want.dns, ...keep.dns])], ips: [...ips.values()] };
}

/** New material for a non-`ok` assessment. */
export async function renew(old: Loose<Material>, a: Exclude<Assessment, { kind: 'ok' }>, target: SecretTarget, entropy: Entropy): Promise<Material> {
  const now = entropy.now();
  switch (a.kind) {
    case 'new-ca':
    case 'rotate-ca': {
      const fresh = await generateMaterial(target.identity, target.lifetimes, entropy);
      return { ...fresh, ca: bundle(fresh.ca, carriedCas(old.ca, now, [fresh.ca])) };
    }
    case 'renew-cert':
    case 'prune': {
      // The signer's PEM block as stored (assess checked that it parses), so an unchanged CA keeps identical text.
      const signer = PEM_BLOCK.exec(old.ca ?? '')?.[0] ?? '';
      const caKey = old.caKey ?? '';
      const ca = bundle(signer, carriedCas(old.ca, now, [signer]));
      if (a.kind === 'prune' && old.cert && old.key) return { ca, caKey, cert: old.cert, key: old.key };
      const key = await entropy.generateKey();
      const cert = issueServing({
        caCertPem: signer, caKeyPem: caKey, keyPem: key, serial: serialFromBytes(entropy.randomBytes(SERIAL_BYTES)),
        now, lifetimeMs: target.lifetimes.certLifetimeMs, names: withKept(servingNames(target.identity), a.kind === 'renew-cert' ? a.keep : undefined),
      });
      return { ca, caKey, cert, key };
    }
  }
}

export interface EnsureResult { material: Material; wrote: boolean; renewAt: number }

/**
 * Makes the Secret hold usable material and returns it. Safe to run from any number of
 * replicas at once: every write is conditional, and a lost race means "read again".
 */
export async function ensureSecret(store: CertStore, target: SecretTarget, entropy: Entropy, log: Logger): Promise<EnsureResult> {
  const names = servingNames(target.identity);
  let wrote = false;
  for (let attempt = 0; attempt < 8; attempt++) {
    const existing = await store.getSecret(target.namespace, target.name);
    const old = decodeSecret(existing);
    const a = assess(old, entropy.now(), names);
    if (a.kind === 'ok') return { material: old as Material, wrote, renewAt: a.renewAt };
    const fresh = await renew(old, a, target, entropy);
    const where = `${target.namespace}/${target.name}`;
    try {
      if (!existing) {
        await store.createSecret({
          apiVersion: 'v1', kind: 'Secret', type: SECRET_TYPE_TLS,
          metadata: { name: target.name, namespace: target.namespace, labels: { 'app.kubernetes.io/managed-by': 'lazarus' } },
          data: encodeMaterial(fresh),
        });
        log.info({ secret: where }, 'created certificate Secret with a new CA');
      } else {
        await store.updateSecret({ ...existing, data: { ...(existing.data ?? {}), ...encodeMaterial(fresh) } });
        const level = a.kind === 'new-ca' && old.ca !== undefined ? 'error' : 'info';
        log[level]({ secret: where, action: a.kind, reasons: a.reasons }, level === 'error' ? 'certificate Secret was unusable; repaired it with a new CA' : 'renewed certificate Secret');
      }
      wrote = true;
    } catch (err) {
      if (!(err instanceof StoreConflict)) throw err;
      log.debug({ secret: where, attempt }, 'lost a certificate Secret write race; reading again');
      continue;
    }
    // Loop: the next read returns what won (usually our write), so every replica serves the same CA.
  }
  throw new Error(`certificate Secret ${target.namespace}/${target.name}: still conflicting after 8 attempts`);
}

export function managedByCertManager(config: WebhookConfiguration | undefined): boolean {
  return Boolean(config?.metadata.annotations?.[CERT_MANAGER_ANNOTATION]);
}

/** The patch that sets `caBundleB64` on every webhook that lacks it; each change is guarded by a `test` on the webhook's name. */
export function caBundlePatch(config: WebhookConfiguration, caBundleB64: string): PatchOperation[] {
  const ops: PatchOperation[] = [];
  (config.webhooks ?? []).forEach((w, i) => {
    if (w.clientConfig?.caBundle === caBundleB64) return;
    ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
    ops.push(w.clientConfig
      ? { op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundleB64 }
      : { op: 'add', path: `/webhooks/${i}/clientConfig`, value: { caBundle: caBundleB64 } });
  });
  return ops;
}

export type CaBundleOutcome = 'unchanged' | 'patched' | 'cert-manager' | 'missing';

/**
 * The mutating configuration decides (missing, cert-manager's); the validating one of the same
 * name (the eviction webhook) follows it. An install without it (older manifests), or RBAC that
 * cannot reach it, leaves evictions unheld but never stops the pod webhook's certificates.
 */
export async function ensureCaBundle(store: CertStore, webhookConfigName: string, caPem: string, log: Logger): Promise<CaBundleOutcome> {
  const b64 = Buffer.from(caPem, 'utf8').toString('base64');
  const outcome = await ensureOneCaBundle(store, 'mutating', webhookConfigName, b64, log);
  if (outcome === 'cert-manager') return outcome;
  try {
    await ensureOneCaBundle(store, 'validating', webhookConfigName, b64, log);
  } catch (err) {
    log.warn({ webhookConfiguration: webhookConfigName, err: message(err) }, 'validatingwebhookconfiguration: caBundle not injected; evictions are not held until it is');
  }
  return outcome;
}

async function ensureOneCaBundle(store: CertStore, kind: WebhookKind, webhookConfigName: string, b64: string, log: Logger): Promise<CaBundleOutcome> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const config = await store.getWebhookConfig(webhookConfigName, kind);
    if (!config) return 'missing';
    if (managedByCertManager(config)) return 'cert-manager';
    const ops = caBundlePatch(config, b64);
    if (ops.length === 0) return 'unchanged';
    try {
      await store.patchWebhookConfig(webhookConfigName, ops, kind);
      const names = (config.webhooks ?? []).filter((w) => w.clientConfig?.caBundle !== b64).map((w) => w.name);
      log.info({ webhookConfiguration: webhookConfigName, kind, webhooks: names }, 'injected caBundle');
      return 'patched';
    } catch (err) {
      if (!(err instanceof StoreConflict)) throw err;
    }
  }
  throw new Error(`${kind}webhookconfiguration ${webhookConfigName}: caBundle patch still conflicting after 5 attempts`);
}

export interface SecretManagerOptions extends SecretTarget {
  webhookConfigName?: string;
  /** Upper bound between checks of the Secret and the caBundle (default 30 s). */
  checkIntervalMs?: number;
  /**
   * After a CA change, how long the old (still valid) certificate keeps being served so the API
   * server's webhook client sees the new caBundle first (default 5 s).
   */
  caPropagationMs?: number;
}

/** Secret, then caBundle: the material to serve and when it is next due. */
export async function syncMaterial(store: CertStore, opts: SecretManagerOptions, entropy: Entropy, log: Logger): Promise<EnsureResult> {
  const result = await ensureSecret(store, opts, entropy, log);
  if (opts.webhookConfigName) {
    const outcome = await ensureCaBundle(store, opts.webhookConfigName, result.material.ca, log);
    if (outcome === 'missing') log.warn({ webhookConfiguration: opts.webhookConfigName }, 'webhook configuration not found; caBundle not injected yet');
    if (outcome === 'cert-manager') log.warn({ webhookConfiguration: opts.webhookConfigName }, `${CERT_MANAGER_ANNOTATION} is set: leaving caBundle to cert-manager`);
  }
  return result;
}

export function servedFrom(m: Material): Served {
  const signer = PEM_BLOCK.exec(m.ca)?.[0];
  return { cert: m.cert, key: m.key, ca: m.ca, source: 'secret', ...(signer && m.caKey ? { signer: { cert: signer, key: m.caKey } } : {}) };
}

/** Whether `next` comes from a different CA than `current` while `current` stays valid until `until`. */
export function caChangedWhileValid(current: string, next: string, until: number): boolean {
  try {
    const [a] = parseCerts(current);
    const [b] = parseCerts(next);
    return Boolean(a && b && a.issuer !== b.issuer && notAfter(a) > until);
  } catch {
    return false;
  }
}

/** One pass: Secret, then caBundle, then the local server. Returns when the next pass is due. */
export async function syncOnce(store: CertStore, opts: SecretManagerOptions, holder: CertHolder, entropy: Entropy, log: Logger, signal: AbortSignal): Promise<number> {
  const { material, renewAt } = await syncMaterial(store, opts, entropy, log);
  const current = holder.get();
  const delay = opts.caPropagationMs ?? 5000;
  if (opts.webhookConfigName && current.source === 'secret' && delay > 0 && caChangedWhileValid(current.cert, material.cert, entropy.now() + delay)) {
    // The bundle is patched; the API server picks it up through a watch. Switch after that.
    log.info({ delayMs: delay }, 'new CA: serving the old certificate a little longer while the caBundle propagates');
    await sleep(delay, signal);
    if (signal.aborted) return renewAt;
  }
  if (holder.set(servedFrom(material))) log.info({ notAfter: parseCerts(material.cert)[0]?.validTo }, 'serving certificate loaded');
  return renewAt;
}

/** Runs until `signal` aborts; errors are logged and retried with backoff, the last good certificate stays served. */
export async function runSecretManager(store: CertStore, opts: SecretManagerOptions, holder: CertHolder, entropy: Entropy, log: Logger, signal: AbortSignal): Promise<void> {
  const interval = opts.checkIntervalMs ?? 30_000;
  const retry: Backoff = { baseMs: Math.min(1000, interval), maxMs: interval };
  let failures = 0;
  // A stale certificate found at serve time cuts the wait short: the Secret needs the renewal too.
  let wake = new AbortController();
  const unsubscribe = holder.onStale(() => wake.abort());
  signal.addEventListener('abort', () => { unsubscribe(); wake.abort(); }, { once: true });
  const sleepUntilWoken = async (ms: number): Promise<void> => {
    await sleep(ms, AbortSignal.any([signal, wake.signal]));
    if (wake.signal.aborted) wake = new AbortController();
  };
  while (!signal.aborted) {
    let wait: number;
    try {
      const renewAt = await syncOnce(store, opts, holder, entropy, log, signal);
      wait = Math.min(interval, Math.max(20, renewAt - entropy.now()));
      failures = 0;
    } catch (err) {
      if (signal.aborted) return;
      log.error({ err: message(err), secret: `${opts.namespace}/${opts.name}` }, 'certificate sync failed; keeping the current certificate and retrying');
      wait = backoffDelay(++failures, retry);
    }
    await sleepUntilWoken(wait);
  }
}

// ---------------------------------------------------------------- files (cert-manager, mounted Secret)

export interface FilePair { certFile: string; keyFile: string }

export type FileLoad = { ok: true; cert: string; key: string } | { ok: false; problems: string[] };

export async function loadPair(files: FilePair, now: number): Promise<FileLoad> {
  let cert: string;
  let key: string;
  try {
    [cert, key] = await Promise.all([fs.promises.readFile(files.certFile, 'utf8'), fs.promises.readFile(files.keyFile, 'utf8')]);
  } catch (err) {
    return { ok: false, problems: [`cannot read ${files.certFile} / ${files.keyFile}: ${message(err)}`] };
  }
  const problems = pairProblems(cert, key, now);
  return problems.length ? { ok: false, problems } : { ok: true, cert, key };
}

async function signature(files: FilePair): Promise<string> {
  // stat follows symlinks, so the kubelet's atomic ..data swap changes ino/mtime here.
  const parts = await Promise.all([files.certFile, files.keyFile].map(async (f) => {
    try { const s = await fs.promises.stat(f); return `${s.ino}:${s.size}:${s.mtimeMs}`; } catch { return 'missing'; }
  }));
  return parts.join('|');
}

/**
 * Reloads the pair when it changes: fs.watch on both directories for promptness (Secret volumes
 * replace a symlink, so the directory is watched, not the file) and a periodic stat as the
 * fallback for file systems where watch is silent. A half-written or mismatched pair is
 * logged and skipped; the previous certificate stays served.
 */
export async function runFileReloader(files: FilePair, holder: CertHolder, now: () => number, log: Logger, signal: AbortSignal, pollIntervalMs = 2000, watch = true): Promise<void> {
  let last = await signature(files);
  let lastProblem = '';
  let wake: (() => void) | undefined;
  const watchers: fs.FSWatcher[] = [];
  for (const dir of watch ? new Set([path.dirname(files.certFile), path.dirname(files.keyFile)]) : []) {
    try {
      const w = fs.watch(dir, { signal }, () => wake?.());
      w.on('error', () => { /* the periodic stat covers it */ });
      watchers.push(w);
    } catch (err) {
      log.warn({ dir, err: message(err) }, 'cannot watch certificate directory; polling only');
    }
  }
  const check = async (): Promise<void> => {
    const sig = await signature(files);
    if (sig === last && holder.get().source === 'files') return;
    const loaded = await loadPair(files, now());
    if (!loaded.ok) {
      const text = loaded.problems.join('; ');
      if (text !== lastProblem) log.error({ certFile: files.certFile, keyFile: files.keyFile, problems: loaded.problems }, 'certificate files are unusable; keeping the current certificate');
      lastProblem = text;
      return; // `last` stays old: retried on the next tick
    }
    last = sig;
    lastProblem = '';
    if (holder.set({ cert: loaded.cert, key: loaded.key, ca: holder.get().source === 'files' ? holder.get().ca : '', source: 'files' })) {
      log.info({ certFile: files.certFile, notAfter: parseCerts(loaded.cert)[0]?.validTo }, 'reloaded certificate files');
    }
  };
  try {
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, pollIntervalMs);
        function done(): void { clearTimeout(timer); signal.removeEventListener('abort', done); wake = undefined; resolve(); }
        // A burst of watch events (several files swapped) settles before one reload.
        wake = () => { clearTimeout(timer); setTimeout(done, 50); wake = undefined; };
        signal.addEventListener('abort', done, { once: true });
      });
      if (signal.aborted) break;
      try { await check(); } catch (err) { log.error({ err: message(err) }, 'certificate file check failed'); }
    }
  } finally {
    for (const w of watchers) w.close();
  }
}

/** A throw-away self-signed pair so a server always has a certificate, even before the real one is available. */
export async function fallbackServed(identity: Identity, entropy: Entropy): Promise<Served> {
  const m = await generateMaterial(identity, { caLifetimeMs: 24 * 3_600_000, certLifetimeMs: 24 * 3_600_000 }, entropy);
  return { cert: m.cert, key: m.key, ca: m.ca, source: 'fallback' };
}

