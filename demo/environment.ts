/**
 * Where the demo runs. Existing: a cluster where Lazarus is installed; nothing is started, the
 * demo's objects are created there and removed afterwards (this file: it runs from the image).
 * Local: a control plane and Lazarus started here (checkout/local.ts: it needs a source checkout).
 */
import { createKubeClient, isNotFound, loadKubeConfig, type KubeClient } from '../kube/client.js';
import { waitFor } from '../kube/wait.js';
import * as K from '../api/keys.js';
import { APP, DEMO_LABEL, NAMESPACE, POLICY, demoNodes } from './scenario.js';
import { formatDuration, type Narrator } from './narrate.js';
import { HEARTBEAT_MS, NODE_LEASE_NAMESPACE } from './fake-nodes.js';

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

/**
 * Takes the function that undoes what was started or created, as soon as there is one; returns
 * what takes it back (for a part that stopped itself, narrated, before the demo goes on).
 */
export type RegisterStop = (stop: () => Promise<string>) => () => void;


/**
 * What needs a source checkout (the Kubernetes binaries, test/harness): demo/checkout/, which
 * the image does not carry. The command loads it lazily; `lazarus demo --kubeconfig K` never does.
 */
export interface Checkout {
  startLocal(say: Narrator, signal: AbortSignal, register: RegisterStop): Promise<Environment>;
  realNodesAct(say: Narrator, signal: AbortSignal, register: RegisterStop): Promise<void>;
  /** Why real nodes cannot run here, or undefined when they can. */
  realNodePreflight(): Promise<string | undefined>;
}

/** The demo's nodes on an existing cluster are named lazarus-demo-node-…, next to the cluster's own. */
export const EXISTING_NODE_PREFIX = 'lazarus-demo-';

/** Targets a cluster where Lazarus is installed: checks it is, removes a previous run's leftovers. */
export async function useExisting(kubeconfig: string, say: Narrator, signal: AbortSignal, register: RegisterStop, clock: () => number = Date.now): Promise<Environment> {
  let stopped: Promise<string> | undefined;
  const { c: client, stop } = await say.step(async () => {
    const c = await createKubeClient(readKubeConfig(kubeconfig));
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
    // Objects of the demo's names that it did not make, or another demo running: refuse before touching anything.
    const problem = leftoverProblem(await findDemoObjects(c), clock());
    if (problem) throw new Error(problem);
    const stop = (): Promise<string> => (stopped ??= (async () => {
      const bound = await removeDemoObjects(c, new AbortController().signal);
      return `namespace ${NAMESPACE}, RestorePolicy ${POLICY} and the demo nodes removed${bound ? ` (and ${bound} DaemonSet pod(s) bound to them)` : ''}`;
    })());
    register(stop);
    await removeDemoObjects(c, signal);
    return { c, stop };
  }, () => ({
    title: `existing cluster from ${kubeconfig}: Lazarus installed`,
    details: [`the demo creates namespace ${NAMESPACE}, RestorePolicy ${POLICY} and nodes named ${EXISTING_NODE_PREFIX}node-*, all labelled ${DEMO_LABEL}=true, and removes them at the end (also on failure or Ctrl-C)`],
  }));

  return {
    client, nodePrefix: EXISTING_NODE_PREFIX,
    // The installed webhook's informers are not reachable from here; a watch event takes milliseconds.
    async webhookSees(_ns, _count, sig) { await new Promise<void>((resolve) => { const t = setTimeout(resolve, 1000); sig.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true }); }); },
    pids: () => [],
    stop,
  };
}

/** Reads the kubeconfig, saying which file could not be read and why. */
function readKubeConfig(file: string): ReturnType<typeof loadKubeConfig> {
  try {
    return loadKubeConfig(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const who = typeof process.getuid === 'function' ? ` (this process runs as UID ${process.getuid()}; in the image that is 65532: make the file readable to it)` : '';
    if (code === 'EACCES') throw new Error(`cannot read kubeconfig ${file}: permission denied${who}`);
    if (code === 'ENOENT') throw new Error(`cannot read kubeconfig ${file}: no such file (with podman or docker, mount it into the container: -v ${file}:${file}:ro)`);
    throw new Error(`cannot use kubeconfig ${file}: ${(err as Error).message}`);
  }
}

/** The demo's node names on an existing cluster. */
function demoNodeNames(): string[] {
  return demoNodes(EXISTING_NODE_PREFIX).map((n) => n.name);
}

/** What exists of the demo's names, as found in the cluster. */
export interface FoundObjects {
  namespace?: { labels?: Record<string, string> | undefined } | undefined;
  policy?: { labels?: Record<string, string> | undefined } | undefined;
  nodes: ReadonlyArray<{ name: string; labels?: Record<string, string> | undefined }>;
  /** The demo nodes' heartbeat Leases. */
  leases: ReadonlyArray<{ name: string; renewTime?: string | undefined }>;
}

/** A Lease renewed this recently belongs to a demo that is still running. */
export const BUSY_MS = 3 * HEARTBEAT_MS;

/**
 * Why the demo must not touch the objects of its names, or undefined when they are absent or a
 * finished (or killed) run's leftovers. Pure.
 */
export function leftoverProblem(found: FoundObjects, now: number): string | undefined {
  const ours = (labels: Record<string, string> | undefined): boolean => labels?.[DEMO_LABEL] === 'true';
  const foreign = [
    ...(found.namespace && !ours(found.namespace.labels) ? [`namespace ${NAMESPACE}`] : []),
    ...(found.policy && !ours(found.policy.labels) ? [`RestorePolicy ${POLICY}`] : []),
    ...found.nodes.filter((n) => !ours(n.labels)).map((n) => `node ${n.name}`),
  ];
  if (foreign.length) {
    return `${foreign.join(', ')} already exist${foreign.length === 1 ? 's' : ''} without the label ${DEMO_LABEL}=true: not made by lazarus demo, so it leaves ${foreign.length === 1 ? 'it' : 'them'} alone and stops here`;
  }
  const fresh = found.leases
    .map((l) => ({ name: l.name, age: now - Date.parse(l.renewTime ?? '') }))
    .filter((l) => Number.isFinite(l.age) && l.age < BUSY_MS)
    .sort((a, b) => a.age - b.age)[0];
  if (fresh) return `another lazarus demo is running against this cluster (node ${fresh.name} renewed its heartbeat ${formatDuration(Math.max(0, fresh.age))} ago); try again when it is done`;
  return undefined;
}

async function findDemoObjects(client: KubeClient): Promise<FoundObjects> {
  type Meta = { metadata: { name: string; labels?: Record<string, string> } };
  const get = <T>(path: string): Promise<T | undefined> => client.request<T>('GET', path).catch((err: unknown) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
  const names = new Set(demoNodeNames());
  const ns = await get<Meta>(`/api/v1/namespaces/${NAMESPACE}`);
  const policy = await get<Meta>(`/apis/${K.API_VERSION}/restorepolicies/${POLICY}`);
  const nodes = (await client.request<{ items: Meta[] }>('GET', '/api/v1/nodes')).items.filter((n) => names.has(n.metadata.name));
  const leases = (await client.request<{ items: Array<Meta & { spec?: { renewTime?: string } }> }>('GET', `/apis/coordination.k8s.io/v1/namespaces/${NODE_LEASE_NAMESPACE}/leases`)).items
    .filter((l) => names.has(l.metadata.name));
  return {
    namespace: ns && { labels: ns.metadata.labels },
    policy: policy && { labels: policy.metadata.labels },
    nodes: nodes.map((n) => ({ name: n.metadata.name, labels: n.metadata.labels })),
    leases: leases.map((l) => ({ name: l.metadata.name, renewTime: l.spec?.renewTime })),
  };
}

/**
 * Deletes what the demo makes (only objects of its names that carry its label) and waits until it
 * is gone: the Deployment and its pods, the namespace (and with it the Checkpoints), the
 * RestorePolicy, the nodes and their Leases, and the pods DaemonSets bound to the nodes. Pods on
 * nodes without a kubelet never finish a graceful termination, so they are deleted with grace 0.
 * Returns how many DaemonSet pods it found on the demo nodes.
 */
async function removeDemoObjects(client: KubeClient, signal: AbortSignal): Promise<number> {
  type Meta = { metadata: { name: string; namespace?: string; labels?: Record<string, string> } };
  const ns = `/api/v1/namespaces/${NAMESPACE}`;
  const ignoreMissing = (err: unknown): void => { if (!isNotFound(err)) throw err; };
  const ours = (o: Meta | undefined): boolean => o?.metadata.labels?.[DEMO_LABEL] === 'true';
  const get = (path: string): Promise<Meta | undefined> => client.request<Meta>('GET', path).catch((err: unknown) => { ignoreMissing(err); return undefined; });

  if (ours(await get(ns))) {
    await client.request('DELETE', `/apis/apps/v1/namespaces/${NAMESPACE}/deployments/${APP}`).catch(ignoreMissing);
    await waitFor(async () => {
      const pods = await client.request<{ items: Meta[] }>('GET', `${ns}/pods`);
      for (const p of pods.items) await client.request('DELETE', `${ns}/pods/${p.metadata.name}`, { query: { gracePeriodSeconds: 0 } }).catch(ignoreMissing);
      return pods.items.length === 0;
    }, { timeoutMs: 30_000, intervalMs: 300, signal, description: `the pods of ${NAMESPACE} to be deleted` });
    await client.request('DELETE', ns).catch(ignoreMissing);
  }
  const policy = `/apis/${K.API_VERSION}/restorepolicies/${POLICY}`;
  if (ours(await get(policy))) await client.request('DELETE', policy).catch(ignoreMissing);

  const names = new Set(demoNodeNames());
  const nodes = (await client.request<{ items: Meta[] }>('GET', '/api/v1/nodes', { query: { labelSelector: `${DEMO_LABEL}=true` } })).items
    .filter((n) => names.has(n.metadata.name));
  for (const n of nodes) await client.request('DELETE', `/api/v1/nodes/${n.metadata.name}`).catch(ignoreMissing);
  for (const n of nodes) await client.request('DELETE', `/apis/coordination.k8s.io/v1/namespaces/${NODE_LEASE_NAMESPACE}/leases/${n.metadata.name}`).catch(ignoreMissing);
  // Pods a DaemonSet bound to the nodes: nothing would ever confirm their termination.
  const bound = new Set<string>();
  await waitFor(async () => {
    let left = 0;
    for (const n of nodes) {
      const pods = await client.request<{ items: Meta[] }>('GET', '/api/v1/pods', { query: { fieldSelector: `spec.nodeName=${n.metadata.name}` } });
      for (const p of pods.items) {
        left++;
        if (p.metadata.namespace !== NAMESPACE) bound.add(`${p.metadata.namespace ?? ''}/${p.metadata.name}`);
        await client.request('DELETE', `/api/v1/namespaces/${p.metadata.namespace ?? ''}/pods/${p.metadata.name}`, { query: { gracePeriodSeconds: 0 } }).catch(ignoreMissing);
      }
    }
    return left === 0;
  }, { timeoutMs: 30_000, intervalMs: 300, signal, description: 'the pods bound to the demo nodes to be deleted' });
  await waitFor(async () => {
    const gone = async (path: string): Promise<boolean> => (await get(path)) === undefined;
    for (const n of nodes) if (!await gone(`/api/v1/nodes/${n.metadata.name}`)) return false;
    return gone(ns);
  }, { timeoutMs: 60_000, intervalMs: 300, signal, description: `namespace ${NAMESPACE} and the demo nodes to be deleted` });
  return bound.size;
}
