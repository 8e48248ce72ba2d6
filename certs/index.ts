/**
 * Certificates for the webhook and extender servers — the API they use.
 *
 * ```ts
 * const certs = await createCertSource({
 *   mode: 'secret',                       // or 'files' / 'cert-manager' with certFile + keyFile
 *   store: createKubeStore(client),       // certs/kube-store.ts; MemoryStore in tests
 *   secretNamespace: 'lazarus-system', secretName: 'lazarus-webhook-tls',
 *   webhookConfigName: 'lazarus',         // caBundle injected into every webhook of it
 *   identity: { service: 'lazarus-webhook', namespace: 'lazarus-system' },
 *   certFile, keyFile,                    // used if the configuration turns out to be cert-manager's
 * }, { logger, signal });
 * const server = https.createServer(certs.secureContextOptions(), app);
 * certs.attach(server);                   // setSecureContext on every rotation
 * certs.onRotate(() => metrics.rotations.inc());
 * certs.ready();                          // false while a throw-away certificate is served
 * certs.expiresAt();                      // NotAfter (ms) of what is served, for a gauge
 * await certs.stop();                     // also when `signal` aborts
 * ```
 *
 * Modes:
 * - `secret`: Lazarus owns the CA. The Secret (`ca.crt` bundle, `ca.key`, `tls.crt`, `tls.key`,
 *   type kubernetes.io/tls) is created or repaired race-safely, the serving certificate renewed
 *   when less than a third of its lifetime is left (the CA likewise, keeping the old CA in the
 *   bundle while it is valid; after a CA change the old certificate is served `caPropagationMs`
 *   longer so the API server sees the new caBundle first), the caBundle kept injected (checked
 *   every `checkIntervalMs`, restored if overwritten). If the webhook configuration carries
 *   `cert-manager.io/inject-ca-from`, this mode becomes `cert-manager` at start.
 * - `files` / `cert-manager`: somebody else writes the files (a mounted Secret); they are
 *   reloaded when they change. Nothing is written to the cluster.
 * A certificate past (or within a sixth of its lifetime, at most 30 s, of) its expiry is never
 * handed to a new handshake when a fresh one can be made: `attach` checks the clock on every
 * connection and, in secret mode, re-issues from the CA on the spot if the renewal timer was late.
 * In every mode a server always has a certificate: if the real one is not available at start
 * (unreadable files, API down), a throw-away self-signed one is served, the problem is logged,
 * and the real one replaces it as soon as it can be loaded.
 *
 * Lower layers: generate.ts (pure issuance), inspect.ts (pure checks), store.ts (the store
 * interface and an in-memory fake), kube-store.ts (the API adapter), manager.ts (the loops).
 */
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { DEFAULT_CA_LIFETIME_MS, DEFAULT_CERT_LIFETIME_MS, systemEntropy, type Entropy, type Identity } from './generate.js';
import { message, notAfter, parseCerts } from './inspect.js';
import {
  CERT_MANAGER_ANNOTATION, CertHolder, fallbackServed, loadPair, managedByCertManager, reissueServing, runFileReloader,
  runSecretManager, servedFrom, syncMaterial, type ExpiryGuard, type FilePair, type Served, type SecretManagerOptions,
} from './manager.js';
import type { CertStore } from './store.js';

export type { Identity } from './generate.js';
export type { CertStore } from './store.js';
export type { Served } from './manager.js';
export { MemoryStore, StoreConflict } from './store.js';
export { createKubeStore } from './kube-store.js';

export type CertMode = 'files' | 'secret' | 'cert-manager';

export interface FilesOptions {
  mode: 'files' | 'cert-manager';
  certFile: string;
  keyFile: string;
  /** Stat fallback period (default 2 s). */
  pollIntervalMs?: number;
  /** fs.watch for prompt reloads (default true); false where inotify is unavailable or exhausted. */
  watch?: boolean;
  /** Names for the throw-away certificate served while the files are unusable. */
  identity?: Identity;
}

export interface SecretOptions {
  mode: 'secret';
  store: CertStore;
  secretNamespace: string;
  secretName: string;
  webhookConfigName?: string;
  identity: Identity;
  caLifetimeMs?: number;
  certLifetimeMs?: number;
  checkIntervalMs?: number;
  /** After a CA change, serve the old certificate this long while the caBundle propagates (default 5 s). */
  caPropagationMs?: number;
  /** Mounted files, used when the webhook configuration is managed by cert-manager. */
  certFile?: string;
  keyFile?: string;
  pollIntervalMs?: number;
  watch?: boolean;
}

export type CertSourceOptions = FilesOptions | SecretOptions;

export interface CertSourceDeps {
  logger: Logger;
  signal?: AbortSignal;
  entropy?: Entropy;
}

export interface CertSource {
  readonly mode: CertMode;
  /** For `https.createServer(...)`. */
  secureContextOptions(): { cert: string; key: string };
  /** PEM bundle a client should trust ('' when unknown, e.g. cert-manager files without ca.crt). */
  caBundle(): string;
  onRotate(cb: (served: Served) => void): () => void;
  attach(server: tls.Server): () => void;
  /** True once the real certificate (not the throw-away fallback) is served. */
  ready(): boolean;
  /** NotAfter of the served certificate, epoch ms (for an expiry gauge). */
  expiresAt(): number;
  stop(): Promise<void>;
}

const FALLBACK_IDENTITY: Identity = { service: 'lazarus', namespace: 'default' };

export async function createCertSource(options: CertSourceOptions, deps: CertSourceDeps): Promise<CertSource> {
  const log = deps.logger;
  const entropy = deps.entropy ?? systemEntropy;
  const stopper = new AbortController();
  const onOuterAbort = (): void => stopper.abort();
  deps.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const signal = stopper.signal;

  let mode: CertMode = options.mode;
  let files: FilePair | undefined = options.mode === 'secret' ? undefined : { certFile: options.certFile, keyFile: options.keyFile };
  if (options.mode === 'secret' && options.webhookConfigName) {
    try {
      const config = await options.store.getWebhookConfig(options.webhookConfigName);
      if (managedByCertManager(config)) {
        if (!options.certFile || !options.keyFile) {
          throw new Error(`webhook configuration ${options.webhookConfigName} has ${CERT_MANAGER_ANNOTATION}: cert-manager owns the certificate, so certFile and keyFile (--tls-cert-file/--tls-key-file) are required`);
        }
        mode = 'cert-manager';
        files = { certFile: options.certFile, keyFile: options.keyFile };
        log.info({ webhookConfiguration: options.webhookConfigName }, `${CERT_MANAGER_ANNOTATION} is set: cert-manager mode, only reloading mounted files`);
      }
    } catch (err) {
      if (err instanceof Error && err.message.includes(CERT_MANAGER_ANNOTATION)) throw err;
      log.warn({ err: message(err) }, 'cannot read the webhook configuration at start; assuming Lazarus manages the certificate');
    }
  }

  let holder: CertHolder;
  let loop: Promise<void>;
  if (files) {
    const pair = files;
    const loaded = await loadPair(pair, entropy.now());
    // Somebody else renews the files: an expiry at serve time can only be reported.
    const guard: ExpiryGuard = { now: entropy.now, reissue: () => undefined };
    if (loaded.ok) holder = new CertHolder({ cert: loaded.cert, key: loaded.key, ca: '', source: 'files' }, log, guard);
    else {
      log.error({ problems: loaded.problems, certFile: pair.certFile, keyFile: pair.keyFile }, 'certificate files are unusable at start; serving a throw-away self-signed certificate until they are fixed');
      holder = new CertHolder(await fallbackServed(options.identity ?? FALLBACK_IDENTITY, entropy), log, guard);
    }
    loop = runFileReloader(pair, holder, entropy.now, log, signal, options.pollIntervalMs ?? 2000, options.watch ?? true);
  } else if (options.mode === 'secret') {
    const managerOptions: SecretManagerOptions = {
      namespace: options.secretNamespace, name: options.secretName, identity: options.identity,
      lifetimes: { caLifetimeMs: options.caLifetimeMs ?? DEFAULT_CA_LIFETIME_MS, certLifetimeMs: options.certLifetimeMs ?? DEFAULT_CERT_LIFETIME_MS },
      ...(options.webhookConfigName ? { webhookConfigName: options.webhookConfigName } : {}),
      ...(options.checkIntervalMs ? { checkIntervalMs: options.checkIntervalMs } : {}),
      ...(options.caPropagationMs !== undefined ? { caPropagationMs: options.caPropagationMs } : {}),
    };
    let initial: Served | undefined;
    try {
      initial = servedFrom((await syncMaterial(options.store, managerOptions, entropy, log)).material);
    } catch (err) {
      log.error({ err: message(err) }, 'cannot get the certificate Secret at start; serving a throw-away self-signed certificate and retrying');
    }
    const identity = options.identity;
    const guard: ExpiryGuard = { now: entropy.now, reissue: (stale) => reissueServing(stale, identity, managerOptions.lifetimes.certLifetimeMs, entropy) };
    holder = new CertHolder(initial ?? await fallbackServed(options.identity, entropy), log, guard);
    loop = runSecretManager(options.store, managerOptions, holder, entropy, log, signal);
  } else {
    throw new Error('unreachable: files mode without files');
  }

  return {
    mode,
    secureContextOptions: () => { const s = holder.current(); return { cert: s.cert, key: s.key }; },
    caBundle: () => holder.get().ca,
    onRotate: (cb) => holder.onRotate(cb),
    attach: (server) => holder.attach(server),
    ready: () => holder.get().source !== 'fallback',
    expiresAt: () => {
      const [cert] = parseCerts(holder.get().cert);
      return cert ? notAfter(cert) : 0;
    },
    async stop() {
      stopper.abort();
      deps.signal?.removeEventListener('abort', onOuterAbort);
      await loop;
    },
  };
}
