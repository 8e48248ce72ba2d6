/**
 * `lazarus webhook`: the mutating admission webhook for pods.
 *
 * The serving certificate comes from certs/ (createCertSource), in exactly one of two ways:
 * - files: `--tls-cert-file F --tls-key-file F` — somebody else writes them (a mounted Secret,
 *   `lazarus certs`); they are reloaded when they change.
 * - secret: `--cert-secret NAME --webhook-config NAME --service S` — Lazarus keeps the Secret and
 *   the caBundle itself, renews before expiry and hot-reloads (setSecureContext). If the webhook
 *   configuration carries `cert-manager.io/inject-ca-from`, cert-manager owns the certificate:
 *   the files in `--cert-manager-dir` are served and reloaded instead, nothing is written.
 */
import os from 'node:os';
import path from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import { ALWAYS_EXCLUDED_NAMESPACES } from '../api/keys.js';
import type { Subcommand } from '../cli/subcommand.js';
import { parseFlags, port, usage, UsageError, type FlagSpec } from '../cli/flags.js';
import { createCertSource, createKubeStore, type CertSource, type CertSourceOptions, type CertStore, type Identity } from '../certs/index.js';
import { DEFAULT_CA_LIFETIME_MS, DEFAULT_CERT_LIFETIME_MS, identityProblems } from '../certs/generate.js';
import { createKubeClient, loadKubeConfig } from '../kube/client.js';
import { ClusterCache } from '../kube/cluster-cache.js';
import { createLogger } from '../runtime/log.js';
import { createRegistry } from '../runtime/metrics.js';
import { opsApp } from '../runtime/ops-app.js';
import { DEFAULT_SHUTDOWN_DRAIN_MS, Drain, drainBeforeExit, drainProblems, waitForStopSignal } from '../runtime/shutdown.js';
import { createEvictionHandler } from './eviction-handler.js';
import { kubeEvictionIO } from './eviction-io.js';
import { createAdmissionHandler } from './handler.js';
import { startOpsServer, startWebhookServer } from './server.js';

const FLAGS: Record<string, FlagSpec> = {
  port: { type: 'int', default: 9443, description: 'HTTPS port for POST /mutate' },
  'metrics-port': { type: 'int', default: 8080, description: 'plain HTTP port for /healthz, /readyz, /metrics (0 = off)' },
  'bind-address': { type: 'string', default: '0.0.0.0', description: 'address to listen on' },
  'tls-cert-file': { type: 'string', env: 'LAZARUS_TLS_CERT_FILE', description: 'files mode: serving certificate (PEM), reloaded when it changes' },
  'tls-key-file': { type: 'string', env: 'LAZARUS_TLS_KEY_FILE', description: 'files mode: serving key (PEM), reloaded when it changes' },
  'cert-secret': { type: 'string', description: 'secret mode: Secret holding the CA and serving certificate, created, renewed and kept by the webhook' },
  'cert-secret-namespace': { type: 'string', description: 'secret mode: namespace of --cert-secret (default: --namespace)' },
  'webhook-config': { type: 'string', description: 'secret mode: the MutatingWebhookConfiguration (and the ValidatingWebhookConfiguration of the same name, for evictions) whose webhooks get the caBundle' },
  service: { type: 'string', description: 'secret mode: Service the certificate is for (DNS names svc, svc.ns, svc.ns.svc, svc.ns.svc.cluster.local)' },
  'cert-dns': { type: 'list', description: 'secret mode: extra DNS name in the certificate (repeatable)' },
  'cert-ip': { type: 'list', description: 'secret mode: IP address in the certificate (repeatable)' },
  'ca-lifetime': { type: 'duration', description: 'secret mode: CA lifetime (default 8760h)' },
  'cert-lifetime': { type: 'duration', description: 'secret mode: serving certificate lifetime (default 2160h); renewed when a third is left' },
  'cert-check-interval': { type: 'duration', description: 'secret mode: how often the Secret and caBundle are checked (default 30s)' },
  'cert-manager-dir': { type: 'string', description: 'secret mode: where tls.crt and tls.key are mounted, served only if the webhook configuration turns out to be cert-manager\'s (default /tls)' },
  kubeconfig: { type: 'string', env: 'KUBECONFIG', description: 'kubeconfig (default: in-cluster)' },
  namespace: { type: 'string', default: 'lazarus-system', env: 'POD_NAMESPACE', description: "Lazarus' own namespace, never mutated" },
  'exclude-namespace': { type: 'list', description: 'more namespaces never mutated (repeatable)' },
  registry: { type: 'string', default: '', description: "trusted prefix for checkpoint images when the pod's RestorePolicy sets no spec.checkpoint.registry (the agent's --registry); only digest references under it are restored" },
  'log-level': { type: 'string', default: 'info', description: 'debug, info, warn or error' },
  'shutdown-drain': { type: 'duration', default: `${DEFAULT_SHUTDOWN_DRAIN_MS / 1000}s`, description: 'after SIGTERM: not ready at once, admissions still answered this long, then exit (SIGINT: at once)' },
};

const SECRET_ONLY = ['cert-secret-namespace', 'webhook-config', 'service', 'cert-dns', 'cert-ip', 'ca-lifetime', 'cert-lifetime', 'cert-check-interval', 'cert-manager-dir'] as const;
const DEFAULT_CHECK_INTERVAL_MS = 30_000;
const DEFAULT_CERT_MANAGER_DIR = '/tls';

export type TlsConfig =
  | { mode: 'files'; certFile: string; keyFile: string }
  | {
    mode: 'secret';
    secretName: string;
    secretNamespace: string;
    webhookConfig: string;
    identity: Identity;
    caLifetimeMs: number;
    certLifetimeMs: number;
    checkIntervalMs: number;
    /** Served instead when cert-manager owns the webhook configuration. */
    certManagerFiles: { certFile: string; keyFile: string };
  };

export interface WebhookConfig {
  port: number;
  metricsPort: number;
  bindAddress: string;
  tls: TlsConfig;
  kubeconfig: string | undefined;
  namespace: string;
  excludedNamespaces: ReadonlySet<string>;
  /** Trusted checkpoint-image prefix when a policy names no registry; '' for none. */
  defaultRegistry: string;
  logLevel: string;
  shutdownDrainMs: number;
}

function tlsConfig(values: Record<string, unknown>, namespace: string, problems: string[]): TlsConfig {
  const str = (k: string): string | undefined => (typeof values[k] === 'string' && values[k] !== '' ? values[k] : undefined);
  const list = (k: string): string[] => (Array.isArray(values[k]) ? values[k].map(String) : []);
  const ms = (k: string): number | undefined => (typeof values[k] === 'number' ? values[k] : undefined);
  const certFile = str('tls-cert-file');
  const keyFile = str('tls-key-file');
  const secretName = str('cert-secret');
  const files = certFile !== undefined || keyFile !== undefined;

  if (files && secretName !== undefined) {
    problems.push('choose one source for the serving certificate: --tls-cert-file/--tls-key-file (files) or --cert-secret (managed by the webhook), not both');
  } else if (!files && secretName === undefined) {
    problems.push('no serving certificate: give --tls-cert-file and --tls-key-file, or --cert-secret with --webhook-config and --service');
  }
  if (secretName === undefined) {
    if (files && (certFile === undefined || keyFile === undefined)) problems.push('--tls-cert-file and --tls-key-file go together');
    for (const k of SECRET_ONLY) if (values[k] !== undefined) problems.push(`--${k} only applies with --cert-secret`);
    return { mode: 'files', certFile: certFile ?? '', keyFile: keyFile ?? '' };
  }

  const webhookConfig = str('webhook-config');
  const service = str('service');
  if (webhookConfig === undefined) problems.push('--cert-secret needs --webhook-config (the MutatingWebhookConfiguration whose caBundle the webhook keeps)');
  if (service === undefined) problems.push('--cert-secret needs --service (the Service name the certificate is for)');
  const identity: Identity = { service: service ?? '', namespace, dnsNames: list('cert-dns'), ips: list('cert-ip') };
  if (service !== undefined) problems.push(...identityProblems(identity));
  const caLifetimeMs = ms('ca-lifetime') ?? DEFAULT_CA_LIFETIME_MS;
  const certLifetimeMs = ms('cert-lifetime') ?? DEFAULT_CERT_LIFETIME_MS;
  const checkIntervalMs = ms('cert-check-interval') ?? DEFAULT_CHECK_INTERVAL_MS;
  if (caLifetimeMs < 1000) problems.push('--ca-lifetime must be at least 1s');
  if (certLifetimeMs < 1000) problems.push('--cert-lifetime must be at least 1s');
  if (certLifetimeMs > caLifetimeMs) problems.push('--cert-lifetime must not exceed --ca-lifetime');
  if (checkIntervalMs < 100) problems.push('--cert-check-interval must be at least 100ms');
  const dir = str('cert-manager-dir') ?? DEFAULT_CERT_MANAGER_DIR;
  return {
    mode: 'secret', secretName, secretNamespace: str('cert-secret-namespace') ?? namespace, webhookConfig: webhookConfig ?? '',
    identity, caLifetimeMs, certLifetimeMs, checkIntervalMs,
    certManagerFiles: { certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key') },
  };
}

export function parseWebhookConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<WebhookConfig> {
  const { values, positionals, problems } = parseFlags(argv, FLAGS, env);
  if (positionals.length) problems.push(`unexpected argument ${positionals[0] ?? ''}`);
  const namespace = String(values.namespace);
  const config: WebhookConfig = {
    port: port('port', values.port, problems),
    metricsPort: port('metrics-port', values['metrics-port'], problems),
    bindAddress: String(values['bind-address']),
    tls: tlsConfig(values, namespace, problems),
    kubeconfig: values.kubeconfig as string | undefined,
    namespace,
    excludedNamespaces: new Set([...ALWAYS_EXCLUDED_NAMESPACES, namespace, ...((values['exclude-namespace'] as string[] | undefined) ?? [])]),
    defaultRegistry: String(values.registry).trim().replace(/\/+$/, ''),
    logLevel: String(values['log-level']),
    shutdownDrainMs: typeof values['shutdown-drain'] === 'number' ? values['shutdown-drain'] : DEFAULT_SHUTDOWN_DRAIN_MS,
  };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(config.defaultRegistry) || /[@\s]/.test(config.defaultRegistry)) {
    problems.push(`--registry: "${config.defaultRegistry}" is not a registry prefix like registry.example/lazarus (no scheme, tag or digest)`);
  }
  problems.push(...drainProblems(config.shutdownDrainMs));
  if (!['debug', 'info', 'warn', 'error'].includes(config.logLevel)) problems.push(`--log-level: "${config.logLevel}" is not debug, info, warn or error`);
  if (problems.length) throw new UsageError(problems);
  return Object.freeze({ ...config, tls: Object.freeze(config.tls) });
}

/** What createCertSource is given for a parsed configuration; `store` is only used in secret mode. */
export function certSourceOptions(tls: TlsConfig, namespace: string, store: CertStore): CertSourceOptions {
  switch (tls.mode) {
    case 'files':
      return { mode: 'files', certFile: tls.certFile, keyFile: tls.keyFile, identity: { service: 'lazarus-webhook', namespace } };
    case 'secret':
      return {
        mode: 'secret', store, secretNamespace: tls.secretNamespace, secretName: tls.secretName, webhookConfigName: tls.webhookConfig,
        identity: tls.identity, caLifetimeMs: tls.caLifetimeMs, certLifetimeMs: tls.certLifetimeMs, checkIntervalMs: tls.checkIntervalMs,
        certFile: tls.certManagerFiles.certFile, keyFile: tls.certManagerFiles.keyFile,
      };
  }
}

/** Why the webhook should not receive traffic (now or any more), from its drain, its caches and its certificate. */
export function notReadyReason(cacheProblem: string | undefined, certs: Pick<CertSource, 'ready'>, drain?: Pick<Drain, 'notReadyReason'>): string | undefined {
  return drain?.notReadyReason() ?? cacheProblem ?? (certs.ready() ? undefined : 'serving a throw-away certificate until the real one loads');
}

/** Certificate expiry and rotations, so an alert fires long before a certificate lapses. */
export function certMetrics(registry: Registry, certs: CertSource): () => void {
  new Gauge({
    name: 'lazarus_webhook_certificate_expiry_timestamp_seconds', help: 'NotAfter of the serving certificate, in seconds since the epoch.',
    registers: [registry], collect() { this.set(certs.expiresAt() / 1000); },
  });
  const rotations = new Counter({ name: 'lazarus_webhook_certificate_rotations_total', help: 'Serving certificate changes loaded without a restart.', registers: [registry] });
  return certs.onRotate(() => rotations.inc());
}

export const command: Subcommand = {
  summary: 'admission webhooks: start pods from their latest checkpoint; hold evictions until a fresh one exists',
  async run(argv, env) {
    if (argv.includes('--help')) { console.log(usage('webhook', FLAGS)); return 0; }
    const config = parseWebhookConfig(argv, env);
    const log = createLogger('webhook', config.logLevel);
    const client = await createKubeClient(loadKubeConfig(config.kubeconfig));
    const stop = new AbortController();
    const certs = await createCertSource(certSourceOptions(config.tls, config.namespace, createKubeStore(client)), { logger: log, signal: stop.signal });
    const cache = new ClusterCache(client, log);
    void cache.start(stop.signal);

    const registry = createRegistry('webhook');
    certMetrics(registry, certs);
    const drain = new Drain();
    const notReady = (): string | undefined => notReadyReason(cache.notSynced(), certs, drain);
    const ops = opsApp({ registry, notReadyReason: notReady });
    const handle = createAdmissionHandler({
      view: cache, generation: (namespace: string) => cache.generation(namespace), notReady: () => cache.notSynced(), excludedNamespaces: config.excludedNamespaces,
      defaultRegistry: config.defaultRegistry, clock: Date.now, log, registry,
    });
    // POST /validate-eviction: holds evictions of opted-in pods until a fresh checkpoint is Ready.
    const handleEviction = createEvictionHandler({
      view: cache, io: kubeEvictionIO(client, { instance: os.hostname(), now: Date.now }), notReady: () => cache.notSynced(),
      excludedNamespaces: config.excludedNamespaces, clock: Date.now, log, registry,
    });
    const servers = [await startWebhookServer({ port: config.port, host: config.bindAddress, tls: certs, handle, handleEviction, ops, draining: () => drain.draining })];
    if (config.metricsPort) servers.push(await startOpsServer(ops, config.metricsPort, config.bindAddress));
    log.info({ port: servers[0]?.port, metricsPort: servers[1]?.port, server: client.server, certificates: certs.mode }, 'webhook serving');

    // The caches keep running through the drain: admissions answered then are answered as well as before.
    await drainBeforeExit(await waitForStopSignal(), drain, config.shutdownDrainMs, log);
    stop.abort();
    await Promise.all(servers.map((s) => s.close()));
    await certs.stop();
    return 0;
  },
};
