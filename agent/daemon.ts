/**
 * `lazarus agent --node-name N …`: flags parsed once into a frozen config, then the Agent's loops
 * with /healthz, /readyz and /metrics beside them.
 */
import { createServer } from 'node:http';
import { Counter, Histogram } from 'prom-client';
import { UsageError, parseFlags, port, usage, type FlagSpec } from '../cli/flags.js';
import { createKubeClient, loadKubeConfig } from '../kube/client.js';
import { sleep } from '../runtime/sleep.js';
import { createLogger } from '../runtime/log.js';
import { createRegistry } from '../runtime/metrics.js';
import { opsApp } from '../runtime/ops-app.js';
import { hostFacts, readLocalFacts, systemSources } from './host.js';
import { PodMemory } from './pod-memory.js';
import { CONTAINERD_CONFIG, CRIO_CONFIG, CRIO_DROP_INS, readRestoreSupport } from './runtime-restore.js';
import { Agent } from './watcher.js';

const words = (s: string): string[] => s.trim().split(/\s+/).filter(Boolean);

const FLAGS = {
  'node-name': { type: 'string', description: 'this node (downward API spec.nodeName)', env: 'NODE_NAME', required: true },
  'checkpoint-dir': { type: 'string', description: 'where kubelet writes checkpoint archives', default: '/var/lib/kubelet/checkpoints' },
  kubeconfig: { type: 'string', description: 'kubeconfig path (default: in-cluster, then $KUBECONFIG)', env: 'KUBECONFIG' },
  namespace: { type: 'string', description: "Lazarus' own namespace (push Secrets)", env: 'POD_NAMESPACE', default: 'lazarus-system' },
  registry: { type: 'string', description: 'registry prefix when no RestorePolicy sets spec.checkpoint.registry', default: '' },
  'insecure-registry': { type: 'list', description: 'host:port reached over plain HTTP (repeatable)' },
  'host-exec': { type: 'string', description: "prefix that runs a command in the host's mount namespace, e.g. 'nsenter --target 1 --mount --' (hostPID); used for criu and for reading --runtime-config", default: '' },
  criu: { type: 'string', description: 'criu command line, run after --host-exec', default: 'criu' },
  'runtime-config': { type: 'list', description: `container runtime configuration file on the host, read in order, later wins; a * in the last component globs (repeatable; default by the Node's runtime: containerd ${CONTAINERD_CONFIG}, cri-o ${CRIO_CONFIG} then ${CRIO_DROP_INS})` },
  'facts-interval': { type: 'duration', description: 'how often node facts are refreshed', default: 300_000 },
  'scan-interval': { type: 'duration', description: 'checkpoint directory poll interval (file events wake it sooner)', default: 10_000 },
  'settle': { type: 'duration', description: 'an archive younger than this may still be written', default: 2_000 },
  'parallel-archives': { type: 'int', description: 'archives turned into images at once (a drain checkpoints several pods together; 4 matches checkpoint.maxParallelPerNode)', default: 4 },
  'metrics-port': { type: 'int', description: 'health and metrics port', default: 8080 },
  'log-level': { type: 'string', description: 'pino level', default: 'info' },
  help: { type: 'bool', description: 'print this help', default: false },
} satisfies Record<string, FlagSpec>;

export async function runDaemon(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals, problems } = parseFlags(argv, FLAGS, env);
  if (values.help === true) { process.stdout.write(`${usage('agent', FLAGS)}\n`); return 0; }
  if (positionals.length > 0) problems.push(`unexpected arguments: ${positionals.join(' ')}`);
  const metricsPort = port('metrics-port', values['metrics-port'], problems);
  const runtimeConfig = (values['runtime-config'] as string[] | undefined) ?? [];
  for (const p of runtimeConfig) if (!p.startsWith('/')) problems.push(`--runtime-config: "${p}" is not an absolute path on the host`);
  const parallelArchives = Number(values['parallel-archives']);
  if (!Number.isInteger(parallelArchives) || parallelArchives < 1 || parallelArchives > 64) problems.push(`--parallel-archives: "${String(values['parallel-archives'])}" is not a whole number from 1 to 64`);
  if (problems.length > 0) throw new UsageError(problems);
  const hostExec = Object.freeze(words(String(values['host-exec'])));
  const config = Object.freeze({
    nodeName: String(values['node-name']),
    checkpointDir: String(values['checkpoint-dir']),
    kubeconfig: typeof values.kubeconfig === 'string' ? values.kubeconfig : undefined,
    namespace: String(values.namespace),
    registry: String(values.registry),
    insecure: new Set((values['insecure-registry'] as string[] | undefined) ?? []),
    hostExec,
    /** The full criu command line: the host prefix, then --criu. */
    criu: [...hostExec, ...words(String(values.criu))].join(' '),
    runtimeConfig: Object.freeze([...runtimeConfig]),
    factsIntervalMs: Number(values['facts-interval']),
    scanIntervalMs: Number(values['scan-interval']),
    settleMs: Number(values.settle),
    parallelArchives,
  });

  const log = createLogger('agent', String(values['log-level']));
  const kube = await createKubeClient(loadKubeConfig(config.kubeconfig));
  const pods = new PodMemory({ kube, nodeName: config.nodeName, log, now: () => Date.now(), retainMs: 3_600_000, sleep });
  const metrics = createRegistry('agent');
  const archives = new Counter({ name: 'lazarus_agent_archives_total', help: 'Checkpoint archive attempts by outcome', labelNames: ['outcome'], registers: [metrics] });
  const seconds = new Histogram({ name: 'lazarus_agent_archive_seconds', help: 'Time to turn an archive into a pushed image and a Checkpoint', buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300], registers: [metrics] });
  const agent = new Agent({
    kube, nodeName: config.nodeName, checkpointDir: config.checkpointDir, namespace: config.namespace,
    ...(config.registry ? { defaultRegistry: config.registry } : {}),
    insecureRegistries: config.insecure, log, now: () => new Date(), sleep, pods,
    readFacts: () => readLocalFacts(systemSources, config.criu),
    runtimeSupport: (runtime) => readRestoreSupport(systemSources, config.hostExec, config.runtimeConfig, runtime),
    hostFacts: (local, runtime) => hostFacts(local, runtime),
    settleMs: config.settleMs, parallelArchives: config.parallelArchives, scanIntervalMs: config.scanIntervalMs, factsIntervalMs: config.factsIntervalMs,
    retryBaseMs: 5_000, retryMaxMs: 300_000,
    onOutcome: (outcome, s) => {
      archives.inc({ outcome });
      if (outcome === 'ready') seconds.observe(s);
    },
  });
  const server = createServer(opsApp({ registry: metrics, notReadyReason: () => agent.notReadyReason() }));
  await new Promise<void>((resolve) => server.listen(metricsPort, resolve));

  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  log.info({ node: config.nodeName, dir: config.checkpointDir }, 'agent started');
  try {
    await Promise.all([agent.run(ac.signal), pods.run(ac.signal)]);
  } finally {
    server.close();
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return 0;
}
