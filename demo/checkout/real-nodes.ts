/**
 * The demo's opening, on real nodes (root and the tools of scripts/install-checkpoint-tools.sh):
 * a control plane, a registry and three real nodes (test/harness/real-node.ts), Lazarus installed
 * from its own image with `kubectl apply -k` (test/harness/install.ts), and a counter that is
 * checkpointed on demand on node-a and comes back on node-b, counting on from where it was.
 * `lazarus checkpoint` and `lazarus explain` run as the CLI a user types, and print their own output.
 */
import { execFile } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as K from '../../api/keys.js';
import type { Checkpoint } from '../../api/types.js';
import { criuString } from '../../api/versions.js';
import type { KubeClient } from '../../kube/client.js';
import { createNamespace, waitFor } from '../../kube/wait.js';
import { startControlPlane, type ControlPlane } from '../../test/harness/control-plane.js';
import { SERVICE_EXTENDER, realNodeHook } from '../../test/harness/cluster-hooks.js';
import { nodeBinaries, startRealCluster, type RealCluster } from '../../test/harness/real-node.js';
import { installLazarus, waitForNodeFacts, LAZARUS_NAMESPACE } from '../../test/harness/install.js';
import { COUNTER_SCRIPT, preferringDeployment } from '../../test/harness/counter-scenario.js';
import type { Narrator } from '../narrate.js';
import { indent, lazarusPodLines, realNodeLines, restoredCounts, shortDigest, type LogLine, type RealNodeInfo } from '../narrate.js';
import type { RegisterStop } from '../environment.js';

const run = promisify(execFile);
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');

export const REAL_NAMESPACE = 'lazarus-demo';
export const COUNTER = 'counter';
const ORIGIN = 'node-a';
const TARGET = 'node-b';
/** A shell loop that prints 1, 2, 3, … once a second: what it prints next shows where it resumed. */
const COUNT = COUNTER_SCRIPT;

interface Pod {
  metadata: { name: string; creationTimestamp?: string; annotations?: Record<string, string>; labels?: Record<string, string>; deletionTimestamp?: string };
  spec: { nodeName?: string; containers: Array<{ image: string }> };
  status?: { containerStatuses?: Array<{ ready?: boolean; restartCount: number; state?: { running?: unknown } }> };
}

interface RealEnvironment {
  cp: ControlPlane;
  cluster: RealCluster;
  kubectl(args: readonly string[]): Promise<string>;
  /** `lazarus …` as a user runs it, against this cluster; its stdout. */
  lazarus(args: readonly string[]): Promise<string>;
}

/**
 * Starts the real cluster, runs the scenario, stops the cluster (narrated). An interruption or a
 * failure at any point stops what was started: `register` has the stop function from the start.
 */
export async function realNodesAct(say: Narrator, signal: AbortSignal, register: RegisterStop): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lazarus-demo-real-'));
  const harnessLog = path.join(dir, 'harness.log');
  const log = (line: string): void => appendFileSync(harnessLog, `${line}\n`);
  say.section('Real nodes: a checkpoint taken on one node, restored on another');
  say.line(`component logs: ${dir}/ (kube-apiserver.log, registry.log, node-a-kubelet.log, node-a-runtime.log, …)`);

  const parts: { cp?: ControlPlane; cluster?: RealCluster; starting?: Promise<unknown> } = {};
  let stopped: Promise<string> | undefined;
  const stop = (): Promise<string> => (stopped ??= (async () => {
    // A start in flight ends on the abort signal and stops what it started; then the rest goes.
    await parts.starting?.catch(() => undefined);
    await parts.cluster?.stop();
    await parts.cp?.stop();
    await removeBulk(dir);
    return `real nodes, registry and control plane stopped; logs kept in ${dir}`;
  })());
  const unregister = register(stop);
  const starting = <T>(p: Promise<T>): Promise<T> => { parts.starting = p; return p; };

  await say.step(() => starting(nodeBinaries()), (b) => ({
    title: `kubelet ${version(b.kube)}, containerd ${version(b.containerd)}, CRI-O ${version(b.crio)} binaries`,
    details: [`${home(path.dirname(path.dirname(path.dirname(b.containerd))))}/{kube,containerd,cri-o}/… (scripts/node-build.sh: built from the Go module proxy on first use, cached after)`],
  }));
  signal.throwIfAborted();

  const hook = realNodeHook();
  const cp = parts.cp = await say.step(async () => starting(startControlPlane({
    ...await hook.prepare?.({ dir, log }), schedulerConfig: { podInitialBackoffSeconds: 1, podMaxBackoffSeconds: 2 },
  })), (c) => ({
    title: `control plane on ${c.server}`,
    details: [`etcd, kube-apiserver, kube-controller-manager, kube-scheduler with the Lazarus extender behind its Service (${SERVICE_EXTENDER.urlPrefix})`],
  }));
  signal.throwIfAborted();

  const cluster = parts.cluster = await say.step(() => starting(startRealCluster(cp, { log, signal })), (c) => ({
    title: `registry and ${c.nodes.length} real nodes Ready`,
    details: [
      `registry ${c.registry} (Debian's docker-registry), with pause and busybox built by scripts/images.sh`,
      'each node: its own network namespace, kubelet, container runtime, runc and CRIU; pods really run',
    ],
  }));
  signal.throwIfAborted();
  const client = cp.client;
  say.lines(indent(realNodeLines(await nodeInfos(client))));

  await say.step(async () => {
    const i = await starting(installLazarus(cluster, { log, signal }));
    await starting(waitForNodeFacts(client, cluster.nodes.map((n) => n.name), 60_000, signal));
    return { image: i.image, pods: await listPods(client, LAZARUS_NAMESPACE) };
  }, (i) => ({
    title: 'Lazarus installed from its own image',
    details: [
      `image ${i.image}: the repo's Dockerfile, built by scripts/images.sh lazarus (cached), pushed to the registry`,
      `kubectl apply -k ${home(path.join(dir, 'lazarus-overlay'))} (manifests/base + registry, kubelet directories, host network for the agent)`,
      // The components' pods (the certificate Job's pod, done by now, is not one).
      ...lazarusPodLines(i.pods.flatMap((p) => {
        const app = p.metadata.labels?.['app.kubernetes.io/name'];
        return app ? [{ app, node: p.spec.nodeName ?? '?', ready: p.status?.containerStatuses?.every((s) => s.ready) ?? false }] : [];
      })),
    ],
  }));
  signal.throwIfAborted();
  say.note('each node as the agent published it (label lazarus.dev/restore-capable, annotation …-reason):');
  say.lines(indent(realNodeLines(await nodeInfos(client), true), '      '));

  const env: RealEnvironment = {
    cp, cluster,
    kubectl: async (args) => (await run(path.join(cluster.binaries.kube, 'kubectl'), [`--kubeconfig=${cp.kubeconfigPath}`, ...args], { signal })).stdout,
    lazarus: async (args) => {
      try {
        return (await run(process.execPath, [CLI, ...args, `--kubeconfig=${cp.kubeconfigPath}`], { signal, timeout: 150_000 })).stdout;
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string; message: string };
        throw new Error(`lazarus ${args.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim().split('\n').join(' / ')}`);
      }
    },
  };
  await counterScenario(env, say, signal);

  await say.step(stop, (summary) => ({ title: summary }));
  unregister();
}

async function counterScenario(env: RealEnvironment, say: Narrator, signal: AbortSignal): Promise<void> {
  const client = env.cp.client;
  const ns = REAL_NAMESPACE;

  say.section(`A counter on ${ORIGIN}, checkpointed on demand`);
  const first = await say.step(async () => {
    await createNamespace(client, ns, {}, { signal });
    await client.request('POST', `/apis/apps/v1/namespaces/${ns}/deployments`, { body: preferringDeployment({ name: COUNTER, namespace: REAL_NAMESPACE, image: env.cluster.busybox, command: COUNT, preferredNode: ORIGIN }) });
    const pod = await runningPod(client, undefined, signal);
    await waitFor(async () => ((await counts(client, pod.metadata.name)).at(-1)?.n ?? 0) >= 3, { timeoutMs: 30_000, signal, description: 'the counter to reach 3' });
    return pod;
  }, (p) => ({
    title: `Deployment ${ns}/${COUNTER} created, annotated ${K.RESTORE}=enabled`,
    details: [`${p.metadata.name} runs on ${p.spec.nodeName ?? '?'}: busybox sh -c '${COUNT}'`],
  }));
  if (first.spec.nodeName !== ORIGIN) throw new Error(`the counter runs on ${first.spec.nodeName ?? '?'}, not ${ORIGIN}`);
  say.note(`counting: ${(await counts(client, first.metadata.name)).map((l) => l.n).join(' ')} …`);

  const args = ['checkpoint', 'pod', `${ns}/${first.metadata.name}`, '--wait'];
  const onDemand = await say.step(async () => {
    const out = await env.lazarus([...args, '--timeout=90s']);
    const cps = (await checkpointsOf(client, first.metadata.name)).filter((c) => c.status?.phase === 'Ready');
    const c = cps[0];
    if (!c) throw new Error(`lazarus checkpoint printed "${out.trim()}", but no Ready Checkpoint of ${first.metadata.name} exists`);
    return { out, c };
  }, ({ out, c }) => ({
    title: `Checkpoint ${c.metadata.name ?? ''} Ready`,
    details: [
      `$ lazarus ${args.join(' ')}`,
      ...indent(out.trimEnd().split('\n'), '  '),
      `image ${shortDigest(c.spec.image)} (in the registry: the kubelet's archive, as an OCI checkpoint image by the agent)`,
      `origin ${c.spec.origin.node}: ${c.spec.origin.runtime}, criu ${criuString(c.spec.origin.criuVersion)}, kernel ${c.spec.origin.kernelVersion}`,
    ],
  }));

  say.section(`${ORIGIN} cordoned, the pod deleted: the replacement is restored on ${TARGET} and counts on`);
  const restored = await say.step(async () => {
    await cordon(client, ORIGIN, true);
    await client.request('DELETE', `/api/v1/namespaces/${ns}/pods/${first.metadata.name}`);
    return runningPod(client, first.metadata.name, signal);
  }, (p) => {
    const from = /^app=(.+)$/.exec(p.metadata.annotations?.[K.RESTORED_FROM] ?? '')?.[1];
    return { ok: from !== undefined, title: `${p.metadata.name} ${from ? `restored from ${from}` : 'started cold'} → ${p.spec.nodeName ?? '?'}` };
  });
  const from = /^app=(.+)$/.exec(restored.metadata.annotations?.[K.RESTORED_FROM] ?? '')?.[1];
  if (!from) throw new Error(`pod ${restored.metadata.name} started cold on ${restored.spec.nodeName ?? '?'}`);
  if (restored.spec.nodeName !== TARGET) throw new Error(`pod ${restored.metadata.name} was restored on ${restored.spec.nodeName ?? '?'}, not ${TARGET}`);
  const used = (await checkpointsOf(client, first.metadata.name)).find((c) => c.metadata.name === from);
  const which = from === onDemand.c.metadata.name ? 'the checkpoint taken on demand' : `taken by the controller when ${ORIGIN} was cordoned (onDrain)`;
  await waitFor(async () => restoredCounts(await counts(client, restored.metadata.name), Date.parse(restored.metadata.creationTimestamp ?? '')).after.length >= 3,
    { timeoutMs: 30_000, signal, description: `${restored.metadata.name} to count on` });
  const c = restoredCounts(await counts(client, restored.metadata.name), Date.parse(restored.metadata.creationTimestamp ?? ''));
  if (!c.continues) throw new Error(`${restored.metadata.name} does not continue from the checkpoint: its log is ${c.all.join(' ')}`);
  say.lines(indent([
    `${from}: ${which}, image ${shortDigest(used?.spec.image ?? '')}`,
    `counter at the checkpoint: ${c.atCheckpoint ?? '?'}; the pod's log, last lines (the archived ones first, then the restored process):`,
    `  … ${c.before.slice(-3).join(' ')} | ${c.after.join(' ')}`,
    ...(c.before.at(-1) !== c.atCheckpoint ? [`  (the archived log ran on to ${c.before.at(-1) ?? '?'} past the dump: the container ran on while the archive was written)`] : []),
    `restarts: ${restored.status?.containerStatuses?.[0]?.restartCount ?? '?'}; a cold start would have begun again at 1`,
    `$ lazarus explain pod ${ns}/${restored.metadata.name}`,
    ...indent((await env.lazarus(['explain', 'pod', `${ns}/${restored.metadata.name}`])).trimEnd().split('\n'), '  '),
  ]));
}

/** `…/containerd/v2.3.7/bin` → `2.3.7`. */
function version(binDir: string): string {
  return /\/v([^/]+)\/bin\/?$/.exec(binDir)?.[1] ?? '?';
}

function home(p: string): string {
  return p.replace(os.homedir(), '~');
}

async function listPods(client: KubeClient, namespace: string, labelSelector?: string): Promise<Pod[]> {
  const list = await client.request<{ items: Pod[] }>('GET', `/api/v1/namespaces/${namespace}/pods`, labelSelector ? { query: { labelSelector } } : {});
  return list.items.filter((p) => !p.metadata.deletionTimestamp);
}

/** The one running counter pod other than `not`. */
function runningPod(client: KubeClient, not: string | undefined, signal: AbortSignal): Promise<Pod> {
  return waitFor(async () => {
    const pods = (await listPods(client, REAL_NAMESPACE, `app=${COUNTER}`)).filter((p) => p.metadata.name !== not);
    return pods.length === 1 && pods[0]?.status?.containerStatuses?.[0]?.state?.running ? pods[0] : undefined;
  }, { timeoutMs: 90_000, signal, description: `a running ${COUNTER} pod${not ? ` other than ${not}` : ''}` });
}

/** The counter's log with the kubelet's timestamps: a restored container's archived lines keep theirs. */
async function counts(client: KubeClient, pod: string): Promise<LogLine[]> {
  const text = await client.request<string>('GET', `/api/v1/namespaces/${REAL_NAMESPACE}/pods/${pod}/log`, { query: { timestamps: 'true' } });
  return String(text).trim().split('\n').filter(Boolean).map((l) => {
    const [at = '', n = ''] = l.split(' ');
    return { at: Date.parse(at), n: Number(n) };
  });
}

async function checkpointsOf(client: KubeClient, sourcePod: string): Promise<Checkpoint[]> {
  const list = await client.request<{ items: Checkpoint[] }>('GET', `/apis/${K.API_VERSION}/namespaces/${REAL_NAMESPACE}/checkpoints`);
  return list.items.filter((c) => c.spec.sourcePod === sourcePod);
}

function cordon(client: KubeClient, node: string, on: boolean): Promise<unknown> {
  return client.request('PATCH', `/api/v1/nodes/${node}`, { body: { spec: { unschedulable: on } }, contentType: 'application/merge-patch+json' });
}

interface NodeObject {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { unschedulable?: boolean };
  status?: { conditions?: Array<{ type: string; status: string }>; nodeInfo?: { containerRuntimeVersion?: string; kernelVersion?: string; kubeletVersion?: string } };
}

async function nodeInfos(client: KubeClient): Promise<RealNodeInfo[]> {
  const list = await client.request<{ items: NodeObject[] }>('GET', '/api/v1/nodes');
  return list.items.map((n) => ({
    name: n.metadata.name,
    ready: n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    runtime: n.status?.nodeInfo?.containerRuntimeVersion ?? '?',
    kernel: n.status?.nodeInfo?.kernelVersion ?? '?',
    kubelet: n.status?.nodeInfo?.kubeletVersion ?? '?',
    restoreCapable: n.metadata.labels?.[K.NODE_RESTORE_CAPABLE],
    criu: n.metadata.annotations?.[K.NODE_CRIU],
    reason: n.metadata.annotations?.[K.NODE_RESTORE_CAPABLE_REASON],
  })).sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The nodes' disks and the registry's blobs (gigabytes) go; the logs stay. Only once nothing is
 * mounted under the directory any more: a removal must never reach through a mount.
 */
async function removeBulk(dir: string): Promise<void> {
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  if (mounts.split('\n').some((l) => (l.split(' ')[4] ?? '').startsWith(`${dir}/`))) return;
  for (const d of ['nodes', 'registry-data']) await rm(path.join(dir, d), { recursive: true, force: true });
}
