/** `lazarus webhook`: the mutating admission webhook for pods. */
import { readFileSync } from 'node:fs';
import { ALWAYS_EXCLUDED_NAMESPACES } from '../api/keys.js';
import type { Subcommand } from '../cli/main.js';
import { parseFlags, port, usage, UsageError, type FlagSpec } from '../cli/flags.js';
import { createKubeClient, loadKubeConfig } from '../kube/client.js';
import { ClusterCache } from '../kube/cluster-cache.js';
import { createLogger } from '../runtime/log.js';
import { createRegistry } from '../runtime/metrics.js';
import { opsApp } from '../runtime/ops-app.js';
import { createAdmissionHandler } from './handler.js';
import { startOpsServer, startWebhookServer } from './server.js';

const FLAGS: Record<string, FlagSpec> = {
  port: { type: 'int', default: 9443, description: 'HTTPS port for POST /mutate' },
  'metrics-port': { type: 'int', default: 8080, description: 'plain HTTP port for /healthz, /readyz, /metrics (0 = off)' },
  'bind-address': { type: 'string', default: '0.0.0.0', description: 'address to listen on' },
  'tls-cert-file': { type: 'string', required: true, env: 'LAZARUS_TLS_CERT_FILE', description: 'serving certificate (PEM)' },
  'tls-key-file': { type: 'string', required: true, env: 'LAZARUS_TLS_KEY_FILE', description: 'serving key (PEM)' },
  kubeconfig: { type: 'string', env: 'KUBECONFIG', description: 'kubeconfig (default: in-cluster)' },
  namespace: { type: 'string', default: 'lazarus-system', env: 'POD_NAMESPACE', description: "Lazarus' own namespace, never mutated" },
  'exclude-namespace': { type: 'list', description: 'more namespaces never mutated (repeatable)' },
  'log-level': { type: 'string', default: 'info', description: 'debug, info, warn or error' },
};

export interface WebhookConfig {
  port: number;
  metricsPort: number;
  bindAddress: string;
  tlsCertFile: string;
  tlsKeyFile: string;
  kubeconfig: string | undefined;
  excludedNamespaces: ReadonlySet<string>;
  logLevel: string;
}

export function parseWebhookConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<WebhookConfig> {
  const { values, positionals, problems } = parseFlags(argv, FLAGS, env);
  if (positionals.length) problems.push(`unexpected argument ${positionals[0] ?? ''}`);
  const config: WebhookConfig = {
    port: port('port', values.port, problems),
    metricsPort: port('metrics-port', values['metrics-port'], problems),
    bindAddress: String(values['bind-address']),
    tlsCertFile: String(values['tls-cert-file'] ?? ''),
    tlsKeyFile: String(values['tls-key-file'] ?? ''),
    kubeconfig: values.kubeconfig as string | undefined,
    excludedNamespaces: new Set([...ALWAYS_EXCLUDED_NAMESPACES, String(values.namespace), ...((values['exclude-namespace'] as string[] | undefined) ?? [])]),
    logLevel: String(values['log-level']),
  };
  if (!['debug', 'info', 'warn', 'error'].includes(config.logLevel)) problems.push(`--log-level: "${config.logLevel}" is not debug, info, warn or error`);
  if (problems.length) throw new UsageError(problems);
  return Object.freeze(config);
}

export const command: Subcommand = {
  summary: 'mutating admission webhook: start pods from their latest checkpoint',
  async run(argv, env) {
    if (argv.includes('--help')) { console.log(usage('webhook', FLAGS)); return 0; }
    const config = parseWebhookConfig(argv, env);
    const log = createLogger('webhook', config.logLevel);
    const tls = { cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsKeyFile) };
    const client = await createKubeClient(loadKubeConfig(config.kubeconfig));
    const cache = new ClusterCache(client, log);
    const stop = new AbortController();
    void cache.start(stop.signal);

    const registry = createRegistry('webhook');
    const ops = opsApp({ registry, notReadyReason: () => cache.notSynced() });
    const handle = createAdmissionHandler({
      view: cache, notReady: () => cache.notSynced(), excludedNamespaces: config.excludedNamespaces,
      clock: Date.now, log, registry,
    });
    const servers = [await startWebhookServer({ port: config.port, host: config.bindAddress, tls, handle, ops })];
    if (config.metricsPort) servers.push(await startOpsServer(ops, config.metricsPort, config.bindAddress));
    log.info({ port: servers[0]?.port, metricsPort: servers[1]?.port, server: client.server }, 'webhook serving');

    await new Promise<void>((resolve) => {
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
    });
    log.info('shutting down');
    stop.abort();
    await Promise.all(servers.map((s) => s.close()));
    return 0;
  },
};
