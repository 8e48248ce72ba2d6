/**
 * Where the demo runs. Local: the Kubernetes binaries (built once, cached), a control plane on
 * loopback, CRDs, and Lazarus' webhook and extender in this process, their logs in files of the
 * temp dir. Existing: a cluster where Lazarus is installed; nothing is started, the demo's
 * objects are created there and removed afterwards.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { createKubeClient, isNotFound, loadKubeConfig, type KubeClient } from '../kube/client.js';
import { generateMaterial, systemEntropy, DEFAULT_CA_LIFETIME_MS, DEFAULT_CERT_LIFETIME_MS } from '../certs/generate.js';
import { startControlPlane, type ControlPlane } from '../test/harness/control-plane.js';
import { kubeBinDir } from '../test/harness/kube-bin.js';
import { freePort } from '../test/harness/processes.js';
import { installCrds } from '../test/harness/apply.js';
import { registerWebhook, startExtender, startWebhook, type RunningExtender, type RunningWebhook } from '../test/harness/lazarus.js';
import { waitFor } from '../test/harness/wait.js';
import * as K from '../api/keys.js';
import { APP, CONTAINER, DEMO_LABEL, NAMESPACE, demoCheckpoints } from './scenario.js';
import type { Narrator } from './narrate.js';
import { createCheckpointObject } from './checkpoint-writer.js';

export interface Environment {
  client: KubeClient;
  /** Prefix of the demo's node names (empty on the local control plane, which is the demo's own). */
  nodePrefix: string;
  /** Resolves once the webhook can see `count` checkpoints of the demo app (or as well as can be known). */
  webhookSees(namespace: string, count: number, signal: AbortSignal): Promise<void>;
  /** PIDs of the processes started (none on an existing cluster). */
  pids(): number[];
  /** Stops or removes everything the demo started or created; safe to call twice. Returns a one-line summary. */
  stop(): Promise<string>;
}

/** A file logger: component logs never reach the terminal. */
function fileLogger(file: string, component: string): Logger {
  return pino({ level: 'info', base: { component }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: file, sync: true, mkdir: true }));
}

/**
 * Takes the function that undoes what was started or created, as soon as there is one; returns
 * what takes it back (for a part that stopped itself, narrated, before the demo goes on).
 */
export type RegisterStop = (stop: () => Promise<string>) => () => void;

/**
 * Builds (cached) and starts everything locally, narrating each step. `register` gets the stop
 * function before anything starts, so an interruption or failure at any point stops what runs.
 */
export async function startLocal(say: Narrator, signal: AbortSignal, register: RegisterStop): Promise<Environment> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lazarus-demo-'));
  say.line(`component logs: ${dir}/ (kube-apiserver.log, kube-scheduler.log, webhook.log, extender.log, …)`);
  say.line();

  const binDir = await say.step(() => kubeBinDir(), (bin) => ({
    title: 'Kubernetes v1.35.4 binaries: etcd, kube-apiserver, controller-manager, scheduler',
    details: [`${bin.replace(os.homedir(), '~')} (built from the Go module proxy on first use, cached after)`],
  }));
  signal.throwIfAborted();

  const extenderPort = await freePort();
  const extenderUrl = `http://127.0.0.1:${extenderPort}`;
  // Filled in as they start; stop() stops whatever is there.
  const parts: { cp?: ControlPlane; webhook?: RunningWebhook; extender?: RunningExtender } = {};
  let stopped: Promise<string> | undefined;
  const stop = (): Promise<string> => (stopped ??= (async () => {
    const pids = parts.cp?.pids().length ?? 0;
    await parts.webhook?.stop();
    await parts.extender?.stop();
    await parts.cp?.stop();
    return `webhook, extender and control plane stopped (${pids} processes); logs kept in ${dir}`;
  })());
  register(stop);

  const cp = parts.cp = await say.step(() => startControlPlane({
    dir, binDir, log: () => undefined,
    // NodeNames mode with a node cache, as manifests/ configures it; ignorable: a Lazarus outage never blocks scheduling.
    extenders: [{ urlPrefix: extenderUrl, nodeCacheCapable: true, weight: 5, ignorable: true }],
    schedulerConfig: { podInitialBackoffSeconds: 1, podMaxBackoffSeconds: 2 },
  }), (c) => ({ title: `control plane on ${c.server}`, details: [`etcd, kube-apiserver, kube-controller-manager, kube-scheduler with the Lazarus extender at ${extenderUrl}`] }));
  signal.throwIfAborted();
  const client = cp.client;

  await say.step(async () => {
    await installCrds(client);
    // The API server's first write of a new custom resource takes ~2 s (measured on v1.35.4,
    // whatever the admission plugins); a dry-run write pays it while the servers start.
    const warm = warmUpCheckpoints(client);
    // The webhook serves a certificate from Lazarus' own CA (certs/); its caBundle goes into the registration.
    const m = await generateMaterial({ service: 'lazarus-webhook', namespace: 'lazarus-system', dnsNames: ['localhost'], ips: ['127.0.0.1'] },
      { caLifetimeMs: DEFAULT_CA_LIFETIME_MS, certLifetimeMs: DEFAULT_CERT_LIFETIME_MS }, systemEntropy);
    parts.extender = await startExtender(client, extenderPort, { log: fileLogger(path.join(dir, 'extender.log'), 'extender') });
    const webhook = parts.webhook = await startWebhook(client, { tls: { ca: m.ca, cert: m.cert, key: m.key }, log: fileLogger(path.join(dir, 'webhook.log'), 'webhook') });
    await registerWebhook(client, webhook.port, m.ca);
    await warm;
    return webhook.port;
  }, (port) => ({
    title: 'Lazarus: CRDs, webhook and extender',
    details: [`webhook  https://127.0.0.1:${port}/mutate (MutatingWebhookConfiguration lazarus, failurePolicy Ignore)`, `extender ${extenderUrl} (filter + prioritize)`],
  }));
  signal.throwIfAborted();

  return {
    client, nodePrefix: '',
    async webhookSees(namespace, count, sig) {
      const cache = parts.webhook?.cache;
      if (!cache) return;
      await waitFor(() => cache.checkpoints(namespace, { kind: 'Deployment', name: APP }, CONTAINER.name).length >= count,
        { timeoutMs: 10_000, signal: sig, description: 'the webhook to see the checkpoints' });
    },
    pids: () => cp.pids(),
    stop,
  };
}

/** A server-side dry-run create of a Checkpoint: nothing is stored. */
async function warmUpCheckpoints(client: KubeClient): Promise<void> {
  const [sample] = demoCheckpoints(Date.now());
  if (!sample) return;
  await createCheckpointObject(client, { ...sample.checkpoint, metadata: { ...sample.checkpoint.metadata, namespace: 'default' } }, { dryRun: true });
}

/** Targets a cluster where Lazarus is installed: checks it is, removes a previous run's leftovers. */
export async function useExisting(kubeconfig: string, say: Narrator, signal: AbortSignal, register: RegisterStop): Promise<Environment> {
  let stopped: Promise<string> | undefined;
  const { c: client, stop } = await say.step(async () => {
    const c = await createKubeClient(loadKubeConfig(kubeconfig));
    try {
      await c.request('GET', `/apis/${K.API_VERSION}`);
    } catch (err) {
      if (isNotFound(err)) throw new Error(`Lazarus is not installed on this cluster: no ${K.API_VERSION} API (install manifests/ first)`);
      throw err;
    }
    const hooks = await c.request<{ items: Array<{ webhooks?: Array<{ name: string }> }> }>('GET', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations');
    if (!hooks.items.some((h) => h.webhooks?.some((w) => w.name === 'pods.lazarus.dev'))) {
      throw new Error('Lazarus\' webhook is not registered on this cluster (no MutatingWebhookConfiguration with webhook pods.lazarus.dev)');
    }
    const stop = (): Promise<string> => (stopped ??= (async () => {
      await removeDemoObjects(c, new AbortController().signal);
      return `namespace ${NAMESPACE} and the demo nodes removed`;
    })());
    register(stop);
    await removeDemoObjects(c, signal);
    return { c, stop };
  }, () => ({ title: `existing cluster from ${kubeconfig}: Lazarus installed`, details: [`the demo creates namespace ${NAMESPACE} and nodes named lazarus-demo-*, and removes them at the end`] }));

  return {
    client, nodePrefix: 'lazarus-demo-',
    // The installed webhook's informers are not reachable from here; a watch event takes milliseconds.
    async webhookSees(_ns, _count, sig) { await new Promise<void>((resolve) => { const t = setTimeout(resolve, 1000); sig.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true }); }); },
    pids: () => [],
    stop,
  };
}

/**
 * Deletes the demo namespace and nodes and waits until they are gone. Pods on nodes without a
 * kubelet never finish a graceful termination, so they are deleted with grace 0 first.
 */
async function removeDemoObjects(client: KubeClient, signal: AbortSignal): Promise<void> {
  const ns = `/api/v1/namespaces/${NAMESPACE}`;
  const ignoreMissing = (err: unknown): void => { if (!isNotFound(err)) throw err; };
  await client.request('DELETE', `/apis/apps/v1/namespaces/${NAMESPACE}/deployments/${APP}`).catch(ignoreMissing);
  await waitFor(async () => {
    const pods = await client.request<{ items: Array<{ metadata: { name: string } }> }>('GET', `${ns}/pods`);
    for (const p of pods.items) await client.request('DELETE', `${ns}/pods/${p.metadata.name}`, { query: { gracePeriodSeconds: 0 } }).catch(ignoreMissing);
    return pods.items.length === 0;
  }, { timeoutMs: 30_000, intervalMs: 300, signal, description: `the pods of ${NAMESPACE} to be deleted` });
  await client.request('DELETE', ns).catch(ignoreMissing);
  const nodes = await client.request<{ items: Array<{ metadata: { name: string } }> }>('GET', '/api/v1/nodes', { query: { labelSelector: `${DEMO_LABEL}=true` } });
  for (const n of nodes.items) await client.request('DELETE', `/api/v1/nodes/${n.metadata.name}`).catch(ignoreMissing);
  await waitFor(async () => {
    try {
      await client.request('GET', ns);
      return false;
    } catch (err) {
      if (isNotFound(err)) return true;
      throw err;
    }
  }, { timeoutMs: 60_000, intervalMs: 300, signal, description: `namespace ${NAMESPACE} to be deleted` });
}
