/**
 * Issue 6, the watcher path against the real control plane: the `lazarus agent` daemon as a child
 * process, authenticated as the lazarus-agent ServiceAccount (token bound to the agent
 * DaemonSet's pod on its node, as in a cluster) with nothing but the RBAC and admission policy of
 * manifests/base; a real loopback docker-registry; a real CRIU checkpoint made by podman of a
 * container that carries CRI-O's annotations for a pod the real ReplicaSet controller created and
 * the real scheduler bound to the agent's node.
 */
import { tearDown } from '../harness/teardown.js';
import { serviceAccountToken, writeTokenKubeconfig } from '../harness/identity.js';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as K from '../../api/keys.js';
import { specHash } from '../../api/spec-hash.js';
import type { Checkpoint, Container, Node, Pod } from '../../api/types.js';
import { criuCode } from '../../api/versions.js';
import { parseCpuFlags, parseCriuVersion } from '../../agent/node-facts.js';
import { failedCheckpointName } from '../../agent/plan.js';
import { createKubeClient, KubeError, loadKubeConfig, type KubeClient } from '../../kube/client.js';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { applyObjects, installCrds, type KubeObject } from '../harness/apply.js';
import { createNode } from '../harness/nodes.js';
import { createNamespace, waitFor, waitForBoundPods } from '../harness/wait.js';
import { render } from '../support/kustomize.js';
import { CLI, Podman, REPO_ROOT, TOOL_PATH, describeWithTools, must, run, startRegistry, stopChild, tempDir, type Registry } from '../integration/agent-env.js';

const NODE = 'node-e2e';
const OTHER_NODE = 'node-other';
const NS = 'shop';
const SYSTEM_NS = 'lazarus-system';
const IMAGE = 'localhost/lazarus-e2e/busybox:1';
const CK_API = `/apis/${K.API_VERSION}`;
const COUNTER = 'i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done';
/** What the agent needs from manifests/base: identity, RBAC, the own-node policy, its DaemonSet. */
const SHIPPED_KINDS = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding',
  'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'DaemonSet']);

const CONTAINER: Container = { name: 'app', image: IMAGE, command: ['/bin/sh', '-c'], args: [COUNTER], env: [{ name: 'MODE', value: 'e2e' }] };

/** kubelet's archive name: checkpoint-<pod>_<namespace>-<container>-<RFC 3339>.tar */
function kubeletArchiveName(pod: string, at: Date): string {
  return `checkpoint-${pod}_${NS}-app-${at.toISOString().replace(/\.\d+Z$/, 'Z')}.tar`;
}

interface Shipped { token: string; kubeconfig: string; agentPod: Pod }

describeWithTools('agent daemon against the real control plane, a real registry, podman and CRIU', ['podman', 'runc', 'skopeo', 'docker-registry'], true, () => {
  let work = '';
  let checkpointDir = '';
  let cp: ControlPlane | undefined;
  let registry: Registry | undefined;
  let podman: Podman | undefined;
  let agent: ChildProcess | undefined;
  let agentClient: KubeClient;
  let shipped: Shipped;
  let agentLog = '';

  const admin = (): KubeClient => {
    if (!cp) throw new Error('no control plane');
    return cp.client;
  };

  /** A timeout says what the agent logged: the first thing anyone debugging this needs. */
  async function waitWithLog<T>(check: () => Promise<T | undefined>, timeoutMs: number, description: string): Promise<T> {
    try {
      return await waitFor(check, { timeoutMs, description });
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- agent log (tail) ---\n${agentLog.slice(-6000)}`);
    }
  }

  /** manifests/base as rendered by kustomize, the agent's parts applied; a token bound to the agent's pod. */
  async function applyShipped(server: string, caPem: string): Promise<Shipped> {
    const objects = render(join(REPO_ROOT, 'manifests', 'base')).filter((o) => SHIPPED_KINDS.has(o.kind)) as unknown as KubeObject[];
    expect(objects.filter((o) => o.kind === 'DaemonSet').map((o) => o.metadata.name)).toEqual(['lazarus-agent']);
    await applyObjects(admin(), objects, { namespace: SYSTEM_NS });
    // The real DaemonSet controller places the agent's pod on the node; its token carries that node's name.
    // A DaemonSet also covers cordoned nodes: there is one agent pod per node; take this node's.
    const agentPods = await waitForBoundPods<Pod>(admin(), SYSTEM_NS, 'app.kubernetes.io/name=lazarus-agent', 2, 30_000);
    const agentPod = agentPods.find((p) => (p.spec as { nodeName?: string }).nodeName === NODE);
    if (!agentPod?.metadata.name || !agentPod.metadata.uid) throw new Error('no agent pod');
    const token = await serviceAccountToken(admin(), SYSTEM_NS, 'lazarus-agent', { name: agentPod.metadata.name, uid: agentPod.metadata.uid });
    const kubeconfig = await writeTokenKubeconfig(join(work, 'agent.kubeconfig'), server, caPem, 'lazarus-agent', token);
    return { token, kubeconfig, agentPod };
  }

  beforeAll(async () => {
    work = await tempDir('agent-e2e');
    checkpointDir = join(work, 'checkpoints');
    await mkdir(checkpointDir);
    // The three slow starts overlap; whatever did start is stopped in afterAll even if another failed.
    const started = await Promise.allSettled([
      startControlPlane({ log: () => undefined, dir: join(work, 'control-plane') }).then((c) => { cp = c; }),
      startRegistry().then((r) => { registry = r; }),
      Podman.create().then(async (p) => { podman = p; await p.importBusybox(IMAGE); }),
    ]);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    if (!cp || !registry) throw new Error('setup failed');

    await installCrds(cp.client);
    await createNode(cp.client, { name: NODE });
    await createNode(cp.client, { name: OTHER_NODE, unschedulable: true });
    shipped = await applyShipped(cp.server, cp.ca.certPem);
    expect(shipped.agentPod.spec.nodeName).toBe(NODE);
    agentClient = await createKubeClient(loadKubeConfig(shipped.kubeconfig));
    await createNamespace(cp.client, NS);

    // The fake node says cri-o://1.33.2; this stands in for its /etc/crio/crio.conf with restore switched on.
    const crioConf = join(work, 'crio.conf');
    await writeFile(crioConf, '[crio.checkpoint_restore]\ncontainer_level_enabled = "checkpoint_restore"\n');
    agent = spawn(process.execPath, [
      CLI, 'agent', '--node-name', NODE, '--runtime-config', crioConf, '--checkpoint-dir', checkpointDir, '--kubeconfig', shipped.kubeconfig,
      '--namespace', SYSTEM_NS, '--registry', `${registry.host}/lazarus`, '--insecure-registry', registry.host,
      '--metrics-port', '0', '--settle', '300ms', '--scan-interval', '1s', '--facts-interval', '5m', '--log-level', 'info',
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: TOOL_PATH } });
    const keep = (d: Buffer): void => { agentLog = (agentLog + d.toString()).slice(-64_000); };
    agent.stdout?.on('data', keep);
    agent.stderr?.on('data', keep);
  }, 120_000);

  afterAll(() => tearDown([
    ['agent', () => (agent ? stopChild(agent) : undefined)],
    ['podman', () => podman?.destroy()],
    ['registry', () => registry?.stop()],
    ['control plane', () => cp?.stop()],
    ['work dir', () => (work ? rm(work, { recursive: true, force: true }) : undefined)],
  ]), 130_000);

  it('publishes the node facts of the real criu, /proc/cpuinfo and cgroup on its Node, and may change no other node', async () => {
    const version = parseCriuVersion(await must('criu', ['--version']));
    const code = version ? criuCode(version) : undefined;
    expect(code).toBeGreaterThanOrEqual(40100);
    // `criu check` passing is a precondition of a restore-capable node (and of this test).
    expect((await run('criu', ['check'])).code).toBe(0);
    const cpuFlags = parseCpuFlags(await readFile('/proc/cpuinfo', 'utf8'));
    expect(cpuFlags.length).toBeGreaterThan(0);
    const cgroup = existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'v2' : 'v1';

    const node = await waitWithLog(async () => {
      const n = await admin().request<Node>('GET', `/api/v1/nodes/${NODE}`);
      return n.metadata.labels?.[K.NODE_CRIU_VERSION] && n.metadata.annotations?.[K.NODE_CGROUP] ? n : undefined;
    }, 30_000, 'the agent to publish node facts');
    expect(node.metadata.labels).toMatchObject({
      [K.NODE_CRIU_VERSION]: String(code),
      [K.NODE_RESTORE_CAPABLE]: 'true', // criu check passed and the fake node runs cri-o://1.33.2 with restore on
      'kubernetes.io/hostname': NODE, // the kubelet's labels are left alone
    });
    expect(node.metadata.annotations).toMatchObject({
      [K.NODE_RESTORE_CAPABLE_REASON]: 'restore enabled (CRI-O 1.33.2, container_level_enabled = "checkpoint_restore")',
      [K.NODE_CRIU]: version,
      [K.NODE_CPU_FLAGS]: cpuFlags.join(' '),
      [K.NODE_CGROUP]: cgroup,
    });
    const other = await admin().request<Node>('GET', `/api/v1/nodes/${OTHER_NODE}`);
    expect(other.metadata.labels?.[K.NODE_CRIU_VERSION]).toBeUndefined();

    // The shipped admission policy holds for the agent's own token: another node is off limits.
    // The API server starts enforcing a new policy a moment after it is created: wait for that
    // with dry-run patches (admission runs for them too, nothing is stored).
    const patchOther = (query: Record<string, string>): Promise<unknown> => agentClient.request('PATCH', `/api/v1/nodes/${OTHER_NODE}`, {
      body: { metadata: { labels: { [K.NODE_CRIU_VERSION]: '40101' } } }, contentType: 'application/merge-patch+json', query,
    }).then(() => undefined, (err: unknown) => err);
    await waitWithLog(async () => ((await patchOther({ dryRun: 'All' })) as KubeError | undefined)?.status === 403, 15_000, 'the admission policy to be enforced');
    const denied = await agentClient.request('PATCH', `/api/v1/nodes/${OTHER_NODE}`, {
      body: { metadata: { labels: { [K.NODE_CRIU_VERSION]: '40101' } } }, contentType: 'application/merge-patch+json',
    }).then(() => undefined, (err: unknown) => err);
    expect(denied).toBeInstanceOf(KubeError);
    expect((denied as KubeError).status).toBe(403);
    expect((denied as KubeError).message).toContain(`may only change its own node, not ${OTHER_NODE}`);
  }, 40_000);

  it("a real checkpoint of a Deployment's pod becomes an image in the registry and a Ready Checkpoint; the archive is removed", async () => {
    const p = podman;
    const reg = registry;
    if (!p || !reg) throw new Error('setup failed');
    await admin().request('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, {
      body: {
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: NS, labels: { app: 'web' } },
        spec: { replicas: 1, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [CONTAINER] } } },
      },
    });
    const [pod] = await waitForBoundPods<Pod>(admin(), NS, 'app=web', 1, 30_000);
    const podName = pod?.metadata.name;
    if (!pod || !podName) throw new Error('no pod');
    expect(pod.spec.nodeName).toBe(NODE);
    expect(pod.metadata.ownerReferences?.[0]?.kind).toBe('ReplicaSet');

    // What CRI-O would run for that pod: the pod's command, and CRI-O's annotations in the OCI spec
    // (podman parses --annotation as CSV, hence the quoting of the JSON one).
    await p.must(['run', '-d', '--name', 'web-app', ...Podman.RUN_FLAGS,
      '--annotation', 'io.container.manager=cri-o',
      '--annotation', '"io.kubernetes.cri-o.Metadata={""name"":""app""}"',
      '--annotation', `io.kubernetes.pod.name=${podName}`,
      '--annotation', `io.kubernetes.pod.namespace=${NS}`,
      '--annotation', `io.kubernetes.pod.uid=${pod.metadata.uid ?? ''}`,
      IMAGE, ...(CONTAINER.command ?? []), ...(CONTAINER.args ?? [])]);
    await waitFor(async () => /^[3-9]$|^\d\d+$/m.test(await p.must(['logs', 'web-app'])), { timeoutMs: 20_000, description: 'the counter to count' });
    const staging = join(work, 'staging.tar');
    await p.must(['container', 'checkpoint', '--export', staging, '--compress', 'none', 'web-app'], 120_000);
    const at = new Date();
    const archive = join(checkpointDir, kubeletArchiveName(podName, at));
    await rename(staging, archive); // whole, as kubelet's finished archive

    const ck = await waitWithLog(async () => {
      const list = await admin().request<{ items: Checkpoint[] }>('GET', `${CK_API}/namespaces/${NS}/checkpoints`, { query: { labelSelector: `${K.CHECKPOINT_WORKLOAD}=web` } });
      return list.items.find((c) => c.status?.phase === 'Ready');
    }, 60_000, 'a Ready Checkpoint of Deployment web');

    const live = await admin().request<Pod>('GET', `/api/v1/namespaces/${NS}/pods/${podName}`);
    const liveContainer = live.spec.containers.find((c) => c.name === 'app');
    if (!liveContainer) throw new Error('pod without container app');
    const node = await admin().request<Node>('GET', `/api/v1/nodes/${NODE}`);
    const version = parseCriuVersion(await must('criu', ['--version'])) ?? '';
    expect(ck.spec).toMatchObject({
      workload: { kind: 'Deployment', name: 'web' },
      container: 'app',
      sourcePod: podName,
      baseImage: IMAGE,
      specHash: specHash(liveContainer),
      origin: {
        node: NODE,
        architecture: node.status?.nodeInfo?.architecture,
        kernelVersion: node.status?.nodeInfo?.kernelVersion,
        runtime: 'cri-o://1.33.2',
        criuVersion: criuCode(version),
        cgroup: node.metadata.annotations?.[K.NODE_CGROUP],
        cpuFlags: node.metadata.annotations?.[K.NODE_CPU_FLAGS]?.split(' '),
      },
    });
    // The hash of the template is the one a new pod of the Deployment has: the webhook can match it.
    expect(ck.spec.specHash).toBe(specHash(CONTAINER));
    expect(Math.abs(Date.parse(ck.spec.takenAt) - at.getTime())).toBeLessThan(60_000);
    expect(ck.metadata.labels).toEqual({ [K.CHECKPOINT_WORKLOAD]: 'web', [K.CHECKPOINT_WORKLOAD_KIND]: 'Deployment', [K.CHECKPOINT_CONTAINER]: 'app', [K.CHECKPOINT_SOURCE_POD_UID]: pod.metadata.uid });
    // Unique per source pod: the pod's UID prefix ends the name (issue 13 point 6).
    expect(ck.metadata.name).toMatch(new RegExp(`^web-app-\\d{8}t\\d{6}z-${(pod.metadata.uid ?? '').slice(0, 8)}$`));
    expect(ck.status).toMatchObject({ phase: 'Ready' });

    expect(ck.spec.image).toMatch(new RegExp(`^${reg.host}/lazarus/${NS}/web-app@sha256:[0-9a-f]{64}$`));
    const raw = JSON.parse(await must('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ck.spec.image}`])) as {
      mediaType: string; layers: { digest: string }[]; annotations: Record<string, string>;
    };
    expect(raw.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(raw.layers).toHaveLength(1);
    expect(raw.annotations).toMatchObject({
      'io.kubernetes.cri-o.annotations.checkpoint.name': 'app',
      'io.podman.annotations.checkpoint.runtime.name': 'runc',
      'org.criu.checkpoint.pod.name': podName,
      'org.criu.checkpoint.pod.namespace': NS,
      'org.criu.checkpoint.criu.version': version,
    });
    // The layer holds what CRIU wrote: the process tree image of the checkpointed counter.
    const layer = await fetch(`http://${reg.host}/v2/lazarus/${NS}/web-app/blobs/${raw.layers[0]?.digest ?? ''}`);
    expect(layer.status).toBe(200);
    const layerPath = join(work, 'layer.tar');
    await writeFile(layerPath, Buffer.from(await layer.arrayBuffer()));
    const entries = (await must('tar', ['-tf', layerPath])).split('\n');
    expect(entries).toEqual(expect.arrayContaining(['config.dump', 'spec.dump', 'checkpoint/pstree.img']));

    await waitWithLog(async () => (existsSync(archive) ? undefined : true), 10_000, 'the archive to be removed');
    expect(await readdir(checkpointDir)).toEqual([]);
  }, 90_000);

  it('a corrupt archive becomes a Failed Checkpoint with the reason and is kept as .failed', async () => {
    const [pod] = await waitForBoundPods<Pod>(admin(), NS, 'app=web', 1, 10_000);
    const podName = pod?.metadata.name;
    if (!podName) throw new Error('no pod');
    const file = kubeletArchiveName(podName, new Date(Date.now() + 60_000));
    const staging = join(work, 'corrupt.tar');
    await writeFile(staging, randomBytes(64 << 10));
    await rename(staging, join(checkpointDir, file));

    const failed = await waitWithLog(async () => {
      const c = await admin().request<Checkpoint>('GET', `${CK_API}/namespaces/${NS}/checkpoints/${failedCheckpointName(file)}`).catch(() => undefined);
      return c?.status?.phase === 'Failed' ? c : undefined;
    }, 30_000, 'a Failed Checkpoint for the corrupt archive');
    expect(failed.status?.reason).toContain(file);
    expect(failed.status?.reason).toMatch(/not a readable tar archive/);
    expect(failed.spec).toMatchObject({ sourcePod: podName, container: 'app', image: '', origin: { node: NODE } });
    await waitWithLog(async () => (existsSync(join(checkpointDir, `${file}.failed`)) ? true : undefined), 10_000, 'the archive kept as .failed');
    expect(await readdir(checkpointDir)).toEqual([`${file}.failed`]);
    // Nothing was pushed for it: the only tag is the good checkpoint's.
    const tags = await fetch(`http://${registry?.host ?? ''}/v2/lazarus/${NS}/web-app/tags/list`).then((r) => r.json() as Promise<{ tags: string[] }>);
    expect(tags.tags).toHaveLength(1);
    // The agent is still alive and well after it.
    expect(agent?.exitCode).toBeNull();
  }, 40_000);
});
