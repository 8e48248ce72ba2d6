/**
 * Lazarus installed on real nodes the way users install it: the image built from the repo's own
 * Dockerfile (scripts/images.sh), pushed to the cluster's registry, and `kubectl apply -k` of a
 * thin overlay over manifests/base — or `helm install` of charts/lazarus, with the same overlay
 * as Helm's post-renderer. What the overlay changes, and why, is all in `overlayKustomization`;
 * everything else is the base (or the chart) as shipped.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import type { KubeClient } from '../../kube/client.js';
import { imageArchive, pushArchive, SERVICE_PROXY, startRealCluster, type RealCluster } from './real-node.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { realNodeHook } from './cluster-hooks.js';
import { tearDown } from './teardown.js';
import { helmPath, tool, type Tool } from './helm-bin.js';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const LAZARUS_NAMESPACE = 'lazarus-system';

export interface InstalledLazarus {
  /** The image every component runs, by tag in the cluster's registry. */
  image: string;
  overlayDir: string;
  /** `kubectl` of the cluster's version, with the admin kubeconfig. */
  kubectl(args: readonly string[]): Promise<string>;
  /** With `installer: 'helm'`: helm, with the admin kubeconfig; the release is `lazarus` in LAZARUS_NAMESPACE. */
  helm?: Tool;
}

export interface OverlayInput {
  /** Path from the overlay directory to manifests/base. */
  base: string;
  registry: string;
  imageTag: string;
  /** Parent of every node's directory; node N's kubelet root is `${nodesDir}/N/kubelet`. */
  nodesDir: string;
  /** Index of `--host-exec=…` in the base agent's args. */
  hostExecArg: number;
  /** A process in the host's mount namespace (the base enters PID 1's). */
  hostPid: number;
  /** With the second-scheduler overlay: where its kube-scheduler image is. */
  scheduler?: { image: string };
}

/**
 * The environment-specific part, and nothing more:
 * - image references point at the loopback registry;
 * - kubelets keep their root directories under the run directory, one per node (the agent finds
 *   its node's by name), not in /var/lib/kubelet;
 * - the agent runs in its node's network namespace (hostNetwork), where the registry is on
 *   loopback, and pushes to it over plain HTTP; it reads its node's runtime configuration file;
 * - the default RestorePolicy names that registry for checkpoint images.
 * The API server is reached in-cluster as everywhere (the `kubernetes` Service IP is served
 * inside each node's namespace).
 */
export function overlayKustomization(o: OverlayInput): Record<string, unknown> {
  const agentArg = (path: string, value: unknown): Record<string, unknown> => ({ op: 'add', path: `/spec/template/spec/containers/0/args/${path}`, value });
  return {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [o.base],
    images: [
      { name: 'lazarus', newName: `${o.registry}/lazarus`, newTag: o.imageTag },
      ...(o.scheduler ? [{ name: 'kube-scheduler', newName: o.scheduler.image.replace(/:[^:/]+$/, ''), newTag: o.scheduler.image.replace(/^.*:/, '') }] : []),
    ],
    patches: [
      // The second scheduler calls the extender by its Service name; pods here have no cluster DNS
      // or kube-proxy, so it goes through the harness' Service proxy (real-node.ts).
      ...(o.scheduler ? [{
        target: { kind: 'Deployment', name: 'lazarus-scheduler' },
        patch: stringify([{ op: 'add', path: '/spec/template/spec/containers/0/env', value: [{ name: 'HTTP_PROXY', value: SERVICE_PROXY }, { name: 'NO_PROXY', value: '10.0.0.1' }] }]),
      }] : []),
      {
        target: { kind: 'DaemonSet', name: 'lazarus-agent' },
        patch: stringify([
          { op: 'add', path: '/spec/template/spec/hostNetwork', value: true },
          { op: 'add', path: '/spec/template/spec/dnsPolicy', value: 'ClusterFirstWithHostNet' },
          { op: 'replace', path: '/spec/template/spec/containers/0/args/1', value: `--checkpoint-dir=${o.nodesDir}/$(NODE_NAME)/kubelet/checkpoints` },
          agentArg('-', `--insecure-registry=${o.registry}`),
          agentArg('-', `--runtime-config=${o.nodesDir}/$(NODE_NAME)/runtime.toml`),
          { op: 'replace', path: '/spec/template/spec/volumes/0/hostPath/path', value: o.nodesDir },
          { op: 'replace', path: '/spec/template/spec/containers/0/volumeMounts/0/mountPath', value: o.nodesDir },
          // PID 1 of this machine is a sandbox init whose namespaces nobody may enter, not the
          // host's systemd: the host's mount namespace is entered through a process that lives
          // in it for as long as the nodes do (the one that started them).
          { op: 'replace', path: `/spec/template/spec/containers/0/args/${String(o.hostExecArg)}`, value: `--host-exec=nsenter --target ${String(o.hostPid)} --mount --` },
        ]),
      },
      {
        target: { kind: 'RestorePolicy', name: 'default' },
        patch: stringify([{ op: 'add', path: '/spec/checkpoint/registry', value: `${o.registry}/lazarus` }]),
      },
    ],
  };
}

/** Builds (cached) and pushes the image, applies the overlay, waits until every component is ready. */
export interface InstallOptions {
  log?: (line: string) => void;
  timeoutMs?: number;
  /** `second-scheduler`: manifests/overlays/second-scheduler instead of the base (default `base`); with helm, scheduler.mode. */
  variant?: 'base' | 'second-scheduler';
  /** `helm`: `helm install` of charts/lazarus instead of `kubectl apply -k` (default `kustomize`). */
  installer?: 'kustomize' | 'helm';
  /** Stops waiting (Ctrl-C in the demo). */
  signal?: AbortSignal;
}

export async function installLazarus(cluster: RealCluster, options: InstallOptions = {}): Promise<InstalledLazarus> {
  const log = options.log ?? ((line: string) => console.log(line));
  const t0 = Date.now();
  const archive = await imageArchive('lazarus');
  // The archive is named by the hash of what went into it; the tag carries it.
  const imageTag = /lazarus-([0-9a-f]{12,})/.exec(path.basename(archive))?.[1] ?? 'dev';
  const image = `${cluster.registry}/lazarus:${imageTag}`;
  await pushArchive(archive, image);
  log(`[install] image ${image} (${String(Date.now() - t0)} ms)`);

  const secondScheduler = options.variant === 'second-scheduler';
  let scheduler: { image: string } | undefined;
  if (secondScheduler) {
    scheduler = { image: `${cluster.registry}/kube-scheduler:v1.35.4` };
    await pushArchive(await imageArchive('kube-scheduler'), scheduler.image);
  }
  const overlayDir = path.join(cluster.cp.dir, 'lazarus-overlay');
  await mkdir(overlayDir, { recursive: true });
  const helmInstall = options.installer === 'helm';
  await writeFile(path.join(overlayDir, 'kustomization.yaml'), stringify(overlayKustomization({
    base: helmInstall ? HELM_RENDER : path.relative(overlayDir, path.join(repoRoot, secondScheduler ? 'manifests/overlays/second-scheduler' : 'manifests/base')),
    registry: cluster.registry, imageTag, nodesDir: path.join(cluster.cp.dir, 'nodes'),
    hostExecArg: await baseAgentArgIndex('--host-exec='), hostPid: process.pid,
    ...(scheduler ? { scheduler } : {}),
  })));
  const kubectl = async (args: readonly string[]): Promise<string> => {
    try {
      return (await run(path.join(cluster.binaries.kube, 'kubectl'), [`--kubeconfig=${cluster.cp.kubeconfigPath}`, ...args], { maxBuffer: 16 << 20, ...(options.signal ? { signal: options.signal } : {}) })).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`kubectl ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
    }
  };
  let helm: Tool | undefined;
  if (helmInstall) {
    helm = tool(await helmPath(), cluster.cp.kubeconfigPath);
    await helmInstallLazarus(helm, kubectl, path.join(cluster.binaries.kube, 'kubectl'), overlayDir, {
      'image.repository': `${cluster.registry}/lazarus`, 'image.tag': imageTag, 'registry.url': `${cluster.registry}/lazarus`,
      ...(scheduler ? { 'scheduler.mode': 'second-scheduler', 'scheduler.second.image.repository': scheduler.image.replace(/:[^:/]+$/, ''), 'scheduler.second.image.tag': scheduler.image.replace(/^.*:/, '') } : {}),
    }, options.signal);
  } else {
    // CRDs first: the default RestorePolicy in the same apply needs its kind to exist.
    await kubectl(['apply', '--server-side', '-k', path.join(repoRoot, 'charts/lazarus/crds')]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/checkpoints.lazarus.dev', 'crd/restorepolicies.lazarus.dev']);
    await kubectl(['apply', '--server-side', '-k', overlayDir]);
  }
  await waitForRollout(kubectl, options.timeoutMs ?? 180_000, secondScheduler ? ['deployment/lazarus-scheduler'] : []);
  log(`[install] Lazarus running from ${image} by ${helmInstall ? 'helm install' : 'kubectl apply -k'} (${String(Date.now() - t0)} ms): webhook ×2, extender, controller, agent on ${String(cluster.nodes.length)} nodes`);
  return { image, overlayDir, kubectl, ...(helm ? { helm } : {}) };
}

/** The file Helm's post-renderer writes the chart's render to, inside the overlay directory. */
const HELM_RENDER = 'helm-render.yaml';

/**
 * docs/install-helm.md's steps: the namespace, labelled for the agent, then `helm install`, its
 * output run through the overlay (Helm's post-renderer gets the render on stdin and installs what
 * the script prints). The chart installs its CRDs itself, and its post-install Job sets up the
 * webhook's certificate, which Helm waits for.
 */
async function helmInstallLazarus(helm: Tool, kubectl: InstalledLazarus['kubectl'], kubectlBin: string, overlayDir: string, values: Record<string, string>, signal?: AbortSignal): Promise<void> {
  await kubectl(['create', 'namespace', LAZARUS_NAMESPACE]);
  await kubectl(['label', 'namespace', LAZARUS_NAMESPACE, 'pod-security.kubernetes.io/enforce=privileged']);
  const postRenderer = path.join(overlayDir, 'post-render.sh');
  await writeFile(postRenderer, `#!/bin/sh\nset -e\ncat > '${path.join(overlayDir, HELM_RENDER)}'\nexec '${kubectlBin}' kustomize '${overlayDir}'\n`);
  await chmod(postRenderer, 0o755);
  const sets = Object.entries(values).flatMap(([k, v]) => ['--set-string', `${k}=${v}`]);
  await helm(['install', 'lazarus', path.join(repoRoot, 'charts/lazarus'), '--namespace', LAZARUS_NAMESPACE, '--post-renderer', postRenderer, '--timeout', '3m', ...sets], signal ? { signal } : {});
}

/** Where an argument sits in the base agent's container args (JSON patches address by index). */
async function baseAgentArgIndex(prefix: string): Promise<number> {
  const docs = parseAllDocuments(await readFile(path.join(repoRoot, 'manifests/base/agent.yaml'), 'utf8')).map((d) => d.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: Array<{ args?: string[] }> } } } });
  const args = docs.find((d) => d.kind === 'DaemonSet')?.spec?.template?.spec?.containers?.[0]?.args ?? [];
  const i = args.findIndex((a) => a.startsWith(prefix));
  if (i < 0) throw new Error(`manifests/base/agent.yaml: no ${prefix} argument`);
  return i;
}

async function waitForRollout(kubectl: InstalledLazarus['kubectl'], timeoutMs: number, extra: readonly string[] = []): Promise<void> {
  const timeout = `--timeout=${String(Math.round(timeoutMs / 1000))}s`;
  for (const target of ['deployment/lazarus-webhook', 'deployment/lazarus-extender', 'deployment/lazarus-controller', 'daemonset/lazarus-agent', ...extra]) {
    try {
      await kubectl(['-n', LAZARUS_NAMESPACE, 'rollout', 'status', timeout, target]);
    } catch (err) {
      const pods = await kubectl(['-n', LAZARUS_NAMESPACE, 'get', 'pods', '-o', 'wide']).catch(() => '');
      const waiting = await kubectl(['-n', LAZARUS_NAMESPACE, 'get', 'pods', '-o',
        'jsonpath={range .items[*]}{.metadata.name}{": "}{.status.containerStatuses[*].state.waiting.message}{"\\n"}{end}']).catch(() => '');
      throw new Error(`${target} did not roll out: ${(err as Error).message}\n${pods}\n${waiting.split('\n').filter((l) => !l.endsWith(': ')).join('\n')}`);
    }
  }
}

/** Waits until the agent has published restore-capable on every node. */
export async function waitForNodeFacts(client: KubeClient, nodes: readonly string[], timeoutMs = 60_000, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    const list = await client.request<{ items: Array<{ metadata: { name: string; labels?: Record<string, string> } }> }>('GET', '/api/v1/nodes');
    const missing = nodes.filter((n) => !list.items.find((i) => i.metadata.name === n)?.metadata.labels?.['lazarus.dev/restore-capable']);
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`no lazarus.dev/restore-capable label on ${missing.join(', ')} after ${String(timeoutMs)} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export interface RealLazarus {
  cp: ControlPlane;
  cluster: RealCluster;
  lazarus: InstalledLazarus;
  /** Stops the nodes, then the control plane; each step bounded (teardown.ts). */
  stop(): Promise<void>;
}

/**
 * A control plane, three real nodes and Lazarus installed on them, with every node's facts
 * published: where the real-node tests and the restore bench begin. Stops what it started if a
 * step fails. With `schedulerExtender: false` the control plane's own scheduler has no extender
 * (the second-scheduler overlay brings one of its own).
 */
export async function startRealLazarus(options: InstallOptions & { schedulerExtender?: boolean } = {}): Promise<RealLazarus> {
  const log = options.log ?? ((line: string) => console.log(line));
  const prepared = await realNodeHook().prepare?.({ log }) ?? {};
  const cp = await startControlPlane({
    ...prepared,
    ...(options.schedulerExtender === false ? { extenders: [] } : {}),
    schedulerConfig: { podInitialBackoffSeconds: 1, podMaxBackoffSeconds: 2 },
  });
  let cluster: RealCluster | undefined;
  const stop = (): Promise<void> => tearDown([
    ['real nodes', () => cluster?.stop()],
    ['control plane', () => cp.stop()],
  ], { stepMs: 60_000, log });
  try {
    options.signal?.throwIfAborted();
    cluster = await startRealCluster(cp, { log, ...(options.signal ? { signal: options.signal } : {}) });
    const lazarus = await installLazarus(cluster, options);
    await waitForNodeFacts(cp.client, cluster.nodes.map((n) => n.name), 60_000, options.signal);
    return { cp, cluster, lazarus, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
