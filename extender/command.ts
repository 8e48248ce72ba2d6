/**
 * `lazarus extender`: the kube-scheduler extender. Without --kubeconfig (or --in-cluster) it
 * needs no cluster and serves full-Nodes requests (nodeCacheCapable: false) with the default
 * policy; with one it also serves NodeNames requests from a node cache and applies
 * RestorePolicies.
 */
import type tls from 'node:tls';
import type { Subcommand } from '../cli/subcommand.js';
import { parseFlags, port, usage, UsageError, type FlagSpec } from '../cli/flags.js';
import { DEFAULT_POLICY } from '../api/policy.js';
import { createLogger } from '../runtime/log.js';
import { createRegistry } from '../runtime/metrics.js';
import { createKubeClient, loadKubeConfig } from '../kube/client.js';
import { clusterLookups } from './cluster.js';
import { createCertSource, type CertSource } from '../certs/index.js';
import { createExtenderServer, DEFAULT_MAX_BODY_BYTES, listen, type ExtenderDeps, type RunningExtender } from './server.js';
import { DEFAULT_SHUTDOWN_DRAIN_MS, Drain, drainBeforeExit, drainProblems, waitForStopSignal } from '../runtime/shutdown.js';

const FLAGS: Readonly<Record<string, FlagSpec>> = {
  port: { type: 'int', default: 8888, description: 'port for POST /filter and /prioritize (and /healthz, /readyz, /metrics)' },
  'bind-address': { type: 'string', default: '0.0.0.0', description: 'address to listen on' },
  'metrics-port': { type: 'int', default: 8080, description: 'extra plain-HTTP port for /healthz, /readyz, /metrics; 0 = only on --port' },
  'tls-cert-file': { type: 'string', description: 'serve HTTPS with this certificate (PEM); needs --tls-key-file' },
  'tls-key-file': { type: 'string', description: 'private key (PEM) for --tls-cert-file' },
  kubeconfig: { type: 'string', description: 'kubeconfig: enables the node cache (NodeNames requests) and RestorePolicies' },
  'in-cluster': { type: 'bool', default: false, description: 'like --kubeconfig, with the pod\'s service account' },
  'max-request-bytes': { type: 'int', default: DEFAULT_MAX_BODY_BYTES, description: 'largest request body accepted (413 above)' },
  'log-level': { type: 'string', default: 'info', env: 'LOG_LEVEL', description: 'pino level: debug, info, warn, error' },
  'shutdown-drain': { type: 'duration', default: `${DEFAULT_SHUTDOWN_DRAIN_MS / 1000}s`, description: 'after SIGTERM: not ready at once, requests still answered this long, then exit (SIGINT: at once)' },
};

export interface ExtenderConfig {
  port: number;
  bindAddress: string;
  metricsPort: number;
  tls: { certFile: string; keyFile: string } | undefined;
  kubeconfig: string | undefined;
  inCluster: boolean;
  maxRequestBytes: number;
  logLevel: string;
  shutdownDrainMs: number;
}

export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<ExtenderConfig> {
  const { values, positionals, problems } = parseFlags(argv, FLAGS, env);
  if (positionals.length > 0) problems.push(`unexpected arguments: ${positionals.join(' ')}`);
  const p = port('port', values.port, problems);
  const metricsPort = port('metrics-port', values['metrics-port'], problems);
  if (metricsPort !== 0 && metricsPort === p) problems.push('--metrics-port must differ from --port (or be 0)');
  const cert = values['tls-cert-file'] as string | undefined;
  const key = values['tls-key-file'] as string | undefined;
  if ((cert === undefined) !== (key === undefined)) problems.push('--tls-cert-file and --tls-key-file go together');
  const kubeconfig = values.kubeconfig as string | undefined;
  const inCluster = values['in-cluster'] === true;
  if (kubeconfig !== undefined && inCluster) problems.push('--kubeconfig and --in-cluster exclude each other');
  const maxRequestBytes = values['max-request-bytes'] as number;
  if (!(maxRequestBytes > 0)) problems.push('--max-request-bytes must be positive');
  const logLevel = values['log-level'] as string;
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) problems.push(`--log-level: unknown level "${logLevel}"`);
  const shutdownDrainMs = typeof values['shutdown-drain'] === 'number' ? values['shutdown-drain'] : DEFAULT_SHUTDOWN_DRAIN_MS;
  problems.push(...drainProblems(shutdownDrainMs));
  if (problems.length > 0) throw new UsageError(problems);
  return Object.freeze({
    port: p, bindAddress: values['bind-address'] as string, metricsPort,
    tls: cert !== undefined && key !== undefined ? { certFile: cert, keyFile: key } : undefined,
    kubeconfig, inCluster, maxRequestBytes, logLevel, shutdownDrainMs,
  });
}

async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage('extender', FLAGS)}\n`);
    return 0;
  }
  const config = parseConfig(argv, env);
  const log = createLogger('extender', config.logLevel);
  const registry = createRegistry('extender');
  const stop = new AbortController();

  const deps: ExtenderDeps = { policyFor: () => DEFAULT_POLICY, logger: log, registry, maxBodyBytes: config.maxRequestBytes };
  let informers: Promise<void> = Promise.resolve();
  if (config.kubeconfig !== undefined || config.inCluster) {
    const client = await createKubeClient(loadKubeConfig(config.kubeconfig));
    const cluster = clusterLookups(client, log);
    Object.assign(deps, {
      policyFor: cluster.policyFor, nodeByName: cluster.nodeByName, nameIndex: cluster.nameIndex,
      nodeCacheProblem: cluster.nodeCacheProblem, notReadyReason: cluster.notReadyReason,
    });
    informers = cluster.run(stop.signal);
    log.info({ server: client.server }, 'node cache on: serving full-Nodes and NodeNames requests');
  } else {
    log.info('no --kubeconfig: serving full-Nodes requests (nodeCacheCapable: false) with the default policy');
  }

  // Rotated certificate files (a mounted Secret) are reloaded without a restart: certs/ files mode.
  const certs: CertSource | undefined = config.tls
    ? await createCertSource({ mode: 'files', ...config.tls }, { logger: log, signal: stop.signal })
    : undefined;
  const drain = new Drain();
  const cacheNotReady = deps.notReadyReason;
  deps.notReadyReason = () => drain.notReadyReason() ?? cacheNotReady?.();
  const server = createExtenderServer(deps);
  const running: RunningExtender[] = [await listen(drain.listener(server.listener), config.port, config.bindAddress, certs?.secureContextOptions())];
  if (config.metricsPort !== 0) running.push(await listen(server.ops, config.metricsPort, config.bindAddress));
  if (certs && running[0]) certs.attach(running[0].server as tls.Server);
  log.info({ port: running[0]?.port, metricsPort: running[1]?.port, tls: certs !== undefined }, 'extender listening');

  // The node cache keeps running through the drain, so late requests get real answers.
  await drainBeforeExit(await waitForStopSignal(), drain, config.shutdownDrainMs, log);
  stop.abort();
  await Promise.all(running.map((r) => r.close()));
  await Promise.all([informers, certs?.stop()]);
  return 0;
}

export const command: Subcommand = {
  summary: 'kube-scheduler extender: filters nodes that cannot restore a pod\'s checkpoint, scores the rest',
  run,
};
