/**
 * `lazarus controller`: checkpoints, retention and restore outcomes, one active replica at a
 * time through a coordination.k8s.io Lease. Caches run on every replica (a successor starts
 * warm); only the leader acts.
 */
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { parseDuration } from '../api/duration.js';
import { RESTORED_FROM } from '../api/keys.js';
import type { Subcommand } from '../cli/subcommand.js';
import { parseFlags, port, usage, UsageError, type FlagSpec } from '../cli/flags.js';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../kube/client.js';
import { sleep } from '../runtime/sleep.js';
import { createLogger } from '../runtime/log.js';
import { createRegistry } from '../runtime/metrics.js';
import { opsApp } from '../runtime/ops-app.js';
import { ControllerCache } from './cache.js';
import { Controller, type ControllerConfig } from './controller.js';
import { kubeControllerIO, kubeLeaseStore } from './kube-io.js';
import { LeaderElector, validateElectorTimes } from './leader.js';
import { createControllerMetrics } from './metrics.js';

const FLAGS: Record<string, FlagSpec> = {
  kubeconfig: { type: 'string', env: 'KUBECONFIG', description: 'kubeconfig (default: in-cluster)' },
  id: { type: 'string', env: 'POD_NAME', description: 'identity in the leader election Lease (default: hostname + pid)' },
  namespace: { type: 'string', default: 'lazarus-system', env: 'POD_NAMESPACE', description: 'namespace of the leader election Lease' },
  'lease-name': { type: 'string', default: 'lazarus-controller', description: 'name of the leader election Lease' },
  'lease-duration': { type: 'duration', default: '15s', description: 'how long a Lease is valid without renewal (whole seconds)' },
  'renew-deadline': { type: 'duration', default: '10s', description: 'the leader steps down if it cannot renew for this long' },
  'retry-period': { type: 'duration', default: '2s', description: 'how often to try to acquire or renew the Lease' },
  'max-concurrent': { type: 'int', default: 4, description: 'checkpoints in flight in the cluster (per node: the policy\'s checkpoint.maxParallelPerNode)' },
  'failed-retention': { type: 'duration', default: '24h', description: 'how long Failed checkpoints are kept for diagnosis' },
  'retention-interval': { type: 'duration', default: '1m', description: 'how often retention runs' },
  tick: { type: 'duration', default: '5s', description: 'how often due checkpoints and restore outcomes are looked at' },
  'restore-settle': { type: 'duration', default: '10s', description: 'a restored container must run this long to count as restored' },
  'unavailable-for': { type: 'duration', default: '5m', description: 'a checkpoint set aside after a restore that could not start (Unschedulable, image pull that may clear) is Ready again after this long' },
  'early-exit': { type: 'duration', default: '10s', description: 'a non-zero exit this soon after start is a failed restore' },
  'jitter-percent': { type: 'int', default: 10, description: 'periodic checkpoints come up to this much later than the interval' },
  'backoff-base': { type: 'duration', default: '10s', description: 'first wait after a failed checkpoint (doubles per failure)' },
  'backoff-max': { type: 'duration', default: '10m', description: 'longest wait after failed checkpoints' },
  'metrics-port': { type: 'int', default: 8080, description: 'plain HTTP port for /healthz, /readyz, /metrics (0 = off)' },
  'bind-address': { type: 'string', default: '0.0.0.0', description: 'address to listen on' },
  'log-level': { type: 'string', default: 'info', description: 'debug, info, warn or error' },
};

export interface ControllerCommandConfig extends ControllerConfig {
  kubeconfig: string | undefined;
  id: string;
  namespace: string;
  leaseName: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  metricsPort: number;
  bindAddress: string;
  logLevel: string;
}

export function parseControllerConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<ControllerCommandConfig> {
  const { values, positionals, problems } = parseFlags(argv, FLAGS, env);
  if (positionals.length) problems.push(`unexpected argument ${positionals[0] ?? ''}`);
  // Defaults are given as text (`15s`) for --help; parseFlags converts only what the user typed.
  const num = (name: string): number => {
    const v = values[name];
    return typeof v === 'string' ? parseDuration(v) ?? Number.NaN : Number(v ?? 0);
  };
  const config: ControllerCommandConfig = {
    kubeconfig: values.kubeconfig as string | undefined,
    id: String(values.id ?? `${os.hostname()}_${process.pid}`),
    namespace: String(values.namespace),
    leaseName: String(values['lease-name']),
    leaseDurationMs: num('lease-duration'),
    renewDeadlineMs: num('renew-deadline'),
    retryPeriodMs: num('retry-period'),
    maxConcurrent: num('max-concurrent'),
    failedRetentionMs: num('failed-retention'),
    retentionIntervalMs: num('retention-interval'),
    tickMs: num('tick'),
    settleMs: num('restore-settle'),
    earlyExitMs: num('early-exit'),
    unavailableMs: num('unavailable-for'),
    jitterFactor: num('jitter-percent') / 100,
    backoff: { baseMs: num('backoff-base'), maxMs: num('backoff-max') },
    metricsPort: port('metrics-port', values['metrics-port'], problems),
    bindAddress: String(values['bind-address']),
    logLevel: String(values['log-level']),
  };
  if (problems.length === 0) {
    problems.push(...validateElectorTimes(config).map((p) => `--lease-duration/--renew-deadline/--retry-period: ${p}`));
    if (config.maxConcurrent < 1) problems.push('--max-concurrent must be at least 1');
    if (config.tickMs <= 0) problems.push('--tick must be greater than zero');
    if (!(config.unavailableMs > 0)) problems.push('--unavailable-for must be greater than zero');
    if (config.retentionIntervalMs <= 0) problems.push('--retention-interval must be greater than zero');
    if (config.jitterFactor < 0 || config.jitterFactor > 1) problems.push('--jitter-percent must be between 0 and 100');
    if (config.backoff.baseMs <= 0 || config.backoff.maxMs < config.backoff.baseMs) problems.push('--backoff-base must be > 0 and at most --backoff-max');
  }
  if (!['debug', 'info', 'warn', 'error'].includes(config.logLevel)) problems.push(`--log-level: "${config.logLevel}" is not debug, info, warn or error`);
  if (problems.length) throw new UsageError(problems);
  return Object.freeze(config);
}

export interface RunningController {
  readonly registry: Registry;
  readonly metricsPort: number | undefined;
  isLeader(): boolean;
  /** Stops leading (releasing the Lease), the caches and the metrics server. */
  stop(): Promise<void>;
}

/** Everything `lazarus controller` does, without the process around it (tests start several). */
export async function startController(config: Readonly<ControllerCommandConfig>, deps: { client: KubeClient; log: Logger; now?: () => number }): Promise<RunningController> {
  const { client, log } = deps;
  const now = deps.now ?? Date.now;
  const stop = new AbortController();
  let active: Controller | undefined;
  // A restored pod's status changed: judge its restore now, not at the next tick.
  const cache = new ControllerCache(client, log, (pod) => { if (pod?.annotations?.[RESTORED_FROM] && active) active.observeRestoredPod(pod); });
  cache.start(stop.signal);

  const registry = createRegistry('controller');
  const metrics = createControllerMetrics(registry, () => cache.checkpoints(), now);
  const io = kubeControllerIO(client, { instance: config.id, now });
  const elector = new LeaderElector({
    identity: config.id,
    leaseDurationMs: config.leaseDurationMs, renewDeadlineMs: config.renewDeadlineMs, retryPeriodMs: config.retryPeriodMs,
    store: kubeLeaseStore(client, config.namespace, config.leaseName),
    clock: { now }, sleep,
    onStartedLeading: async (signal) => {
      log.info({ id: config.id }, 'leading');
      metrics.leader.set(1);
      active = new Controller({ view: cache, io, now, sleep, log, metrics, config });
      try {
        await active.run(signal);
      } finally {
        active = undefined;
        metrics.leader.set(0);
      }
    },
    onStoppedLeading: () => log.info({ id: config.id }, 'stopped leading'),
    onNewLeader: (holder) => log.info({ leader: holder }, 'leader observed'),
    onError: (err) => log.debug({ err: err instanceof Error ? err.message : String(err) }, 'lease'),
  });
  const election = elector.run(stop.signal);

  let server: http.Server | undefined;
  if (config.metricsPort) {
    const ops = opsApp({ registry, notReadyReason: () => cache.notSynced() });
    const s = http.createServer(ops);
    await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(config.metricsPort, config.bindAddress, () => resolve()); });
    server = s;
  }
  return {
    registry,
    metricsPort: server ? (server.address() as AddressInfo).port : undefined,
    isLeader: () => elector.isLeader,
    async stop() {
      stop.abort();
      await election;
      if (server) {
        const s = server;
        await new Promise<void>((resolve) => { s.close(() => resolve()); s.closeAllConnections(); });
      }
    },
  };
}

export const command: Subcommand = {
  summary: 'automatic checkpoints, retention, restore outcomes and cold-start fallback (leader-elected)',
  async run(argv, env) {
    if (argv.includes('--help')) { process.stdout.write(`${usage('controller', FLAGS)}\n`); return 0; }
    const config = parseControllerConfig(argv, env);
    const log = createLogger('controller', config.logLevel);
    const client = await createKubeClient(loadKubeConfig(config.kubeconfig));
    const running = await startController(config, { client, log });
    log.info({ id: config.id, server: client.server, metricsPort: running.metricsPort }, 'controller started');
    await new Promise<void>((resolve) => {
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
    });
    log.info('shutting down');
    await running.stop();
    return 0;
  },
};
