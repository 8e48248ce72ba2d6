/**
 * A real Kubernetes control plane on loopback for tests and the demo: etcd, kube-apiserver,
 * kube-controller-manager and kube-scheduler, built by scripts/kube-build.sh, on random free
 * ports, in a temp dir that keeps the logs. No kubelet: pods get bound but never run.
 *
 * Nodes are fake (see nodes.ts). Two things keep them usable without kubelets:
 * - the TaintNodesByCondition admission plugin is off, so a new Node gets no not-ready taint;
 * - kube-controller-manager runs without its node-lifecycle-controller, which would otherwise
 *   mark nodes without heartbeats NotReady/Unknown after ~40 s and taint them unreachable.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { createKubeClient, loadKubeConfig, isNotFound, type KubeClient } from '../../kube/client.js';
import { createAuthority, createRsaKey, createSigningKey, issueCertificate, type Authority, type KeyPair } from './pki.js';
import { freePort, isAlive, startComponent, startReaper, stopComponent, tailLog, type Component, type Reaper } from './processes.js';
import { kubeBinDir } from './kube-bin.js';
import { startNodeProxy, type NodeProxy } from './node-proxy.js';

export interface ExtenderOptions {
  /** e.g. http://127.0.0.1:8888 — kube-scheduler POSTs to `${urlPrefix}/${verb}`. */
  urlPrefix: string;
  filterVerb?: string;
  prioritizeVerb?: string;
  weight?: number;
  nodeCacheCapable?: boolean;
  ignorable?: boolean;
  /** Go duration, e.g. "5s". */
  httpTimeout?: string;
  /** For https urlPrefix: PEM CA data the scheduler trusts (base64-encoded for you). */
  caPem?: string;
  insecure?: boolean;
}

export interface ControlPlaneOptions {
  /** Directory for certs, configs, logs and etcd data; a new one under os.tmpdir() by default. */
  dir?: string;
  /** Where the binaries are; by default scripts/kube-build.sh is run (cached) to find them. */
  binDir?: string;
  extenders?: readonly ExtenderOptions[];
  /** Extra scheduler profiles (schedulerName values) besides default-scheduler. */
  profiles?: readonly string[];
  /** Merged into the KubeSchedulerConfiguration (e.g. podMaxBackoffSeconds). */
  schedulerConfig?: Record<string, unknown>;
  /**
   * More kube-scheduler processes, each with only the given profiles and extenders. Extenders in
   * a KubeSchedulerConfiguration apply to all of its profiles, so "an extender for one
   * schedulerName only" needs a second scheduler. Logs: kube-scheduler-<first profile>.log.
   */
  additionalSchedulers?: ReadonlyArray<{ profiles: readonly string[]; extenders?: readonly ExtenderOptions[]; schedulerConfig?: Record<string, unknown> }>;
  /** kube-controller-manager --controllers; default: every default controller but node lifecycle. */
  controllers?: readonly string[];
  /**
   * Each controller uses its own service account, as kubeadm does, so admission requests show
   * e.g. system:serviceaccount:kube-system:replicaset-controller. Default true. With false,
   * controllers act as system:kube-controller-manager, put in system:masters.
   */
  useServiceAccountCredentials?: boolean;
  extraApiServerArgs?: readonly string[];
  extraControllerManagerArgs?: readonly string[];
  extraSchedulerArgs?: readonly string[];
  /** etcd's --quota-backend-bytes; default 1 GiB (the memory bench stores more). */
  etcdQuotaBytes?: number;
  /** Per component, for the health checks. Default 60 s. */
  timeoutMs?: number;
  /** Print the startup time and where the logs are (default true). */
  log?: (line: string) => void;
  /** Called with each process started (e.g. to check later that none is left). */
  onProcess?: (name: string, pid: number) => void;
  /** Also remove logs and certs on stop (etcd data is always removed). Default false. */
  removeDirOnStop?: boolean;
}

export interface ControlPlane {
  /** Admin kubeconfig (client certificate in O=system:masters), `${dir}/kubeconfig`. */
  readonly kubeconfigPath: string;
  /** https://127.0.0.1:PORT */
  readonly server: string;
  readonly dir: string;
  readonly client: KubeClient;
  /** The cluster CA: it signed the API server's serving cert and every client cert; issue more with pki.ts. */
  readonly ca: Authority;
  readonly binDir: string;
  /** Milliseconds per startup phase, and `total`. */
  readonly timings: Readonly<Record<string, number>>;
  /** PIDs of every process started (components and the reaper). */
  pids(): number[];
  /** Log file of a component: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-scheduler-<profile>. */
  logPath(component: string): string;
  /** Puts a process started elsewhere (a real node's kubelet) under the reaper: killed if this process dies. */
  adopt(name: string, pid: number): void;
  /** The egress proxy kube-apiserver and kube-scheduler reach nodes and Services through. */
  readonly egress: NodeProxy;
  /** Stops every process started, by PID; safe to call more than once. */
  stop(): Promise<void>;
}

const SERVICE_CIDR = '10.0.0.0/24';

export function kubeconfigYaml(server: string, caPem: string, client: KeyPair, user: string): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'lazarus', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
    users: [{ name: user, user: { 'client-certificate-data': b64(client.certPem), 'client-key-data': b64(client.keyPem) } }],
    contexts: [{ name: 'lazarus', context: { cluster: 'lazarus', user, namespace: 'default' } }],
    'current-context': 'lazarus',
  });
}

export interface SchedulerConfigOptions {
  extenders?: readonly ExtenderOptions[] | undefined;
  profiles?: readonly string[] | undefined;
  schedulerConfig?: Record<string, unknown> | undefined;
  /** Add the default-scheduler profile first (default true). */
  withDefaultProfile?: boolean;
}

export function schedulerConfigYaml(kubeconfig: string, options: SchedulerConfigOptions): string {
  const extenders = (options.extenders ?? []).map((e) => ({
    urlPrefix: e.urlPrefix,
    filterVerb: e.filterVerb ?? 'filter',
    prioritizeVerb: e.prioritizeVerb ?? 'prioritize',
    weight: e.weight ?? 1,
    nodeCacheCapable: e.nodeCacheCapable ?? false,
    ignorable: e.ignorable ?? false,
    enableHTTPS: e.urlPrefix.startsWith('https:'),
    ...(e.httpTimeout ? { httpTimeout: e.httpTimeout } : {}),
    ...(e.caPem || e.insecure ? { tlsConfig: { ...(e.caPem ? { caData: Buffer.from(e.caPem).toString('base64') } : {}), ...(e.insecure ? { insecure: true } : {}) } } : {}),
  }));
  return stringify({
    apiVersion: 'kubescheduler.config.k8s.io/v1',
    kind: 'KubeSchedulerConfiguration',
    clientConnection: { kubeconfig, qps: 200, burst: 400 },
    leaderElection: { leaderElect: false },
    profiles: [...(options.withDefaultProfile === false ? [] : ['default-scheduler']), ...(options.profiles ?? [])].map((schedulerName) => ({ schedulerName })),
    ...(extenders.length > 0 ? { extenders } : {}),
    ...(options.schedulerConfig ?? {}),
  });
}

interface Probe { status: number; body: string }

function probe(url: string, tls: https.RequestOptions, timeoutMs = 2000): Promise<Probe> {
  const lib = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.get(url, { ...tls, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** Polls `url` until it answers 200, failing early (with the log tail) if the process dies. */
async function waitHealthy(c: Component, url: string, tls: https.RequestOptions, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    const exit = c.exitDescription();
    if (exit !== undefined) throw new Error(`${c.name} ${exit} before it became healthy (${url}); log ${c.logPath}:\n${tailLog(c.logPath)}`);
    try {
      const r = await probe(url, tls);
      if (r.status === 200) return;
      last = `HTTP ${r.status}: ${r.body.slice(0, 400)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${c.name} not healthy after ${timeoutMs} ms at ${url} (${last}); log ${c.logPath}:\n${tailLog(c.logPath)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = Date.now();
  const timings: Record<string, number> = {};
  const mark = (phase: string, since: number): void => { timings[phase] = Date.now() - since; };
  const log = options.log ?? ((line: string) => console.log(line));
  const timeoutMs = options.timeoutMs ?? 60_000;

  const binDir = options.binDir ?? await kubeBinDir();
  mark('binaries', t0);
  const dir = options.dir ?? await mkdtemp(path.join(os.tmpdir(), 'lazarus-cp-'));
  await mkdir(dir, { recursive: true });
  const file = (name: string): string => path.join(dir, name);
  const bin = (name: string): string => path.join(binDir, name);

  const components: Component[] = [];
  let reaper: Reaper | undefined;
  let nodeProxy: NodeProxy | undefined;
  let stopped: Promise<void> | undefined;
  const killAllNow = (): void => {
    for (const c of components) if (c.exitDescription() === undefined) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
  };
  // Best effort for a plain `node` process; jest sandboxes `process`, so the reaper is the real net.
  process.once('exit', killAllNow);

  async function stop(): Promise<void> {
    stopped ??= (async () => {
      process.removeListener('exit', killAllNow);
      // Reverse start order: clients first, etcd last.
      for (const c of [...components].reverse()) await stopComponent(c);
      await reaper?.release();
      await nodeProxy?.close();
      await rm(file('etcd-data'), { recursive: true, force: true });
      if (options.removeDirOnStop) await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  }

  try {
    reaper = startReaper();
    options.onProcess?.('reaper', reaper.pid);
    const start = (name: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, binary = name): Component => {
      const c = startComponent(name, bin(binary), args, file(`${name}.log`), env);
      components.push(c);
      reaper?.watch(c.pid);
      options.onProcess?.(name, c.pid);
      return c;
    };

    const [etcdClientPort, etcdPeerPort, apiPort, kcmPort, schedPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const server = `https://127.0.0.1:${apiPort}`;
    // ---- etcd --------------------------------------------------------------------------
    const tEtcd = Date.now();
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = start('etcd', [
      '--name=lazarus', `--data-dir=${file('etcd-data')}`,
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=lazarus=${peerUrl}`,
      // Throw-away data: skip fsync, keep the backend small.
      '--unsafe-no-fsync', `--quota-backend-bytes=${options.etcdQuotaBytes ?? 1073741824}`, '--log-level=warn',
    ]);
    // ---- certificates (while etcd starts) ------------------------------------------------
    let t = Date.now();
    // One key for every leaf certificate: this cluster lives minutes, and RSA keys are slow to make.
    const [ca, leafKey] = await Promise.all([createAuthority('lazarus-local-ca'), createRsaKey()]);
    const [serving, admin, kubeletClient, kcmClient, schedClient, saKey] = await Promise.all([
      issueCertificate(ca, { commonName: 'kube-apiserver', usage: 'server', ips: ['127.0.0.1', '10.0.0.1'], dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'] }, leafKey),
      issueCertificate(ca, { commonName: 'lazarus-admin', organizations: ['system:masters'], usage: 'client' }, leafKey),
      issueCertificate(ca, { commonName: 'kube-apiserver-kubelet-client', organizations: ['system:masters'], usage: 'client' }, leafKey),
      issueCertificate(ca, { commonName: 'system:kube-controller-manager', ...(options.useServiceAccountCredentials === false ? { organizations: ['system:masters'] } : {}), usage: 'client' }, leafKey),
      issueCertificate(ca, { commonName: 'system:kube-scheduler', usage: 'client' }, leafKey),
      createSigningKey(),
    ]);
    const pem: Record<string, string> = {
      'ca.crt': ca.certPem, 'ca.key': ca.keyPem,
      'apiserver.crt': serving.certPem, 'apiserver.key': serving.keyPem,
      'kubelet-client.crt': kubeletClient.certPem, 'kubelet-client.key': kubeletClient.keyPem,
      'sa.pub': saKey.publicPem, 'sa.key': saKey.privatePem,
    };
    await Promise.all(Object.entries(pem).map(([name, text]) => writeFile(file(name), text, { mode: 0o600 })));
    mark('certificates', t);

    await writeFile(file('kubeconfig'), kubeconfigYaml(server, ca.certPem, admin, 'lazarus-admin'), { mode: 0o600 });
    await writeFile(file('controller-manager.kubeconfig'), kubeconfigYaml(server, ca.certPem, kcmClient, 'system:kube-controller-manager'), { mode: 0o600 });
    await writeFile(file('scheduler.kubeconfig'), kubeconfigYaml(server, ca.certPem, schedClient, 'system:kube-scheduler'), { mode: 0o600 });
    await writeFile(file('scheduler.yaml'), schedulerConfigYaml(file('scheduler.kubeconfig'), options));
    const extraSchedulers = await Promise.all((options.additionalSchedulers ?? []).map(async (s, i) => {
      const name = `kube-scheduler-${s.profiles[0] ?? String(i)}`;
      const config = file(`${name}.yaml`);
      await writeFile(config, schedulerConfigYaml(file('scheduler.kubeconfig'), { ...s, withDefaultProfile: false }));
      return { name, config, port: await freePort() };
    }));

    await waitHealthy(etcd, `${etcdUrl}/health`, {}, timeoutMs);
    mark('etcd', tEtcd);

    // ---- kube-apiserver ----------------------------------------------------------------
    t = Date.now();
    nodeProxy = await startNodeProxy();
    // Only non-loopback destinations (fake node addresses) go through the proxy; Go never
    // proxies loopback, and NO_PROXY keeps it that way for etcd, webhooks and extenders.
    const apiEnv: NodeJS.ProcessEnv = { ...process.env, HTTPS_PROXY: nodeProxy.url, HTTP_PROXY: nodeProxy.url, NO_PROXY: '127.0.0.1,localhost', https_proxy: nodeProxy.url, http_proxy: nodeProxy.url, no_proxy: '127.0.0.1,localhost' };
    const egress = nodeProxy;
    const apiserver = start('kube-apiserver', [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${apiPort}`,
      `--tls-cert-file=${file('apiserver.crt')}`, `--tls-private-key-file=${file('apiserver.key')}`,
      `--client-ca-file=${file('ca.crt')}`,
      '--authorization-mode=Node,RBAC',
      `--service-account-key-file=${file('sa.pub')}`, `--service-account-signing-key-file=${file('sa.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      `--kubelet-client-certificate=${file('kubelet-client.crt')}`, `--kubelet-client-key=${file('kubelet-client.key')}`,
      '--kubelet-preferred-address-types=InternalIP,Hostname,ExternalIP',
      // Webhooks and policies on; nothing that needs a real kubelet.
      '--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy',
      '--disable-admission-plugins=TaintNodesByCondition',
      '--allow-privileged=true', '--profiling=false', '--v=1',
      ...(options.extraApiServerArgs ?? []),
    ], apiEnv);
    const adminTls: https.RequestOptions = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
    await waitHealthy(apiserver, `${server}/readyz`, adminTls, timeoutMs);
    mark('kube-apiserver', t);

    // ---- controller manager and scheduler, in parallel ---------------------------------
    t = Date.now();
    const controllers = options.controllers ?? ['*', '-node-lifecycle-controller'];
    const kcm = start('kube-controller-manager', [
      `--kubeconfig=${file('controller-manager.kubeconfig')}`,
      `--authentication-kubeconfig=${file('controller-manager.kubeconfig')}`,
      `--authorization-kubeconfig=${file('controller-manager.kubeconfig')}`,
      '--bind-address=127.0.0.1', `--secure-port=${kcmPort}`, `--cert-dir=${file('kcm-certs')}`,
      '--leader-elect=false', `--controllers=${controllers.join(',')}`,
      `--use-service-account-credentials=${String(options.useServiceAccountCredentials ?? true)}`,
      `--service-account-private-key-file=${file('sa.key')}`, `--root-ca-file=${file('ca.crt')}`,
      `--cluster-signing-cert-file=${file('ca.crt')}`, `--cluster-signing-key-file=${file('ca.key')}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`, '--profiling=false', '--v=1',
      // The default 20 QPS throttles startup (a token request per controller) and mass pod creation.
      '--kube-api-qps=200', '--kube-api-burst=400',
      ...(options.extraControllerManagerArgs ?? []),
    ]);
    const schedulers = [{ name: 'kube-scheduler', config: file('scheduler.yaml'), port: schedPort }, ...extraSchedulers].map((s) => ({
      port: s.port,
      component: start(s.name, [
        `--config=${s.config}`,
        `--authentication-kubeconfig=${file('scheduler.kubeconfig')}`,
        `--authorization-kubeconfig=${file('scheduler.kubeconfig')}`,
        '--bind-address=127.0.0.1', `--secure-port=${s.port}`, `--cert-dir=${file(`${s.name}-certs`)}`,
        '--v=2',
        ...(options.extraSchedulerArgs ?? []),
      // Extenders behind a Service (real nodes) are reached through the egress proxy too.
      ], apiEnv, 'kube-scheduler'),
    }));
    const selfSigned: https.RequestOptions = { rejectUnauthorized: false };
    await Promise.all([
      waitHealthy(kcm, `https://127.0.0.1:${kcmPort}/healthz`, selfSigned, timeoutMs),
      ...schedulers.map((s) => waitHealthy(s.component, `https://127.0.0.1:${s.port}/readyz`, selfSigned, timeoutMs)),
    ]);
    mark('controllers', t);

    // ---- the cluster works: the service-account controller made default/default --------
    t = Date.now();
    const client = await createKubeClient(loadKubeConfig(file('kubeconfig')));
    await waitForServiceAccount(client, 'default', timeoutMs, kcm);
    mark('serviceaccount', t);
    mark('total', t0);
    log(`[control-plane] ready in ${timings.total} ms (${Object.entries(timings).filter(([k]) => k !== 'total').map(([k, v]) => `${k} ${v}`).join(', ')}) at ${server}; logs in ${dir}`);

    return {
      kubeconfigPath: file('kubeconfig'), server, dir, client, ca, binDir, timings,
      pids: () => [...components.map((c) => c.pid), ...(reaper ? [reaper.pid] : [])],
      logPath: (name) => file(`${name}.log`),
      adopt: (name, pid) => { reaper?.watch(pid); options.onProcess?.(name, pid); },
      egress,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Waits for the `default` ServiceAccount of `namespace` (pods are rejected until it exists). */
export async function waitForServiceAccount(client: KubeClient, namespace: string, timeoutMs = 30_000, kcm?: Component): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await client.request('GET', `/api/v1/namespaces/${namespace}/serviceaccounts/default`);
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (kcm?.exitDescription() !== undefined) throw new Error(`kube-controller-manager ${kcm.exitDescription() ?? ''}; log ${kcm.logPath}:\n${tailLog(kcm.logPath)}`);
    if (Date.now() > deadline) {
      const hint = kcm ? `; kube-controller-manager log ${kcm.logPath}:\n${tailLog(kcm.logPath)}` : '';
      throw new Error(`no default ServiceAccount in namespace ${namespace} after ${timeoutMs} ms${hint}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export { isAlive };
