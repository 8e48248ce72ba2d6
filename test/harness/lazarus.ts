/**
 * Lazarus' own servers next to a local control plane, as they run in a cluster: the webhook
 * (HTTPS, registered with clientConfig.url and the caBundle it serves with) and the extender
 * (NodeNames mode, fed by a node informer). Used by the e2e tests, `npm run cluster` and the demo.
 */
import { ClusterCache } from '../../kube/cluster-cache.js';
import type { KubeClient } from '../../kube/client.js';
import { isNotFound } from '../../kube/client.js';
import { createAdmissionHandler } from '../../webhook/handler.js';
import { createEvictionHandler } from '../../webhook/eviction-handler.js';
import { kubeEvictionIO } from '../../webhook/eviction-io.js';
import { EVICTION_PATH } from '../../webhook/server.js';
import { startWebhookServer, type RunningServer, type TlsSource } from '../../webhook/server.js';
import type { CertSource } from '../../certs/index.js';
import { opsApp } from '../../runtime/ops-app.js';
import { createRegistry } from '../../runtime/metrics.js';
import { silentLogger, type Logger } from '../../runtime/log.js';
import { testTls, type TestTls } from '../support/tls.js';
import { waitFor } from './wait.js';
import { clusterLookups } from '../../extender/cluster.js';
import { createExtenderServer, listen } from '../../extender/server.js';

export const WEBHOOK_CONFIG_NAME = 'lazarus';
/**
 * The in-process webhook's --registry: where the checkpoint images of the tests and the demo
 * live (harness/scenario.ts, demo/scenario.ts), so the webhook trusts them as it trusts what the
 * agents push.
 */
export const TEST_REGISTRY = 'registry.example/lazarus';

export interface RunningWebhook {
  port: number;
  /** The fixed test certificate, when no cert source was given. */
  tls: TestTls;
  cache: ClusterCache;
  /** AdmissionReviews this replica answered. */
  admissions(): number;
  stop(): Promise<void>;
}

export interface StartWebhookOptions {
  port?: number;
  /** A fixed certificate (default: a fresh testTls()). */
  tls?: TestTls;
  log?: Logger;
  clock?: () => number;
  /** The webhook's --registry (default TEST_REGISTRY; '' for none). */
  registry?: string;
}

/**
 * Starts the webhook in this process and waits for its caches to sync. With `certs`, it serves
 * what the cert source serves (secret mode: rotated and hot-reloaded) instead of a fixed
 * test certificate; the source stays the caller's to stop.
 */
export async function startWebhook(client: KubeClient, options?: StartWebhookOptions): Promise<RunningWebhook>;
export async function startWebhook(client: KubeClient, options: Omit<StartWebhookOptions, 'tls'> & { certs: CertSource }): Promise<Omit<RunningWebhook, 'tls'>>;
export async function startWebhook(client: KubeClient, options: StartWebhookOptions & { certs?: CertSource } = {}): Promise<Omit<RunningWebhook, 'tls'> & { tls?: TestTls }> {
  const log = options.log ?? silentLogger();
  let fixed: TestTls | undefined;
  let tls: TestTls | TlsSource;
  if (options.certs) tls = options.certs;
  else { fixed = options.tls ?? testTls(); tls = fixed; }
  const stop = new AbortController();
  const cache = new ClusterCache(client, log);
  void cache.start(stop.signal);
  const registry = createRegistry('webhook', false);
  const decideAdmission = createAdmissionHandler({
    view: cache, generation: (namespace: string) => cache.generation(namespace), notReady: () => cache.notSynced(), excludedNamespaces: new Set(['kube-system', 'lazarus-system']),
    defaultRegistry: options.registry ?? TEST_REGISTRY, clock: options.clock ?? Date.now, log, registry,
  });
  let admissions = 0;
  const handle: typeof decideAdmission = (body) => { admissions++; return decideAdmission(body); };
  // POST /validate-eviction, as the executable serves it; called only where registerWebhook(…, { evictions: true }) registered it.
  const handleEviction = createEvictionHandler({
    view: cache, io: kubeEvictionIO(client, { instance: 'harness', now: options.clock ?? Date.now }), notReady: () => cache.notSynced(),
    excludedNamespaces: new Set(['kube-system', 'lazarus-system']), clock: options.clock ?? Date.now, log, registry,
  });
  let server: RunningServer;
  try {
    server = await startWebhookServer({ port: options.port ?? 0, host: '127.0.0.1', tls, handle, handleEviction, ops: opsApp({ registry, notReadyReason: () => cache.notSynced() }) });
    await waitFor(() => cache.notSynced() === undefined, { timeoutMs: 30_000, description: 'webhook caches to sync' });
  } catch (err) {
    stop.abort();
    throw err;
  }
  return {
    port: server.port, cache, ...(fixed ? { tls: fixed } : {}),
    admissions: () => admissions,
    async stop() { stop.abort(); await server.close(); },
  };
}

/**
 * The MutatingWebhookConfiguration of manifests/base, pointed at a loopback URL. Without
 * `caPem` it has no caBundle: a cert source in secret mode injects it. With `evictions`, also
 * the ValidatingWebhookConfiguration that holds evictions (/validate-eviction), so a drain waits
 * for a fresh checkpoint; off by default, so suites that evict pods keep their timing.
 */
export async function registerWebhook(client: KubeClient, port: number, caPem?: string, options: { evictions?: boolean } = {}): Promise<void> {
  const caBundle = caPem === undefined ? {} : { caBundle: Buffer.from(caPem).toString('base64') };
  const namespaceSelector = { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'lazarus-system'] }] };
  const body = {
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration',
    metadata: { name: WEBHOOK_CONFIG_NAME },
    webhooks: [{
      name: 'pods.lazarus.dev', admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Ignore', timeoutSeconds: 5,
      clientConfig: { url: `https://127.0.0.1:${port}/mutate`, ...caBundle },
      rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
      namespaceSelector,
    }],
  };
  await replace(client, 'mutatingwebhookconfigurations', body);
  if (!options.evictions) return;
  await replace(client, 'validatingwebhookconfigurations', {
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration',
    metadata: { name: WEBHOOK_CONFIG_NAME },
    webhooks: [{
      name: 'evictions.lazarus.dev', admissionReviewVersions: ['v1'], sideEffects: 'NoneOnDryRun', failurePolicy: 'Ignore', timeoutSeconds: 5,
      clientConfig: { url: `https://127.0.0.1:${port}${EVICTION_PATH}`, ...caBundle },
      rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods/eviction'], scope: 'Namespaced' }],
      namespaceSelector,
    }],
  });
}

async function replace(client: KubeClient, resource: string, body: { apiVersion: string; kind: string; metadata: { name: string }; webhooks: unknown[] }): Promise<void> {
  const base = `/apis/admissionregistration.k8s.io/v1/${resource}`;
  try {
    await client.request('DELETE', `${base}/${body.metadata.name}`);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await client.request('POST', base, { body });
}

export interface RunningExtender {
  port: number;
  /** Every node the extender has failed so far (FailedNodes and FailedAndUnresolvableNodes), with its reason. */
  filtered(): Record<string, string>;
  /** /filter and /prioritize requests served so far. */
  calls(): number;
  stop(): Promise<void>;
}

/**
 * The extender in NodeNames mode with its node cache, on `port` (which the scheduler was
 * configured with). Its answers are observed on the way out, for assertions.
 */
export async function startExtender(client: KubeClient, port: number, options: { log?: Logger } = {}): Promise<RunningExtender> {
  const log = options.log ?? silentLogger();
  const stop = new AbortController();
  const cluster = clusterLookups(client, log);
  void cluster.run(stop.signal);
  const { listener } = createExtenderServer({
    policyFor: cluster.policyFor, nodeByName: cluster.nodeByName, nameIndex: cluster.nameIndex, nodeCacheProblem: cluster.nodeCacheProblem,
    notReadyReason: cluster.notReadyReason, logger: log, registry: createRegistry('extender', false),
  });
  const failed: Record<string, string> = {};
  let calls = 0;
  const observed: typeof listener = (req, res) => {
    const isFilter = req.url?.startsWith('/filter') ?? false;
    if (isFilter || req.url?.startsWith('/prioritize')) calls++;
    if (isFilter) {
      // The answer may come in parts (res.write … res.end()), so collect every chunk.
      const parts: Buffer[] = [];
      const keep = (chunk: unknown): void => {
        if (typeof chunk === 'string') parts.push(Buffer.from(chunk));
        else if (chunk instanceof Uint8Array) parts.push(Buffer.from(chunk));
      };
      const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
      res.write = ((chunk: unknown, ...rest: unknown[]) => { keep(chunk); return write(chunk, ...rest); }) as typeof res.write;
      const end = res.end.bind(res) as (chunk?: unknown, ...rest: unknown[]) => typeof res;
      res.end = ((chunk?: unknown, ...rest: unknown[]) => {
        if (typeof chunk !== 'function') keep(chunk);
        try {
          const answer = JSON.parse(Buffer.concat(parts).toString('utf8')) as { FailedNodes?: Record<string, string> | null; FailedAndUnresolvableNodes?: Record<string, string> | null };
          Object.assign(failed, answer.FailedNodes ?? {}, answer.FailedAndUnresolvableNodes ?? {});
        } catch { /* not JSON: nothing to record */ }
        return end(chunk, ...rest);
      }) as typeof res.end;
    }
    listener(req, res);
  };
  const server = await listen(observed, port, '127.0.0.1');
  await waitFor(() => cluster.notReadyReason() === undefined, { timeoutMs: 30_000, description: 'extender caches to sync' });
  return {
    port: server.port,
    filtered: () => ({ ...failed }),
    calls: () => calls,
    async stop() { stop.abort(); await server.close(); },
  };
}

/**
 * Lazarus as a cluster runs it: the extender on the port the scheduler was configured with,
 * and the webhook, registered with the caBundle it serves with. Stop each when done.
 */
export async function startLazarus(client: KubeClient, extenderPort: number): Promise<{ webhook: RunningWebhook; extender: RunningExtender }> {
  const extender = await startExtender(client, extenderPort);
  try {
    const webhook = await startWebhook(client);
    await registerWebhook(client, webhook.port, webhook.tls.ca);
    return { webhook, extender };
  } catch (err) {
    await extender.stop();
    throw err;
  }
}
