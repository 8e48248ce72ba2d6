/**
 * `lazarus certs`: the one-shot install step (like kube-webhook-certgen).
 *
 * Offline: `--out-dir D --service S --namespace N [--dns X]... [--ip A]...` writes ca.crt,
 * tls.crt and tls.key (PEM; the key 0600) with no cluster.
 * In a cluster: `--secret NAME [--secret-namespace NS] [--webhook-config NAME] [--kubeconfig K]`
 * creates the Secret or reuses it when it is still good (repairing it when not), then injects
 * its CA bundle into every webhook of the MutatingWebhookConfiguration. With `--out-dir` as
 * well, the files written are the Secret's. A configuration annotated for cert-manager is left
 * alone: no Secret, no caBundle.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Subcommand } from '../cli/subcommand.js';
import { parseFlags, usage, UsageError, type FlagSpec } from '../cli/flags.js';
import { parseDuration } from '../api/duration.js';
import { createLogger, type Logger } from '../runtime/log.js';
import { generateMaterial, identityProblems, systemEntropy, type Entropy, type Identity, type Material } from './generate.js';
import { CERT_MANAGER_ANNOTATION, ensureCaBundle, ensureSecret, managedByCertManager } from './manager.js';
import type { CertStore } from './store.js';

const specs: Readonly<Record<string, FlagSpec>> = {
  'out-dir': { type: 'string', description: 'write ca.crt, tls.crt and tls.key here' },
  service: { type: 'string', description: 'Service name the certificate is for', required: true },
  namespace: { type: 'string', description: 'namespace of the Service', required: true },
  dns: { type: 'list', description: 'extra DNS name (repeatable)' },
  ip: { type: 'list', description: 'IP address SAN (repeatable)' },
  'ca-lifetime': { type: 'string', description: 'CA lifetime (default 8760h)' },
  'cert-lifetime': { type: 'string', description: 'serving certificate lifetime (default 2160h)' },
  kubeconfig: { type: 'string', description: 'kubeconfig (default: in-cluster, then $KUBECONFIG)', env: 'KUBECONFIG' },
  secret: { type: 'string', description: 'Secret to create or reuse (cluster mode)' },
  'secret-namespace': { type: 'string', description: 'namespace of the Secret (default: --namespace)' },
  'webhook-config': { type: 'string', description: 'MutatingWebhookConfiguration (and the ValidatingWebhookConfiguration of the same name, for evictions) whose webhooks get the caBundle' },
  'log-level': { type: 'string', description: 'log level', default: 'info' },
  help: { type: 'bool', description: 'print this help' },
};

export interface CertsConfig {
  outDir?: string;
  identity: Identity;
  caLifetimeMs: number;
  certLifetimeMs: number;
  kubeconfig?: string;
  secret?: { namespace: string; name: string };
  webhookConfig?: string;
  logLevel: string;
}

function lifetime(name: string, raw: unknown, fallback: string, problems: string[]): number {
  const text = typeof raw === 'string' ? raw : fallback;
  const ms = parseDuration(text);
  if (ms === undefined || ms < 1000) { problems.push(`--${name}: "${text}" is not a duration of at least 1s, like 2160h`); return 0; }
  return ms;
}

export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): CertsConfig | 'help' {
  const { values: v, positionals, problems } = parseFlags(argv, specs, env);
  if (v.help === true) return 'help';
  if (positionals.length) problems.push(`unexpected argument ${positionals.join(' ')}`);
  const str = (k: string): string | undefined => (typeof v[k] === 'string' && v[k] !== '' ? v[k] : undefined);
  const list = (k: string): string[] => (Array.isArray(v[k]) ? v[k] : []);
  const identity: Identity = { service: str('service') ?? '', namespace: str('namespace') ?? '', dnsNames: list('dns'), ips: list('ip') };
  if (identity.service && identity.namespace) problems.push(...identityProblems(identity));
  const caLifetimeMs = lifetime('ca-lifetime', v['ca-lifetime'], '8760h', problems);
  const certLifetimeMs = lifetime('cert-lifetime', v['cert-lifetime'], '2160h', problems);
  if (caLifetimeMs && certLifetimeMs && certLifetimeMs > caLifetimeMs) problems.push('--cert-lifetime must not exceed --ca-lifetime');
  const secretName = str('secret');
  const outDir = str('out-dir');
  if (!secretName && !outDir) problems.push('give --out-dir (offline) or --secret (cluster), or both');
  if (!secretName && str('webhook-config')) problems.push('--webhook-config needs --secret (the CA comes from the Secret)');
  if (problems.length) throw new UsageError(problems);
  const kubeconfig = str('kubeconfig');
  const webhookConfig = str('webhook-config');
  return Object.freeze({
    identity, caLifetimeMs, certLifetimeMs, logLevel: str('log-level') ?? 'info',
    ...(outDir ? { outDir } : {}),
    ...(kubeconfig ? { kubeconfig } : {}),
    ...(secretName ? { secret: { name: secretName, namespace: str('secret-namespace') ?? identity.namespace } } : {}),
    ...(webhookConfig ? { webhookConfig } : {}),
  });
}

export async function writeFiles(dir: string, m: Pick<Material, 'ca' | 'cert' | 'key'>): Promise<void> {
  await fs.promises.mkdir(dir, { recursive: true });
  // Write then rename, so a reader never sees half a file.
  const put = async (name: string, text: string, mode: number): Promise<void> => {
    const tmp = path.join(dir, `.${name}.tmp`);
    await fs.promises.writeFile(tmp, text, { mode });
    await fs.promises.chmod(tmp, mode);
    await fs.promises.rename(tmp, path.join(dir, name));
  };
  await put('ca.crt', m.ca, 0o644);
  await put('tls.key', m.key, 0o600);
  await put('tls.crt', m.cert, 0o644);
}

export interface CertsDeps {
  logger: Logger;
  entropy: Entropy;
  /** Opens the cluster store (kube-backed in production). */
  openStore: (kubeconfig: string | undefined) => Promise<CertStore>;
}

/** The whole command, given its parsed config and dependencies. Returns the exit code. */
export async function runCerts(cfg: CertsConfig, deps: CertsDeps): Promise<number> {
  const log = deps.logger;
  const lifetimes = { caLifetimeMs: cfg.caLifetimeMs, certLifetimeMs: cfg.certLifetimeMs };
  if (!cfg.secret) {
    const m = await generateMaterial(cfg.identity, lifetimes, deps.entropy);
    if (cfg.outDir) await writeFiles(cfg.outDir, m);
    log.info({ outDir: cfg.outDir }, 'wrote ca.crt, tls.crt, tls.key');
    return 0;
  }
  const store = await deps.openStore(cfg.kubeconfig);
  if (cfg.webhookConfig) {
    const config = await store.getWebhookConfig(cfg.webhookConfig);
    if (managedByCertManager(config)) {
      log.info({ webhookConfiguration: cfg.webhookConfig }, `${CERT_MANAGER_ANNOTATION} is set: cert-manager owns the certificate; nothing to do`);
      return 0;
    }
  }
  const { material, wrote } = await ensureSecret(store, { ...cfg.secret, identity: cfg.identity, lifetimes }, deps.entropy, log);
  if (!wrote) log.info({ secret: `${cfg.secret.namespace}/${cfg.secret.name}` }, 'certificate Secret is valid; reusing it');
  if (cfg.webhookConfig) {
    const outcome = await ensureCaBundle(store, cfg.webhookConfig, material.ca, log);
    if (outcome === 'missing') {
      log.error({ webhookConfiguration: cfg.webhookConfig }, 'webhook configuration not found');
      return 1;
    }
    if (outcome === 'unchanged') log.info({ webhookConfiguration: cfg.webhookConfig }, 'caBundle already injected');
  }
  if (cfg.outDir) await writeFiles(cfg.outDir, material);
  return 0;
}

export const command: Subcommand = {
  summary: 'generate the CA and serving certificate; store them in a Secret and inject the caBundle',
  async run(argv, env) {
    const cfg = parseConfig(argv, env);
    if (cfg === 'help') { process.stdout.write(`${usage('certs', specs)}\n`); return 0; }
    return runCerts(cfg, {
      logger: createLogger('certs', cfg.logLevel),
      entropy: systemEntropy,
      async openStore(kubeconfig) {
        const { createKubeClient, loadKubeConfig } = await import('../kube/client.js');
        const { createKubeStore } = await import('./kube-store.js');
        return createKubeStore(await createKubeClient(loadKubeConfig(kubeconfig)));
      },
    });
  },
};
