/**
 * The demo on its own local control plane (needs a source checkout: the Kubernetes binaries and
 * test/harness): etcd, kube-apiserver, controller-manager and kube-scheduler on loopback, CRDs,
 * and Lazarus' webhook and extender in this process, their logs in files of a temp dir.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import type { KubeClient } from '../../kube/client.js';
import { waitFor } from '../../kube/wait.js';
import { generateMaterial, systemEntropy, DEFAULT_CA_LIFETIME_MS, DEFAULT_CERT_LIFETIME_MS } from '../../certs/generate.js';
import { startControlPlane, type ControlPlane } from '../../test/harness/control-plane.js';
import { kubeBinDir } from '../../test/harness/kube-bin.js';
import { freePort } from '../../test/harness/processes.js';
import { installCrds } from '../../test/harness/apply.js';
import { registerWebhook, startExtender, startWebhook, type RunningExtender, type RunningWebhook } from '../../test/harness/lazarus.js';
import { APP, CONTAINER, POLICY, demoCheckpoints } from '../scenario.js';
import type { Narrator } from '../narrate.js';
import { createCheckpointObject } from '../checkpoint-writer.js';
import type { Environment, RegisterStop } from '../environment.js';

/** A file logger: component logs never reach the terminal. */
function fileLogger(file: string, component: string): Logger {
  return pino({ level: 'info', base: { component }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: file, sync: true, mkdir: true }));
}

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
      await waitFor(() => cache.checkpoints(namespace, { kind: 'Deployment', name: APP }, CONTAINER.name).length >= count
        && cache.policies().some((p) => p.name === POLICY),
      { timeoutMs: 10_000, signal: sig, description: 'the webhook to see the checkpoints and the demo\'s RestorePolicy' });
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
