/**
 * `lazarus explain pod NS/NAME` as an operator runs it — the built CLI in its own process,
 * against the real control plane — for a restored pod, a pod that started cold because its
 * Deployment was rolled, and a pod that started cold because no node can restore its checkpoint.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { tearDown } from '../harness/teardown.js';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { createNode } from '../harness/nodes.js';
import { createNamespace, waitFor } from '../harness/wait.js';
import { installCrds } from '../harness/apply.js';
import { freePort } from '../harness/processes.js';
import { repoRoot } from '../harness/kube-bin.js';
import { startLazarus, TEST_REGISTRY, type RunningExtender, type RunningWebhook } from '../harness/lazarus.js';
import { specHash } from '../../api/spec-hash.js';
import * as K from '../../api/keys.js';
import type { Container, OriginFacts } from '../../api/types.js';
import { CONTAINER, IMAGE, boundPod as bound, createDeployment as createDeploymentIn, createReadyCheckpoint, type LivePod } from '../harness/scenario.js';
import type { Explanation } from '../../explain/explain.js';

const NS = 'shop';
const MAIN = path.join(repoRoot(), 'dist', 'cli', 'main.js');

let cp: ControlPlane;
let webhook: RunningWebhook;
let extender: RunningExtender;

interface Run { code: number; stdout: string; stderr: string }

/** The real command in its own process, as `lazarus explain ...`. */
function lazarus(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH ?? '' }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The webhook's --registry, as an operator passes it to explain (no RestorePolicy names one here). */
const REGISTRY_FLAG = ['--registry', TEST_REGISTRY];

async function explainText(pod: string): Promise<string> {
  const r = await lazarus('explain', 'pod', pod, '--kubeconfig', cp.kubeconfigPath, ...REGISTRY_FLAG);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return r.stdout;
}

async function explainJson(pod: string): Promise<Explanation> {
  const r = await lazarus('explain', 'pod', pod, '--kubeconfig', cp.kubeconfigPath, '--json', ...REGISTRY_FLAG);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return JSON.parse(r.stdout) as Explanation;
}

const createCheckpoint = async (name: string, workload: string, origin: Partial<OriginFacts> = {}): Promise<void> => {
  await createReadyCheckpoint(cp.client, NS, name, { workload, origin });
};
const createDeployment = (name: string): Promise<void> => createDeploymentIn(cp.client, NS, name, { annotations: { [K.RESTORE]: 'enabled' } });
/** The one live, bound pod of `app` for which `pick` holds. */
const boundPod = (app: string, pick: (p: LivePod) => boolean = () => true): Promise<LivePod> => bound(cp.client, NS, app, pick);

const podRef = (p: LivePod): string => `${NS}/${p.metadata.name ?? ''}`;

beforeAll(async () => {
  const extenderPort = await freePort();
  cp = await startControlPlane({
    extenders: [{ urlPrefix: `http://127.0.0.1:${extenderPort}`, nodeCacheCapable: true, weight: 5, ignorable: true }],
    schedulerConfig: { podInitialBackoffSeconds: 1, podMaxBackoffSeconds: 2 },
  });
  await installCrds(cp.client);
  // All amd64. The checkpoint of "web" was taken on node-lost (amd64, criu 4.1.1, cri-o).
  const flags = ['fpu', 'sse4_2', 'avx2', 'avx512f'];
  await Promise.all([
    createNode(cp.client, { name: 'node-exact', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'cri-o://1.33.2', cpuFlags: flags }),
    createNode(cp.client, { name: 'node-newer', kernel: '6.8.0-50-generic', criu: '4.2.0', runtime: 'cri-o://1.34.1', cpuFlags: flags }),
    createNode(cp.client, { name: 'node-oldcriu', kernel: '6.8.0-45-generic', criu: '3.17.1', runtime: 'cri-o://1.33.2', cpuFlags: flags }),
    createNode(cp.client, { name: 'node-noagent', kernel: '6.8.0-45-generic', runtime: 'cri-o://1.33.2' }),
    // The webhook's node affinity names the runtime (lazarus.dev/runtime): it never reaches the extender.
    createNode(cp.client, { name: 'node-containerd', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'containerd://2.1.4', cpuFlags: flags }),
    // Passes the webhook's node affinity (no label says CPU flags): only the extender can turn it down.
    createNode(cp.client, { name: 'node-noavx2', kernel: '6.8.0-45-generic', criu: '4.1.1', runtime: 'cri-o://1.33.2', cpuFlags: ['fpu', 'sse4_2'] }),
  ]);
  ({ webhook, extender } = await startLazarus(cp.client, extenderPort));
  await createNamespace(cp.client, NS);
}, 120_000);

afterAll(() => tearDown([
  ['webhook', () => webhook?.stop()],
  ['extender', () => extender?.stop()],
  ['control plane', () => cp?.stop()],
]), 90_000);

describe('lazarus explain (the CLI, against the real control plane)', () => {
  let restored: LivePod;

  beforeAll(async () => {
    await createCheckpoint('web-app-1', 'web');
    await createDeployment('web');
    restored = await boundPod('web');
  }, 60_000);

  it('a restored pod: its checkpoint, origin and every node\'s verdict and score', async () => {
    expect(restored.metadata.annotations?.[K.RESTORED_FROM]).toBe('app=web-app-1');
    const text = await explainText(podRef(restored));
    const lines = text.split('\n');
    expect(lines[0]).toBe(`pod ${podRef(restored)} (Deployment/web) on node-exact`);
    expect(text).toContain('policy: (built-in defaults); opted in');
    expect(text).toContain(`spec hash: app=${specHash(CONTAINER)}`);
    expect(text).toContain('restored from: app ← web-app-1');
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}✔ app web-app-1 +Ready, taken \d+m ago on node-lost: restored from this$/));
    expect(text).toContain('checkpoint origin: node-lost (amd64, kernel 6.8.0-45-generic, criu 4.1.1, cri-o://1.33.2)');
    expect(lines).toEqual(expect.arrayContaining([
      expect.stringMatching(/^ {2}✔ node-exact +score +8 +← bound here$/),
      expect.stringMatching(/^ {2}✔ node-newer +score +\d+$/),
      expect.stringMatching(/^ {2}✘ node-oldcriu +criu 3\.17\.1 is older than the checkpoint's 4\.1\.1$/),
      expect.stringMatching(/^ {2}✘ node-containerd +runtime containerd differs from the checkpoint's cri-o$/),
      expect.stringMatching(/^ {2}✘ node-noavx2 +CPU lacks flags the checkpointed process may use: avx2$/),
      expect.stringMatching(/^ {2}✘ node-noagent +.*not restore-capable.*; criu version unknown/),
    ]));

    const json = await explainJson(podRef(restored));
    expect(json).toMatchObject({
      pod: podRef(restored), workload: 'Deployment/web', boundTo: 'node-exact',
      optIn: { enabled: true }, restoredFrom: { app: 'web-app-1' }, specHashes: { app: specHash(CONTAINER) },
      origin: { node: 'node-lost', architecture: 'amd64', criuVersion: 40101 },
      checkpoints: [{ container: 'app', name: 'web-app-1', phase: 'Ready', originNode: 'node-lost', specHash: specHash(CONTAINER), chosen: true, unusable: '' }],
    });
    expect(json.nodes.map((n) => [n.node, n.compatible])).toEqual([
      ['node-exact', true], ['node-newer', true], ['node-containerd', false], ['node-noagent', false], ['node-noavx2', false], ['node-oldcriu', false],
    ]);
    // The same verdicts the extender gave the real scheduler, for the one node the webhook's
    // required affinity lets through (architecture, CRIU, restore-capable and runtime are labels).
    expect(Object.keys(extender.filtered()).sort()).toEqual(['node-noavx2']);
    for (const [node, reason] of Object.entries(extender.filtered())) {
      expect(`lazarus: ${json.nodes.find((n) => n.node === node)?.reasons.join('; ') ?? ''}`).toBe(reason);
    }
  });

  it('a pod of a Deployment rolled to a new image starts cold, and explain says it is the spec hash', async () => {
    const rolledContainer: Container = { ...CONTAINER, image: 'registry.example/web:1.5' };
    await cp.client.request('PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/web`, {
      body: { spec: { template: { spec: { containers: [{ name: 'app', image: rolledContainer.image }] } } } }, contentType: 'application/strategic-merge-patch+json',
    });
    const cold = await boundPod('web', (p) => p.spec.containers[0]?.image === rolledContainer.image);
    expect(cold.metadata.annotations?.[K.RESTORED_FROM]).toBeUndefined();

    const newHash = specHash(rolledContainer);
    expect(newHash).not.toBe(specHash(CONTAINER));
    const text = await explainText(podRef(cold));
    expect(text).toContain(`spec hash: app=${newHash}`);
    expect(text).toMatch(new RegExp(`started cold; created now, the webhook would start it cold: no Ready checkpoint of Deployment web container app has the pod's spec hash ${newHash}`));
    // The checkpoint, with the hash it was taken with, next to the pod's.
    expect(text.split('\n')).toContainEqual(expect.stringMatching(new RegExp(`^  ✘ app web-app-1  Ready, taken \\d+m ago on node-lost: spec hash ${specHash(CONTAINER)} is not the pod's ${newHash}: the container changed since$`)));
    expect(text).toContain('nodes: no checkpoint to restore, so any node can run it cold');

    const json = await explainJson(podRef(cold));
    expect(json.restoredFrom).toBeUndefined();
    expect(json.wouldRestore).toMatchObject({ outcome: 'cold', reason: expect.stringContaining(newHash) });
    expect(json.checkpoints).toEqual([expect.objectContaining({ name: 'web-app-1', specHash: specHash(CONTAINER), chosen: false, unusable: expect.stringContaining(newHash) })]);
    expect(json.origin).toBeUndefined();
    expect(json.nodes).toEqual([]);
  });

  it('a pod whose checkpoint no node can restore (arm64 origin, amd64 nodes) starts cold; explain lists every node\'s reason', async () => {
    await createCheckpoint('arm-app-1', 'arm', { node: 'node-graviton', architecture: 'arm64', cpuFlags: ['fp', 'asimd'] });
    await createDeployment('arm');
    const pod = await boundPod('arm');
    expect(pod.metadata.annotations?.[K.RESTORED_FROM]).toBeUndefined();
    expect(pod.spec.containers[0]?.image).toBe(IMAGE);

    const text = await explainText(podRef(pod));
    const lines = text.split('\n');
    expect(text).toContain('started cold; created now, the webhook would start it cold: no Ready node can restore checkpoints from node-graviton (arm64, criu 4.1.1)');
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}✔ app arm-app-1 {2}Ready, taken \d+m ago on node-graviton: the webhook picks this$/));
    expect(text).toContain('checkpoint origin: node-graviton (arm64,');
    for (const node of ['node-exact', 'node-newer', 'node-oldcriu', 'node-noagent', 'node-containerd', 'node-noavx2']) {
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^ {2}✘ ${node} +architecture amd64 differs from the checkpoint's arm64`)));
    }
    expect(lines).toContain('  no Ready, schedulable node can restore this checkpoint');

    const json = await explainJson(podRef(pod));
    expect(json.wouldRestore?.outcome).toBe('cold');
    expect(json.checkpoints).toEqual([expect.objectContaining({ name: 'arm-app-1', chosen: true, unusable: '' })]);
    expect(json.nodes).toHaveLength(6);
    for (const n of json.nodes) expect(n).toMatchObject({ compatible: false, reasons: expect.arrayContaining([expect.stringMatching(/^architecture amd64/)]) });
    // arm64 CPU flags are not held against amd64 nodes: the architecture says it all.
    expect(text).not.toContain('CPU lacks flags');
  });

  it('a pod in an excluded namespace: the webhook leaves it alone, whatever its annotation', async () => {
    await cp.client.request('POST', '/api/v1/namespaces/kube-system/pods', { body: {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'opted-in', annotations: { [K.RESTORE]: 'enabled' } },
      spec: { containers: [CONTAINER] },
    } });
    const text = await explainText('kube-system/opted-in');
    expect(text).toContain('started cold; created now, the webhook would leave it alone: namespace kube-system is excluded');
    const json = await explainJson('kube-system/opted-in');
    expect(json.wouldRestore).toEqual({ outcome: 'skipped', reason: 'namespace kube-system is excluded' });
  });

  it.each([
    ['no such pod', ['explain', 'pod', `${NS}/nope`], 1, /pod shop\/nope not found/],
    ['not NAMESPACE/NAME', ['explain', 'pod', 'nope'], 2, /"nope" is not NAMESPACE\/NAME/],
  ])('%s: a one-line reason and a non-zero exit', async (_name, args, code, message) => {
    const r = await lazarus(...args, '--kubeconfig', cp.kubeconfigPath);
    expect(r.code).toBe(code);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(message)]);
  });
});

describe('restores that must not happen (issue 13), and explain says why', () => {
  const digest = `@sha256:${'b'.repeat(64)}`;

  /** The admission warnings for a pod like `like`, created now (dry-run: what the ReplicaSet controller is told). */
  async function warningsFor(like: LivePod): Promise<string[]> {
    const warnings: string[] = [];
    await cp.client.request('POST', `/api/v1/namespaces/${NS}/pods`, {
      query: { dryRun: 'All' }, onWarning: (w) => warnings.push(w),
      body: { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'x-', labels: like.metadata.labels, ownerReferences: like.metadata.ownerReferences }, spec: like.spec },
    });
    return warnings;
  }

  it.each([
    ['a foreign registry', 'foreign', `evil.example/lazarus/${NS}/foreign-app${digest}`, `is not under the trusted registry prefix ${TEST_REGISTRY}/`],
    ['a tag, not a digest', 'tagged', `${TEST_REGISTRY}/${NS}/tagged-app:20261127t120000z`, 'is not a digest reference'],
  ])('a Checkpoint naming %s is never restored: the pod starts cold, and the warning and explain say why', async (_what, app, image, why) => {
    await createReadyCheckpoint(cp.client, NS, `${app}-app-1`, { workload: app, image });
    await createDeployment(app);
    const pod = await boundPod(app);
    expect(pod.spec.containers[0]?.image).toBe(IMAGE);
    expect(pod.metadata.annotations?.[K.RESTORED_FROM]).toBeUndefined();

    const reason = `checkpoint ${app}-app-1 of Deployment ${app} container app is not trusted: image ${image}`;
    // What the controller turns into an UntrustedCheckpoint Event (test/unit/controller).
    expect(pod.metadata.annotations?.[K.COLD_START]).toContain(reason);
    const warnings = await warningsFor(pod);
    expect(warnings).toEqual([expect.stringContaining(reason)]);
    expect(warnings[0]).toContain(why);
    expect(warnings[0]).toContain(`Lazarus restores only digest references under ${TEST_REGISTRY}/`);

    const text = await explainText(podRef(pod));
    expect(text).toContain(`started cold; created now, the webhook would start it cold: ${reason}`);
    expect(text.split('\n')).toContainEqual(expect.stringMatching(new RegExp(`^  ✘ app ${app}-app-1 +Ready, taken \\d+m ago on node-lost: not trusted: .*${why.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`)));
    const json = await explainJson(podRef(pod));
    expect(json.wouldRestore).toMatchObject({ outcome: 'cold', reason: expect.stringContaining(why) });
  });

  it('a pod whose nodeSelector only a node that cannot restore satisfies starts cold there, never Pending', async () => {
    // pool=gpu has one node, and its CRIU is too old for the checkpoint; every node that can
    // restore is outside the pool.
    await createNode(cp.client, { name: 'node-gpu', kernel: '6.8.0-45-generic', criu: '3.17.1', runtime: 'cri-o://1.33.2', cpuFlags: ['fpu', 'sse4_2', 'avx2'], labels: { pool: 'gpu' } });
    await waitFor(() => webhook.cache.node('node-gpu'), { description: 'node-gpu in the webhook cache' });
    await createReadyCheckpoint(cp.client, NS, 'gpu-app-1', { workload: 'gpu' });
    await createDeploymentIn(cp.client, NS, 'gpu', { annotations: { [K.RESTORE]: 'enabled' }, nodeSelector: { pool: 'gpu' } });
    const pod = await boundPod('gpu');
    expect(pod.spec.nodeName).toBe('node-gpu');
    expect(pod.spec.containers[0]?.image).toBe(IMAGE);
    expect(pod.metadata.annotations?.[K.RESTORED_FROM]).toBeUndefined();

    const text = await explainText(podRef(pod));
    expect(text).toMatch(/the webhook would start it cold: no node both can restore checkpoints from node-lost \(amd64, criu 4\.1\.1\) and may run the pod: \d+ can restore, none passes the pod's placement \(node-\w+: nodeSelector pool=gpu \(node has no pool\)\)/);
  });
});
