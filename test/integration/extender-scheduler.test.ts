/**
 * The extender behind a real kube-scheduler (v1.35.4, built by scripts/kube-build.sh) on a real
 * API server and etcd, in both modes: one scheduler with `nodeCacheCapable: false` (full Nodes,
 * extender without a cluster) and one with `nodeCacheCapable: true` (NodeNames, extender with
 * informer caches on the same API server). Restored pods land on the node that can restore them
 * and matches best; a pod no node can restore stays Pending with Lazarus' reason in its
 * PodScheduled condition; the requests the scheduler sent are checked for the wire shape.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, openSync, closeSync, readFileSync } from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as K from '../../api/keys.js';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../../kube/client.js';
import { silentLogger } from '../../runtime/log.js';
import { createRegistry } from '../../runtime/metrics.js';
import { DEFAULT_POLICY } from '../../api/policy.js';
import { clusterLookups } from '../../extender/cluster.js';
import { createExtenderServer, listen, type RunningExtender } from '../../extender/server.js';
import { ORIGIN_ANNOTATIONS, BASE_IMAGE } from '../unit/extender-fixtures.js';

const BIN = process.env.LAZARUS_KUBE_BIN ?? join(homedir(), '.cache/lazarus/kube/v1.35.4/bin');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Captured { verb: string; body: Record<string, unknown> }

describe('extender with a real kube-scheduler', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lazarus-sched-'));
  const children: ChildProcess[] = [];
  const servers: RunningExtender[] = [];
  const stop = new AbortController();
  const captured: Record<'full' | 'names', Captured[]> = { full: [], names: [] };
  let client: KubeClient | undefined;
  let informers: Promise<void> | undefined;

  function start(name: string, args: string[]): ChildProcess {
    const log = openSync(join(dir, `${name}.log`), 'a');
    const child = spawn(join(BIN, name), args, { stdio: ['ignore', log, log] });
    closeSync(log);
    children.push(child);
    return child;
  }

  function logTail(name: string): string {
    try { return readFileSync(join(dir, `${name}.log`), 'utf8').split('\n').slice(-15).join('\n'); } catch { return ''; }
  }

  /** A listener that records the request bodies the scheduler sends, then serves them. */
  function recording(mode: 'full' | 'names', listener: http.RequestListener): http.RequestListener {
    return (req, res) => {
      if (req.url === '/filter' || req.url === '/prioritize') {
        const chunks: Buffer[] = [];
        // Tap the stream without consuming it for the extender.
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          try { captured[mode].push({ verb: req.url ?? '', body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown> }); } catch { /* recorded only when JSON */ }
        });
      }
      listener(req, res);
    };
  }

  beforeAll(async () => {
    for (const b of ['etcd', 'kube-apiserver', 'kube-scheduler']) {
      if (!existsSync(join(BIN, b))) throw new Error(`${join(BIN, b)} is missing: run \`npm run kube:build\` (scripts/kube-build.sh) first`);
    }
    const [etcdPort, peerPort, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const token = randomBytes(16).toString('hex');
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
    writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(dir, 'tokens.csv'), `${token},admin,admin,system:masters\n`);
    writeFileSync(join(dir, 'kubeconfig'), [
      'apiVersion: v1', 'kind: Config', 'current-context: t',
      `clusters: [{name: t, cluster: {server: "https://127.0.0.1:${apiPort}", insecure-skip-tls-verify: true}}]`,
      `users: [{name: t, user: {token: "${token}"}}]`,
      'contexts: [{name: t, context: {cluster: t, user: t}}]', '',
    ].join('\n'));

    start('etcd', [
      '--name=t', `--data-dir=${join(dir, 'etcd')}`, '--unsafe-no-fsync', '--log-level=warn',
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`, `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=t=http://127.0.0.1:${peerPort}`,
    ]);
    start('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`, `--secure-port=${apiPort}`, '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1', `--cert-dir=${join(dir, 'certs')}`,
      '--service-account-issuer=https://kubernetes.default.svc', `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`, '--service-cluster-ip-range=10.96.0.0/24',
      `--token-auth-file=${join(dir, 'tokens.csv')}`, '--authorization-mode=AlwaysAllow',
      // No controller-manager here: no service-account tokens, and no one to lift the not-ready taint.
      '--disable-admission-plugins=ServiceAccount,TaintNodesByCondition',
    ]);
    const kc = await createKubeClient(loadKubeConfig(join(dir, 'kubeconfig')));
    client = kc;
    await until('the API server', async () => ((await kc.request<string>('GET', '/readyz')) === 'ok' ? true : undefined)).catch((err: unknown) => {
      throw new Error(`${String(err)}\nkube-apiserver log:\n${logTail('kube-apiserver')}\netcd log:\n${logTail('etcd')}`);
    });
    await until('the default namespace', async () => (await kc.request('GET', '/api/v1/namespaces/default')) ? true : undefined);

    // The nodes, as an agent and a kubelet would have published them.
    const flags = 'fpu sse4_2 avx2 avx512f';
    const nodes = [
      { name: 'best', arch: 'amd64', criu: '40101', kernel: '6.8.0-45-generic', images: [BASE_IMAGE] },
      { name: 'newer-criu', arch: 'amd64', criu: '40200', kernel: '6.5.0-1-generic', images: [] },
      { name: 'old-criu', arch: 'amd64', criu: '31701', kernel: '6.8.0-45-generic', images: [BASE_IMAGE] },
      { name: 'arm', arch: 'arm64', criu: '40101', kernel: '6.8.0-45-generic', images: [BASE_IMAGE] },
    ];
    for (const n of nodes) {
      await kc.request('POST', '/api/v1/nodes', { body: {
        apiVersion: 'v1', kind: 'Node',
        metadata: { name: n.name, labels: { [K.LABEL_ARCH]: n.arch, 'kubernetes.io/os': 'linux', 'kubernetes.io/hostname': n.name, [K.NODE_CRIU_VERSION]: n.criu, [K.NODE_RESTORE_CAPABLE]: 'true' }, annotations: { [K.NODE_CPU_FLAGS]: flags } },
      } });
      await kc.request('PATCH', `/api/v1/nodes/${n.name}/status`, { contentType: 'application/merge-patch+json', body: { status: {
        capacity: { cpu: '8', memory: '32Gi', pods: '110' }, allocatable: { cpu: '8', memory: '32Gi', pods: '110' },
        conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ready', lastHeartbeatTime: new Date().toISOString(), lastTransitionTime: new Date().toISOString() }],
        nodeInfo: { architecture: n.arch, kernelVersion: n.kernel, containerRuntimeVersion: 'cri-o://1.33.2', operatingSystem: 'linux', osImage: 'test', kubeletVersion: 'v1.35.4', kubeProxyVersion: '', machineID: '', systemUUID: '', bootID: '' },
        images: n.images.map((name) => ({ names: [name], sizeBytes: 1000 })),
      } } });
    }

    // Full-Nodes extender: no cluster at all.
    const full = createExtenderServer({ policyFor: () => DEFAULT_POLICY, logger: silentLogger(), registry: createRegistry('full', false) });
    servers.push(await listen(recording('full', full.listener), 0, '127.0.0.1'));
    // NodeNames extender: informer caches on the same API server (no CRD here: default policy).
    const cluster = clusterLookups(kc, silentLogger());
    informers = cluster.run(stop.signal);
    const names = createExtenderServer({ ...cluster, logger: silentLogger(), registry: createRegistry('names', false) });
    servers.push(await listen(recording('names', names.listener), 0, '127.0.0.1'));
    await until('the node cache', async () => (cluster.nodeCacheProblem() === undefined && cluster.nodeByName('arm') ? true : undefined));

    for (const [mode, server, cacheCapable] of [['full', servers[0], false], ['names', servers[1], true]] as const) {
      writeFileSync(join(dir, `scheduler-${mode}.yaml`), [
        'apiVersion: kubescheduler.config.k8s.io/v1', 'kind: KubeSchedulerConfiguration',
        `clientConnection: {kubeconfig: "${join(dir, 'kubeconfig')}"}`, 'leaderElection: {leaderElect: false}',
        `profiles: [{schedulerName: lazarus-${mode}}]`,
        `extenders: [{urlPrefix: "http://127.0.0.1:${server?.port ?? 0}", filterVerb: filter, prioritizeVerb: prioritize, weight: 10, nodeCacheCapable: ${cacheCapable}, ignorable: false}]`, '',
      ].join('\n'));
      start('kube-scheduler', [`--config=${join(dir, `scheduler-${mode}.yaml`)}`, '--secure-port=0', '-v=2']);
    }
  }, 120_000);

  afterAll(async () => {
    stop.abort();
    for (const child of children.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(true), 5_000); })]);
      clearTimeout(timer);
      if (late) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    await Promise.all(servers.map((s) => s.close()));
    await informers;
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  async function createPod(name: string, schedulerName: string, annotations: Record<string, string>): Promise<void> {
    await client?.request('POST', '/api/v1/namespaces/default/pods', { body: {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name, labels: { app: 'web' }, annotations },
      spec: { schedulerName, containers: [{ name: 'app', image: 'registry.example/lazarus/default/web-app@sha256:abc' }] },
    } });
  }

  interface PodView { spec: { nodeName?: string }; status?: { conditions?: { type: string; status: string; message?: string }[] } }
  const getPod = async (name: string): Promise<PodView | undefined> => client?.request<PodView>('GET', `/api/v1/namespaces/default/pods/${name}`);

  describe.each(['full', 'names'] as const)('nodeCacheCapable: %s', (mode) => {
    const scheduler = `lazarus-${mode}`;

    it('a restored pod goes to the node that can restore it and matches its origin best', async () => {
      await createPod(`restored-${mode}`, scheduler, { ...ORIGIN_ANNOTATIONS, [K.ORIGIN_CPU_FLAGS]: 'fpu avx2' });
      const node = await until('the pod to be bound', async () => (await getPod(`restored-${mode}`))?.spec.nodeName || undefined)
        .catch((err: unknown) => { throw new Error(`${String(err)}\nscheduler log:\n${logTail('kube-scheduler')}`); });
      expect(node).toBe('best');
    }, 90_000);

    it('a pod no node can restore stays Pending, and says why', async () => {
      await createPod(`unrestorable-${mode}`, scheduler, { ...ORIGIN_ANNOTATIONS, [K.ORIGIN_ARCH]: 's390x' });
      const message = await until('the PodScheduled=False condition', async () => {
        const c = (await getPod(`unrestorable-${mode}`))?.status?.conditions?.find((x) => x.type === 'PodScheduled');
        return c?.status === 'False' ? c.message : undefined;
      });
      expect(message).toContain("lazarus: architecture amd64 differs from the checkpoint's s390x");
      expect((await getPod(`unrestorable-${mode}`))?.spec.nodeName).toBeUndefined();
    }, 90_000);

    it('a pod that was not restored schedules as usual', async () => {
      await createPod(`plain-${mode}`, scheduler, {});
      const node = await until('the pod to be bound', async () => (await getPod(`plain-${mode}`))?.spec.nodeName || undefined);
      expect(['best', 'newer-criu', 'old-criu', 'arm']).toContain(node);
    }, 90_000);

    it('the scheduler sent PascalCase ExtenderArgs of this mode', () => {
      // LAZARUS_RECORD_FIXTURES=1 refreshes the recorded requests the unit tests replay.
      if (process.env.LAZARUS_RECORD_FIXTURES === '1') {
        const out = fileURLToPath(new URL('../../../test/fixtures/extender/', import.meta.url));
        mkdirSync(out, { recursive: true });
        for (const verb of ['/filter', '/prioritize']) {
          const first = captured[mode].find((c) => c.verb === verb && (c.body.Pod as { metadata: { name: string } }).metadata.name === `restored-${mode}`);
          if (first) writeFileSync(join(out, `${verb.slice(1)}-${mode}.json`), `${JSON.stringify(first.body, null, 1)}\n`);
        }
      }
      const filters = captured[mode].filter((c) => c.verb === '/filter');
      expect(filters.length).toBeGreaterThan(0);
      for (const { body } of filters) {
        expect(Object.keys(body).sort()).toEqual(['NodeNames', 'Nodes', 'Pod']);
        if (mode === 'full') {
          expect(body.NodeNames).toBeNull();
          const items = (body.Nodes as { items: { metadata: { name: string }; status: { nodeInfo: { architecture: string } } }[] }).items;
          expect(items.length).toBeGreaterThan(0);
          expect(items[0]?.status.nodeInfo.architecture).toMatch(/amd64|arm64/);
        } else {
          expect(body.Nodes).toBeNull();
          expect(Array.isArray(body.NodeNames)).toBe(true);
        }
      }
      expect(captured[mode].some((c) => c.verb === '/prioritize')).toBe(true);
    });
  });
});
