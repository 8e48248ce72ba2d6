/**
 * Real nodes on this machine: kubelets of the control plane's version and build, each with its
 * own container runtime (containerd 2.3 or CRI-O 1.34, built by scripts/node-build.sh), Debian's
 * runc, conmon and CNI plugins, and CRIU 4.1 — pods really run, checkpoint and restore.
 *
 * Each node lives in a network namespace of its own, as a node is a host of its own: its kubelet,
 * runtime and pods (and hostNetwork pods, so DaemonSets and ports behave as on separate hosts).
 * Inside it, the `kubernetes` Service IP (10.0.0.1:443) and the registry's loopback port are
 * served by netns-forwarder.ts, which carries them over Unix sockets to the host's loopback; the
 * control plane's egress proxy reaches kubelets and pods through the same forwarder. So the
 * in-cluster configuration of every pod works unchanged, nothing listens beyond loopback on the
 * host, and no packet is sent to any address outside this machine's loopback and the namespaces
 * made here.
 *
 * What a run touches outside its directory, and removes on stop: network namespaces
 * `lz<id>-<node>` (with the CNI bridges and veths inside), cgroups `/lz<id>-<node>` in every
 * hierarchy, libcnis's cache files for its networks, kubelet's symlinks in /var/log/containers.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { access, mkdir, readdir, readFile, readlink, rm, rmdir, writeFile, chmod } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { kubeconfigYaml, type ControlPlane } from './control-plane.js';
import { issueCertificate } from './pki.js';
import { freePort, isAlive, startComponent, stopComponent, tailLog, type Component } from './processes.js';
import { connectInto } from './netns-forwarder.js';
import type { KubeClient } from '../../kube/client.js';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export type RuntimeKind = 'containerd' | 'cri-o';
export interface RealNodeSpec { name: string; runtime: RuntimeKind }

/** Two containerd nodes (restore across nodes) and one CRI-O node (a runtime that cannot read containerd's checkpoints). */
export const DEFAULT_REAL_NODES: readonly RealNodeSpec[] = [
  { name: 'node-a', runtime: 'containerd' },
  { name: 'node-b', runtime: 'containerd' },
  { name: 'node-c', runtime: 'cri-o' },
];

/** Service IP of `kubernetes` (the harness' service CIDR is 10.0.0.0/24). */
const API_SERVICE_IP = '10.0.0.1';
/**
 * Pods have no route to another Service (no kube-proxy, no cluster DNS here). A pod that must call
 * one by name (the second scheduler calling the extender) sets HTTP_PROXY to SERVICE_PROXY: the
 * control plane's egress proxy, which resolves `svc.ns.svc` names to endpoints.
 */
const SERVICE_PROXY_PORT = 3128;
export const SERVICE_PROXY = `http://${API_SERVICE_IP}:${String(SERVICE_PROXY_PORT)}`;
const nodeIp = (i: number): string => `10.250.${String(i + 1)}.2`;
const podSubnet = (i: number): string => `10.88.${String(i + 1)}`;

export interface NodeBinaries { kube: string; containerd: string; crio: string }

/** The one-line reason this machine cannot run a real node, or undefined when it can. */
export async function realNodePreflight(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'real nodes need root (network namespaces, cgroups, mounts, CRIU)';
  const need: Array<[string, string]> = [
    ['/usr/sbin/runc', 'runc (apt-get install runc)'],
    ['/usr/bin/conmon', 'conmon (apt-get install conmon)'],
    ['/usr/lib/cni/bridge', 'CNI plugins (apt-get install containernetworking-plugins)'],
    ['/usr/bin/nsenter', 'nsenter (util-linux)'],
    ['/usr/bin/docker-registry', "Debian's docker-registry"],
    ['/usr/bin/skopeo', 'skopeo'],
  ];
  for (const [file, what] of need) if (!existsSync(file)) return `real nodes need ${what}: ${file} is missing (scripts/install-checkpoint-tools.sh installs it)`;
  try {
    const { stdout } = await run('criu', ['--version']);
    const v = /Version:\s*(\d+)\.(\d+)/.exec(stdout);
    if (!v || Number(v[1]) < 4 || (Number(v[1]) === 4 && Number(v[2]) < 1)) return `real nodes need CRIU >= 4.1 on PATH; found: ${stdout.trim().split('\n')[0] ?? '?'}`;
  } catch {
    return 'real nodes need CRIU >= 4.1 on PATH (scripts/install-checkpoint-tools.sh builds it)';
  }
  if (!existsSync('/sys/fs/cgroup/cpu') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'real nodes need cgroups mounted under /sys/fs/cgroup';
  return undefined;
}

export async function nodeBinaries(): Promise<NodeBinaries> {
  const { stdout } = await run('bash', [path.join(repoRoot, 'scripts/node-build.sh')], { maxBuffer: 1 << 20 });
  const parts = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
  const { kube, containerd, crio } = parts;
  if (!kube || !containerd || !crio) throw new Error(`scripts/node-build.sh printed no binary directories: ${stdout}`);
  return { kube, containerd, crio };
}

/** Path of an OCI archive from scripts/images.sh (built once, cached). */
export async function imageArchive(name: 'pause' | 'busybox' | 'lazarus' | 'kube-scheduler'): Promise<string> {
  const { stdout } = await run('bash', [path.join(repoRoot, 'scripts/images.sh'), name], { maxBuffer: 1 << 20, timeout: 30 * 60_000 });
  const archive = stdout.trim().split('\n').pop() ?? '';
  if (!archive) throw new Error(`scripts/images.sh ${name} printed no archive`);
  return archive.replace(/^oci-archive:/, '');
}

export async function pushArchive(archive: string, ref: string): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci-archive:${archive}`, `docker://${ref}`], { timeout: 10 * 60_000 });
}

// ---- the registry ----------------------------------------------------------------------------

export interface Registry { readonly address: string; readonly component: Component; stop(): Promise<void> }

export async function startRegistry(dir: string): Promise<Registry> {
  const port = await freePort();
  await mkdir(path.join(dir, 'registry-data'), { recursive: true });
  const config = path.join(dir, 'registry.yml');
  await writeFile(config, stringify({
    version: 0.1,
    log: { level: 'warn' },
    storage: { filesystem: { rootdirectory: path.join(dir, 'registry-data') }, delete: { enabled: true } },
    http: { addr: `127.0.0.1:${String(port)}` },
  }));
  const component = startComponent('registry', '/usr/bin/docker-registry', ['serve', config], path.join(dir, 'registry.log'));
  const address = `127.0.0.1:${String(port)}`;
  await waitUntil(`registry on ${address}`, 15_000, component, async () => (await fetch(`http://${address}/v2/`)).ok);
  return { address, component, stop: () => stopComponent(component) };
}

/** SIGSTOP/SIGCONT: the registry keeps its port and data, and answers nothing while frozen. */
function freeze(registry: Registry, frozen: boolean): void {
  try {
    process.kill(registry.component.pid, frozen ? 'SIGSTOP' : 'SIGCONT');
  } catch { /* exited already */ }
}

// ---- nodes -----------------------------------------------------------------------------------

export interface RealNode {
  readonly name: string;
  readonly runtime: RuntimeKind;
  /** InternalIP, inside the node's own network namespace. */
  readonly address: string;
  readonly netns: string;
  readonly dir: string;
  /** The kubelet's --root-dir; checkpoint archives land in `${kubeletDir}/checkpoints`. */
  readonly kubeletDir: string;
  /** The runtime's configuration file, as the agent reads it. */
  readonly runtimeConfig: string;
  logPath(component: 'kubelet' | 'runtime' | 'forwarder'): string;
  /** Stops the kubelet only (a lost node: its pods keep running, nothing reports). */
  stopKubelet(): Promise<void>;
  startKubelet(): Promise<void>;
}

export interface RealCluster {
  readonly cp: ControlPlane;
  /** host:port of the registry, the same from the host, the nodes and their pods. */
  readonly registry: string;
  readonly nodes: readonly RealNode[];
  readonly binaries: NodeBinaries;
  /** busybox pushed as `${registry}/library/busybox:stable`. */
  readonly busybox: string;
  /** Freezes (true) or thaws the registry: every pull and push then hangs, as behind a dead link. */
  freezeRegistry(frozen: boolean): void;
  stop(): Promise<void>;
}

export interface RealClusterOptions {
  nodes?: readonly RealNodeSpec[];
  log?: (line: string) => void;
  /** How long each node may take to be Ready (default 90 s). */
  readyTimeoutMs?: number;
  /** Ends a start in flight: it stops what it started and rejects. */
  signal?: AbortSignal;
}

interface NodeState extends RealNode {
  components: { forwarder?: Component; runtime?: Component; kubelet?: Component };
  cgroupRoot: string;
  network: string;
  inbound: string;
  startKubeletProcess(): Component;
}

async function sh(cmd: string, args: readonly string[]): Promise<string> {
  try {
    return (await run(cmd, [...args], { maxBuffer: 8 << 20 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

async function waitUntil(what: string, timeoutMs: number, component: Component | undefined, check: () => Promise<boolean>, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    signal?.throwIfAborted();
    const exit = component?.exitDescription();
    if (component && exit !== undefined) throw new Error(`${component.name} ${exit} while waiting for ${what}; log ${component.logPath}:\n${tailLog(component.logPath)}`);
    try { if (await check()) return; } catch (err) { last = (err as Error).message; }
    if (Date.now() > deadline) throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}${last ? ` (${last})` : ''}${component ? `; log ${component.logPath}:\n${tailLog(component.logPath)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Sandbox and container IDs the node's runtime knew (for the state it keeps outside the run directory). */
async function containerIds(nodeDir: string): Promise<string[]> {
  const places = [
    'containerd/state/io.containerd.runtime.v2.task/k8s.io',
    'containerd/root/io.containerd.grpc.v1.cri/sandboxes',
    'crio/run/overlay-containers',
  ];
  const ids = new Set<string>();
  for (const p of places) for (const f of await readdir(path.join(nodeDir, p)).catch(() => [] as string[])) if (/^[0-9a-f]{64}$/.test(f)) ids.add(f);
  return [...ids];
}

const CGROUP_V1_ROOT = '/sys/fs/cgroup';

async function cgroupHierarchies(): Promise<string[]> {
  if (existsSync(path.join(CGROUP_V1_ROOT, 'cgroup.controllers'))) return [CGROUP_V1_ROOT];
  const names = await readdir(CGROUP_V1_ROOT);
  return names.map((n) => path.join(CGROUP_V1_ROOT, n));
}

/** The kubelet's cgroupRoot must exist in every hierarchy before it starts (cpuset needs cpus/mems). */
async function createCgroupRoot(root: string): Promise<void> {
  for (const h of await cgroupHierarchies()) {
    const dir = path.join(h, root);
    await mkdir(dir, { recursive: true });
    if (path.basename(h) === 'cpuset') {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) await writeFile(path.join(dir, f), (await readFile(path.join(h, f), 'utf8')).trim() || '0');
    }
  }
}

/** Kills every process left in a cgroup tree (containers, conmon), then removes the tree. */
async function removeCgroupRoot(root: string): Promise<void> {
  for (const h of await cgroupHierarchies()) {
    const top = path.join(h, root);
    if (!existsSync(top)) continue;
    for (let attempt = 0; attempt < 50; attempt++) {
      const dirs = await cgroupDirs(top);
      let pids = 0;
      for (const d of dirs) {
        const procs = await readFile(path.join(d, 'cgroup.procs'), 'utf8').catch(() => '');
        for (const p of procs.split('\n').filter(Boolean)) { pids++; try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ } }
      }
      // Deepest first; a cgroup with a dying process refuses rmdir for a moment.
      for (const d of dirs.reverse()) await rmdir(d).catch(() => undefined);
      if (!existsSync(top)) break;
      if (pids === 0 && attempt > 5) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function cgroupDirs(top: string): Promise<string[]> {
  const out = [top];
  for (let i = 0; i < out.length; i++) {
    const entries = await readdir(out[i] as string, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isDirectory()) out.push(path.join(out[i] as string, e.name));
  }
  return out;
}

/** Unmounts everything mounted under `dir`, deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const info = await readFile('/proc/self/mountinfo', 'utf8');
    const points = info.split('\n').map((l) => l.split(' ')[4] ?? '').map((p) => p.replace(/\\040/g, ' '))
      .filter((p) => p === dir || p.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
    if (points.length === 0) return;
    for (const p of points) await run('umount', ['-l', p]).catch(() => undefined);
  }
}

/** Processes whose command line names this directory (containerd shims, conmon) — SIGKILLed. */
async function killProcessesNaming(dir: string): Promise<void> {
  const mine = new Set([process.pid, process.ppid]);
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || mine.has(pid)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').some((a) => a.includes(`${dir}/`) || a === dir)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

function cniConfig(network: string, subnet: string, ipamDir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: network,
    plugins: [
      {
        type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: 'host-local', dataDir: ipamDir, ranges: [[{ subnet: `${subnet}.0/24`, gateway: `${subnet}.1` }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 2);
}

function containerdConfig(d: string, registry: string, cniDir: string): string {
  return `version = 3
root = "${d}/containerd/root"
state = "${d}/containerd/state"
[grpc]
  address = "${d}/containerd.sock"
[ttrpc]
  address = "${d}/containerd-ttrpc.sock"
[debug]
  level = "info"
[plugins."io.containerd.nri.v1.nri"]
  disable = true
[plugins."io.containerd.cri.v1.runtime"]
  enable_criu = true
  # Restore from a checkpoint image is off by default since containerd 2.2 (docs/runtime-support.md).
  enable_experimental_restore_via_create = true
  # This VM refuses negative oom_score_adj even for root; without this every sandbox fails.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "${cniDir}"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      SystemdCgroup = false
      Root = "${d}/runc"
[plugins."io.containerd.cri.v1.images"]
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "${d}/certs.d"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "${registry}/pause:3.10"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`;
}

function crioConfig(d: string, registry: string, cniDir: string, pinns: string): string {
  return `[crio]
root = "${d}/crio/root"
runroot = "${d}/crio/run"
storage_driver = "overlay"
log_dir = "${d}/crio/logs"
version_file = "${d}/crio/run/version"
version_file_persist = "${d}/crio/version"
clean_shutdown_file = "${d}/crio/clean.shutdown"
[crio.api]
listen = "${d}/crio.sock"
stream_address = "127.0.0.1"
stream_port = "0"
[crio.runtime]
cgroup_manager = "cgroupfs"
conmon_cgroup = "pod"
drop_infra_ctr = true
enable_criu_support = true
irqbalance_config_file = ""
irqbalance_config_restore_file = "disable"
namespaces_dir = "${d}/crio/ns"
pinns_path = "${pinns}"
container_exits_dir = "${d}/crio/exits"
container_attach_socket_dir = "${d}/crio/attach"
default_runtime = "runc"
[crio.runtime.runtimes.runc]
runtime_path = "${d}/runc-wrapper"
runtime_root = "${d}/runc"
monitor_path = "/usr/bin/conmon"
# Both switches, as docs/runtime-support.md tells operators: 1.34.0 as served by the Go module
# proxy predates container_level_enabled (and ignores it); builds with the backport need it.
[crio.checkpoint_restore]
container_level_enabled = "checkpoint_restore"
[crio.image]
pause_image = "${registry}/pause:3.10"
# No signature_policy: CRI-O refuses every restore while one is set.
[crio.network]
network_dir = "${cniDir}"
plugin_dirs = ["/usr/lib/cni"]
`;
}

/**
 * Two things this VM refuses that CRI-O asks of runc, dropped from the bundle first:
 * - hugepage limits: CRI-O sets them from /proc/cgroups, which lists hugetlb here with no v1
 *   hierarchy mounted for it, and runc then fails to join that cgroup;
 * - capabilities outside this machine's bounding set (it lacks CAP_SYS_RESOURCE): CRI-O gives a
 *   privileged container every capability it knows, containerd only those the host has.
 */
const RUNC_WRAPPER = `#!/bin/sh
bundle=""; prev=""
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle="$a" ;; esac
  case "$a" in --bundle=*) bundle="\${a#--bundle=}" ;; esac
  prev="$a"
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  python3 - "$bundle/config.json" <<'PY'
import json, sys
NAMES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
  "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
  "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
  "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
  "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]
bound = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("CapBnd:")), 16)
missing = {n for i, n in enumerate(NAMES) if not bound >> i & 1}
p = sys.argv[1]
with open(p) as f: spec = json.load(f)
changed = False
res = spec.get("linux", {}).get("resources", {})
if "hugepageLimits" in res:
    del res["hugepageLimits"]; changed = True
caps = spec.get("process", {}).get("capabilities", {})
for k, v in caps.items():
    kept = [c for c in v if c not in missing]
    if kept != v: caps[k] = kept; changed = True
if changed:
    with open(p, "w") as f: json.dump(spec, f)
PY
fi
exec /usr/sbin/runc "$@"
`;

function kubeletConfig(n: { dir: string; cgroupRoot: string; endpoint: string; caFile: string }): string {
  return stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: '0.0.0.0',
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: n.cgroupRoot,
    // Kubernetes 1.35 refuses cgroup v1 unless told; this VM has a v1 hybrid.
    failCgroupV1: false,
    failSwapOn: false,
    makeIPTablesUtilChains: false,
    // This VM refuses negative oom_score_adj even for root.
    oomScoreAdj: 0,
    containerRuntimeEndpoint: n.endpoint,
    podLogsDir: path.join(n.dir, 'pod-logs'),
    authentication: { x509: { clientCAFile: n.caFile }, anonymous: { enabled: false }, webhook: { enabled: false } },
    authorization: { mode: 'AlwaysAllow' },
    evictionHard: { 'memory.available': '1%', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    resolvConf: '',
    nodeStatusUpdateFrequency: '5s',
    syncFrequency: '10s',
    fileCheckFrequency: '10s',
    shutdownGracePeriod: '0s',
  });
}

/**
 * Every run records what it touches outside its directory in RUNS_DIR/<id>.json; a run whose
 * owner died without stopping (SIGKILL, a crashed test runner: the reaper kills processes, not
 * mounts) is swept by the next one.
 */
const RUNS_DIR = '/run/lazarus-real-node';
interface RunRecord { pid: number; dir: string; nodes: Array<{ dir: string; netns: string; cgroupRoot: string; network: string }> }

async function writeRunRecord(id: string, record: RunRecord): Promise<void> {
  await mkdir(RUNS_DIR, { recursive: true });
  await writeFile(path.join(RUNS_DIR, `${id}.json`), JSON.stringify(record));
}

async function cleanNode(n: { dir: string; netns: string; cgroupRoot: string; network: string }, ids: readonly string[]): Promise<void> {
  await removeCgroupRoot(n.cgroupRoot);
  await killProcessesNaming(n.dir);
  await unmountUnder(n.dir);
  await sh('ip', ['netns', 'del', n.netns]).catch(() => undefined);
  // libcni's result cache (outside the run directory) and the sockets of killed containerd shims.
  const results = '/var/lib/cni/results';
  for (const f of await readdir(results).catch(() => [] as string[])) {
    if (f.startsWith(`${n.network}-`) || ids.some((id) => f.includes(id))) await rm(path.join(results, f), { force: true });
  }
  const grpc = path.join(n.dir, 'containerd.sock');
  for (const id of ids) await rm(path.join('/run/containerd/s', createHash('sha256').update(`${grpc}/k8s.io/${id}`).digest('hex')), { force: true });
}

async function cleanRunDir(dir: string): Promise<void> {
  await unmountUnder(path.join(dir, 'nodes'));
  for (const f of await readdir('/var/log/containers').catch(() => [] as string[])) {
    const target = await readlink(path.join('/var/log/containers', f)).catch(() => '');
    if (target.startsWith(`${dir}/`)) await rm(path.join('/var/log/containers', f), { force: true });
  }
}

/** Removes what earlier runs left behind when their owner process died. Returns how many. */
export async function sweepDeadRuns(log: (line: string) => void = () => undefined): Promise<number> {
  let swept = 0;
  for (const f of await readdir(RUNS_DIR).catch(() => [] as string[])) {
    const file = path.join(RUNS_DIR, f);
    const record = JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as Partial<RunRecord>;
    if (record.pid && isAlive(record.pid)) continue;
    for (const n of record.nodes ?? []) await cleanNode(n, await containerIds(n.dir)).catch(() => undefined);
    if (record.dir) await cleanRunDir(record.dir).catch(() => undefined);
    await rm(file, { force: true });
    log(`[real-node] swept what a dead run left in ${record.dir ?? '?'}`);
    swept++;
  }
  return swept;
}

export async function startRealCluster(cp: ControlPlane, options: RealClusterOptions = {}): Promise<RealCluster> {
  const log = options.log ?? ((line: string) => console.log(line));
  const why = await realNodePreflight();
  if (why) throw new Error(why);
  const t0 = Date.now();
  await sweepDeadRuns(log);
  const binaries = await nodeBinaries();
  const specs = options.nodes ?? DEFAULT_REAL_NODES;
  const id = randomBytes(3).toString('hex');
  const dir = cp.dir;
  const record: RunRecord = { pid: process.pid, dir, nodes: [] };
  await writeRunRecord(id, record);
  const nodes: NodeState[] = [];
  const hostSockets: net.Server[] = [];
  let registry: Registry | undefined;
  let nodesMounted: string | undefined;
  let stopped: Promise<void> | undefined;

  async function stopNode(n: NodeState): Promise<void> {
    const { kubelet, runtime, forwarder } = n.components;
    const ids = await containerIds(n.dir);
    if (kubelet) await stopComponent(kubelet, 5000);
    // Containers and conmon live in the node's cgroups; containerd's shims name its socket.
    await removeCgroupRoot(n.cgroupRoot);
    if (runtime) await stopComponent(runtime, 5000);
    if (forwarder) await stopComponent(forwarder, 2000);
    await cleanNode(n, ids);
  }

  async function stop(): Promise<void> {
    stopped ??= (async () => {
      for (const n of [...nodes].reverse()) await stopNode(n).catch((err: unknown) => log(`[real-node] stopping ${n.name}: ${(err as Error).message}`));
      if (nodesMounted) await cleanRunDir(dir);
      for (const s of hostSockets) s.close();
      if (registry) freeze(registry, false);
      await registry?.stop();
      await rm(path.join(RUNS_DIR, `${id}.json`), { force: true });
    })();
    return stopped;
  }

  try {
    // ---- registry, and the host ends of the forwarders ---------------------------------------
    registry = await startRegistry(dir);
    cp.adopt('registry', registry.component.pid);
    const regPort = Number(registry.address.split(':')[1]);
    const apiPort = Number(new URL(cp.server).port);
    // Kubelets and runtimes expect the host's mounts to propagate (systemd makes / shared; this
    // machine has no systemd): the nodes' directory is a shared mount of its own.
    const nodesDir = path.join(dir, 'nodes');
    await mkdir(nodesDir, { recursive: true });
    await sh('mount', ['--bind', nodesDir, nodesDir]);
    nodesMounted = nodesDir;
    await sh('mount', ['--make-rshared', nodesDir]);
    const netDir = path.join(dir, 'net');
    await mkdir(netDir, { recursive: true });
    const hostEnd = async (name: string, port: number): Promise<string> => {
      const sock = path.join(netDir, `${name}.sock`);
      await rm(sock, { force: true });
      const server = net.createServer((client) => {
        const upstream = net.connect(port, '127.0.0.1');
        client.pipe(upstream); upstream.pipe(client);
        client.on('error', () => upstream.destroy()); upstream.on('error', () => client.destroy());
      });
      await new Promise<void>((resolve) => server.listen(sock, () => resolve()));
      hostSockets.push(server);
      return sock;
    };
    const apiSock = await hostEnd('apiserver', apiPort);
    const regSock = await hostEnd('registry', regPort);
    const egressSock = await hostEnd('egress', cp.egress.port);

    // ---- images every node needs -------------------------------------------------------------
    let t = Date.now();
    const [pause, busybox] = await Promise.all([imageArchive('pause'), imageArchive('busybox')]);
    await Promise.all([pushArchive(pause, `${registry.address}/pause:3.10`), pushArchive(busybox, `${registry.address}/library/busybox:stable`)]);
    log(`[real-node] registry ${registry.address} with pause and busybox (${String(Date.now() - t)} ms)`);

    // ---- the control plane reaches node and pod addresses through each node's forwarder ------
    const ownerOf = (host: string): NodeState | undefined => nodes.find((n, i) => host === n.address || host.startsWith(`${podSubnet(i)}.`));
    cp.egress.setRouter(async (host, port) => {
      let target = host;
      const svc = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?$/.exec(host);
      if (svc) target = await serviceEndpoint(cp.client, svc[2] as string, svc[1] as string, port).then((e) => { port = e.port; return e.ip; });
      const node = ownerOf(target);
      // Nothing here lives on the host's loopback: an address no node owns is refused (502), never
      // quietly sent to the host's port of the same number.
      if (!node) throw new Error(`no real node owns ${target}`);
      return connectInto(node.inbound, target, port);
    });

    // ---- nodes -------------------------------------------------------------------------------
    t = Date.now();
    const caFile = path.join(dir, 'ca.crt');
    for (const [i, spec] of specs.entries()) {
      options.signal?.throwIfAborted();
      const d = path.join(dir, 'nodes', spec.name);
      const cniDir = path.join(d, 'cni');
      await Promise.all(['kubelet', 'kubelet-certs', 'pod-logs', 'runc', 'cni-ipam', 'crio'].map((s) => mkdir(path.join(d, s), { recursive: true })));
      await mkdir(cniDir, { recursive: true });
      const netns = `lz${id}-${spec.name}`;
      const network = `lz${id}-${spec.name}`;
      const cgroupRoot = `/lz${id}-${spec.name}`;
      const logPath = (c: 'kubelet' | 'runtime' | 'forwarder'): string => path.join(dir, `${spec.name}-${c}.log`);
      const node: NodeState = {
        name: spec.name, runtime: spec.runtime, address: nodeIp(i), netns, dir: d, network, cgroupRoot,
        kubeletDir: path.join(d, 'kubelet'),
        // One name for either runtime, so the agent DaemonSet finds its node's by node name.
        runtimeConfig: path.join(d, 'runtime.toml'),
        inbound: path.join(d, 'in.sock'),
        components: {},
        logPath,
        startKubeletProcess: () => { throw new Error('not ready'); },
        async stopKubelet() { if (node.components.kubelet) await stopComponent(node.components.kubelet); },
        async startKubelet() { node.components.kubelet = node.startKubeletProcess(); await waitReady(cp.client, node, options.readyTimeoutMs ?? 90_000); },
      };
      nodes.push(node);
      record.nodes.push({ dir: d, netns, cgroupRoot, network });
      await writeRunRecord(id, record);

      // Network namespace: lo, the Service IP of `kubernetes`, and the node IP on one end of a veth
      // pair whose both ends stay inside (this kernel has no dummy device): nothing leaves.
      await sh('ip', ['netns', 'add', netns]);
      const inNs = (...args: string[]): Promise<string> => sh('ip', ['-n', netns, ...args]);
      await inNs('link', 'set', 'lo', 'up');
      await inNs('addr', 'add', `${API_SERVICE_IP}/32`, 'dev', 'lo');
      await inNs('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0-end');
      await inNs('addr', 'add', `${node.address}/24`, 'dev', 'eth0');
      await inNs('link', 'set', 'eth0-end', 'up');
      await inNs('link', 'set', 'eth0', 'up');
      await inNs('route', 'add', 'default', 'dev', 'eth0');
      const nsenter = (name: 'kubelet' | 'runtime' | 'forwarder', binary: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Component => {
        const c = startComponent(`${spec.name} ${name}`, '/usr/bin/nsenter', [`--net=/run/netns/${netns}`, '--', binary, ...args], logPath(name), env);
        cp.adopt(`${spec.name}-${name}`, c.pid);
        return c;
      };

      node.components.forwarder = nsenter('forwarder', process.execPath, [
        path.join(repoRoot, 'dist/test/harness/netns-forwarder.js'),
        JSON.stringify({
          listen: [
            { host: API_SERVICE_IP, port: 443, unix: apiSock },
            { host: '127.0.0.1', port: regPort, unix: regSock },
            { host: API_SERVICE_IP, port: SERVICE_PROXY_PORT, unix: egressSock },
          ],
          inbound: node.inbound,
        }),
      ]);

      await writeFile(path.join(cniDir, '10-lazarus.conflist'), cniConfig(network, podSubnet(i), path.join(d, 'cni-ipam')));
      const env = { ...process.env, PATH: `${binaries.containerd}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` };
      let endpoint: string;
      if (spec.runtime === 'containerd') {
        await mkdir(path.join(d, 'certs.d', registry.address), { recursive: true });
        await writeFile(path.join(d, 'certs.d', registry.address, 'hosts.toml'), `server = "http://${registry.address}"\n\n[host."http://${registry.address}"]\n  capabilities = ["pull", "resolve", "push"]\n`);
        await writeFile(node.runtimeConfig, containerdConfig(d, registry.address, cniDir));
        node.components.runtime = nsenter('runtime', path.join(binaries.containerd, 'containerd'), ['--config', node.runtimeConfig], env);
        endpoint = `unix://${d}/containerd.sock`;
      } else {
        await writeFile(path.join(d, 'runc-wrapper'), RUNC_WRAPPER);
        await chmod(path.join(d, 'runc-wrapper'), 0o755);
        await writeFile(path.join(d, 'registries.conf'), `[[registry]]\nlocation = "${registry.address}"\ninsecure = true\n`);
        await writeFile(node.runtimeConfig, crioConfig(d, registry.address, cniDir, path.join(binaries.crio, 'pinns')));
        await mkdir(path.join(d, 'crio.conf.d'), { recursive: true });
        node.components.runtime = nsenter('runtime', path.join(binaries.crio, 'crio'), ['--config', node.runtimeConfig, '--config-dir', path.join(d, 'crio.conf.d')],
          { ...env, CONTAINERS_REGISTRIES_CONF: path.join(d, 'registries.conf') });
        endpoint = `unix://${d}/crio.sock`;
      }
      const socket = endpoint.slice('unix://'.length);
      await waitUntil(`${spec.name}: ${spec.runtime} socket`, 60_000, node.components.runtime, () => access(socket).then(() => true, () => false), options.signal);

      await createCgroupRoot(cgroupRoot);
      const cert = await issueCertificate(cp.ca, { commonName: `system:node:${spec.name}`, organizations: ['system:nodes'], usage: 'client' });
      const kubeconfig = path.join(d, 'kubelet.kubeconfig');
      await writeFile(kubeconfig, kubeconfigYaml(`https://${API_SERVICE_IP}:443`, cp.ca.certPem, cert, `system:node:${spec.name}`), { mode: 0o600 });
      const config = path.join(d, 'kubelet.yaml');
      await writeFile(config, kubeletConfig({ dir: d, cgroupRoot, endpoint, caFile }));
      node.startKubeletProcess = () => nsenter('kubelet', path.join(binaries.kube, 'kubelet'), [
        `--config=${config}`, `--kubeconfig=${kubeconfig}`, `--root-dir=${node.kubeletDir}`,
        `--cert-dir=${path.join(d, 'kubelet-certs')}`, `--hostname-override=${spec.name}`, `--node-ip=${node.address}`, '--v=1',
      ], env);
      node.components.kubelet = node.startKubeletProcess();
    }
    await Promise.all(nodes.map((n) => waitReady(cp.client, n, options.readyTimeoutMs ?? 90_000, options.signal)));
    log(`[real-node] ${String(nodes.length)} nodes Ready in ${String(Date.now() - t)} ms: ${nodes.map((n) => `${n.name} (${n.runtime})`).join(', ')}; ${String(Date.now() - t0)} ms in all`);
    const started = registry;
    return {
      cp, registry: registry.address, nodes, binaries, busybox: `${registry.address}/library/busybox:stable`,
      freezeRegistry: (frozen) => freeze(started, frozen), stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitReady(client: KubeClient, node: NodeState, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  await waitUntil(`node ${node.name} Ready`, timeoutMs, node.components.kubelet, async () => {
    const n = await client.request<{ status?: { conditions?: Array<{ type: string; status: string }> } }>('GET', `/api/v1/nodes/${node.name}`);
    return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  }, signal);
}

/** A ready endpoint of a Service port: what kube-proxy would pick, for the egress proxy. */
async function serviceEndpoint(client: KubeClient, namespace: string, name: string, port: number): Promise<{ ip: string; port: number }> {
  const svc = await client.request<{ spec?: { ports?: Array<{ port: number; name?: string; targetPort?: number | string }> } }>('GET', `/api/v1/namespaces/${namespace}/services/${name}`);
  const sp = svc.spec?.ports?.find((p) => p.port === port);
  if (!sp) throw new Error(`service ${namespace}/${name} has no port ${String(port)}`);
  const eps = await client.request<{ subsets?: Array<{ addresses?: Array<{ ip: string }>; ports?: Array<{ port: number; name?: string }> }> }>('GET', `/api/v1/namespaces/${namespace}/endpoints/${name}`);
  for (const s of eps.subsets ?? []) {
    const ep = s.ports?.find((p) => (p.name ?? '') === (sp.name ?? '')) ?? s.ports?.[0];
    const ip = s.addresses?.[0]?.ip;
    if (ep && ip) return { ip, port: ep.port };
  }
  throw new Error(`service ${namespace}/${name} has no ready endpoint`);
}
