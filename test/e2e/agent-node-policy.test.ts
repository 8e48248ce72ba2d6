/**
 * Least privilege for the agent, against the real kube-apiserver: with the manifests'
 * ValidatingAdmissionPolicy installed, the agent's identity — a service-account token bound to
 * a pod on node-a — may set Lazarus' labels and annotations on node-a and nothing else: not on
 * node-b, not the spec, not anybody else's labels or annotations.
 */
import { serviceAccountToken, writeTokenKubeconfig } from '../harness/identity.js';
import path from 'node:path';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { createNode } from '../harness/nodes.js';
import { applyObjects, type KubeObject } from '../harness/apply.js';
import { waitFor } from '../harness/wait.js';
import { render } from '../support/kustomize.js';
import { createKubeClient, loadKubeConfig, KubeError, type KubeClient } from '../../kube/client.js';
import { Agent } from '../../agent/watcher.js';
import { silentLogger } from '../../runtime/log.js';
import type { Node } from '../../api/types.js';
import * as K from '../../api/keys.js';

const NS = 'lazarus-system';
const SA = 'lazarus-agent';
const POLICY = 'lazarus-agent-own-node';
const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';
const MERGE = 'application/merge-patch+json';

let cp: ControlPlane;
/** The agent on node-a: a token bound to a pod on node-a. */
let agentA: KubeClient;

/** What of the rendered base the agent's identity and its limits consist of. */
function agentObjects(objects: readonly KubeObject[]): KubeObject[] {
  const wanted = (o: KubeObject): boolean =>
    o.kind === 'Namespace'
    || o.kind === 'ValidatingAdmissionPolicy' || o.kind === 'ValidatingAdmissionPolicyBinding'
    || (o.kind === 'ServiceAccount' && o.metadata.name === SA)
    || ((o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding') && o.metadata.name === SA);
  return objects.filter(wanted);
}

/** A kubeconfig that authenticates with `token` only, as a pod's projected token does. */
async function tokenClient(name: string, token: string): Promise<KubeClient> {
  const file = await writeTokenKubeconfig(path.join(cp.dir, `${name}.kubeconfig`), cp.server, cp.ca.certPem, name, token);
  return createKubeClient(loadKubeConfig(file));
}

/** TokenRequest for the agent's ServiceAccount, bound to `pod` when given (the kubelet asks for exactly this). */
async function agentToken(pod?: { name: string; uid: string }): Promise<string> {
  return serviceAccountToken(cp.client, NS, SA, pod);
}

async function whoAmI(client: KubeClient): Promise<{ username: string; extra?: Record<string, string[]> }> {
  const r = await client.request<{ status: { userInfo: { username: string; extra?: Record<string, string[]> } } }>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  return r.status.userInfo;
}

function patchNode(client: KubeClient, name: string, body: unknown, dryRun = false): Promise<Node> {
  return client.request<Node>('PATCH', `/api/v1/nodes/${name}`, { body, contentType: MERGE, ...(dryRun ? { query: { dryRun: 'All' } } : {}) });
}

/** The KubeError a request failed with (fails the test if it succeeded). */
async function rejection(p: Promise<unknown>): Promise<KubeError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof KubeError) return err;
    throw err;
  }
  throw new Error('the request succeeded; expected it to be denied');
}

const getNode = (name: string): Promise<Node> => cp.client.request<Node>('GET', `/api/v1/nodes/${name}`);

beforeAll(async () => {
  cp = await startControlPlane();
  await applyObjects(cp.client, agentObjects(render('manifests/base')));
  await Promise.all([createNode(cp.client, { name: 'node-a', annotations: { 'example.com/owner': 'team-a' } }), createNode(cp.client, { name: 'node-b', criu: '4.1.1' })]);

  // The agent's pod on node-a, as the DaemonSet controller would create it (it never runs: no kubelet).
  const pod = await cp.client.request<{ metadata: { name: string; uid: string } }>('POST', `/api/v1/namespaces/${NS}/pods`, {
    body: {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'lazarus-agent-a' },
      spec: { nodeName: 'node-a', serviceAccountName: SA, containers: [{ name: 'agent', image: 'lazarus:0.1.0' }] },
    },
  });
  agentA = await tokenClient('agent-a', await agentToken(pod.metadata));

  // The policy is enforced once the API server's admission plugin has loaded policy and binding;
  // probe with a dry run so that nothing changes while waiting.
  await waitFor(async () => {
    try {
      await patchNode(agentA, 'node-b', { metadata: { labels: { [K.NODE_CRIU_VERSION]: '40101' } } }, true);
      return false;
    } catch (err) {
      if (err instanceof KubeError && err.status === 403) return true;
      throw err;
    }
  }, { timeoutMs: 30_000, description: `ValidatingAdmissionPolicy ${POLICY} to be enforced` });
}, 120_000);

afterAll(async () => {
  await cp?.stop();
});

describe('the agent\'s identity', () => {
  it('a token bound to a pod on node-a carries node-a in its extra info (no feature gate needed on v1.35)', async () => {
    const user = await whoAmI(agentA);
    expect(user.username).toBe(`system:serviceaccount:${NS}:${SA}`);
    expect(user.extra?.[NODE_NAME_EXTRA]).toEqual(['node-a']);
  });

  it('the policy type-checks against the Node schema without warnings', async () => {
    const policy = await waitFor(async () => {
      const p = await cp.client.request<{ metadata: { generation: number }; status?: { observedGeneration?: number; typeChecking?: { expressionWarnings?: Array<{ fieldRef: string; warning: string }> } } }>(
        'GET', `/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/${POLICY}`);
      return p.status?.observedGeneration === p.metadata.generation ? p : undefined;
    }, { description: 'the policy\'s type checking' });
    expect(policy.status?.typeChecking?.expressionWarnings ?? []).toEqual([]);
  });
});

describe('on its own node', () => {
  it('the real agent publishes its facts (labels and annotations) on node-a', async () => {
    const agent = new Agent({
      kube: agentA, nodeName: 'node-a', checkpointDir: '/nonexistent', namespace: NS, insecureRegistries: new Set(), log: silentLogger(),
      now: () => new Date(), sleep: async () => undefined,
      readFacts: async () => ({ criuVersion: '4.1.1', criuCheckPassed: true, cpuFlags: ['avx2', 'fpu', 'sse4_2'], cgroup: 'v2' }),
      runtimeSupport: async () => ({ capable: true, reason: 'restore enabled (test)' }),
      hostFacts: async () => { throw new Error('not used'); },
      settleMs: 0, scanIntervalMs: 1000, factsIntervalMs: 1000, retryBaseMs: 1, retryMaxMs: 1,
    });
    expect(await agent.refreshFacts()).toBe(true);
    const node = await getNode('node-a');
    expect(node.metadata.labels).toMatchObject({ [K.NODE_CRIU_VERSION]: '40101', [K.NODE_RESTORE_CAPABLE]: 'true' });
    expect(node.metadata.annotations).toMatchObject({ [K.NODE_CRIU]: '4.1.1', [K.NODE_CPU_FLAGS]: 'avx2 fpu sse4_2', [K.NODE_CGROUP]: 'v2' });
  });

  it.each([
    ['changes a lazarus.dev/ label', { metadata: { labels: { [K.NODE_CRIU_VERSION]: '40200' } } }],
    ['removes a lazarus.dev/ label and annotation (criu uninstalled)', { metadata: { labels: { [K.NODE_CRIU_VERSION]: null }, annotations: { [K.NODE_CRIU]: null } } }],
  ])('%s', async (_name, patch) => {
    await patchNode(agentA, 'node-a', patch);
    const node = await getNode('node-a');
    const want = patch.metadata.labels[K.NODE_CRIU_VERSION];
    expect(node.metadata.labels?.[K.NODE_CRIU_VERSION]).toBe(want ?? undefined);
  });

  it.each([
    ['its spec (uncordon/cordon)', { spec: { unschedulable: true } }, /may not change a node's spec/],
    ['its taints', { spec: { taints: [{ key: 'lazarus.dev/x', effect: 'NoSchedule' }] } }, /may not change a node's spec/],
    ['a new label of someone else', { metadata: { labels: { 'node-role.kubernetes.io/control-plane': '' } } }, /may only set lazarus\.dev\/ labels/],
    ['an existing label of someone else', { metadata: { labels: { 'kubernetes.io/arch': 'arm64' } } }, /may only set lazarus\.dev\/ labels/],
    ['removing a label of someone else', { metadata: { labels: { 'kubernetes.io/hostname': null } } }, /may only set lazarus\.dev\/ labels/],
    ['a new annotation of someone else', { metadata: { annotations: { 'example.com/extra': '1' } } }, /may only set lazarus\.dev\/ annotations/],
    ['an existing annotation of someone else', { metadata: { annotations: { 'example.com/owner': 'team-b' } } }, /may only set lazarus\.dev\/ annotations/],
    ['removing an annotation of someone else', { metadata: { annotations: { 'example.com/owner': null } } }, /may only set lazarus\.dev\/ annotations/],
    // An owner that does not exist would let the garbage collector delete the Node.
    ['its owner references', { metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'gone', uid: '00000000-0000-0000-0000-000000000000' }] } }, /owner references or finalizers/],
    ['its finalizers', { metadata: { finalizers: ['example.com/hold'] } }, /owner references or finalizers/],
  ])('may not change %s', async (_name, patch, message) => {
    const before = await getNode('node-a');
    const err = await rejection(patchNode(agentA, 'node-a', patch));
    expect({ status: err.status, message: err.message }).toEqual({ status: 403, message: expect.stringMatching(message) });
    const after = await getNode('node-a');
    expect(after.metadata.labels).toEqual(before.metadata.labels);
    expect(after.metadata.annotations).toEqual(before.metadata.annotations);
    expect(after.metadata.ownerReferences).toEqual(before.metadata.ownerReferences);
    expect(after.spec).toEqual(before.spec);
  });
});

describe('on another node', () => {
  it('a lazarus.dev/ label on node-b is denied with the policy\'s message', async () => {
    const err = await rejection(patchNode(agentA, 'node-b', { metadata: { labels: { [K.NODE_CRIU_VERSION]: '30000' } } }));
    expect({ status: err.status, message: err.message }).toEqual({ status: 403, message: expect.stringMatching(/the Lazarus agent may only change its own node, not node-b/) });
    expect((await getNode('node-b')).metadata.labels?.[K.NODE_CRIU_VERSION]).toBe('40101');
  });

  it('the real agent, pointed at node-b, cannot publish there', async () => {
    const agent = new Agent({
      kube: agentA, nodeName: 'node-b', checkpointDir: '/nonexistent', namespace: NS, insecureRegistries: new Set(), log: silentLogger(),
      now: () => new Date(), sleep: async () => undefined,
      readFacts: async () => ({ criuVersion: '3.17.1', criuCheckPassed: false, cpuFlags: [], cgroup: 'v1' }),
      runtimeSupport: async () => ({ capable: true, reason: 'restore enabled (test)' }),
      hostFacts: async () => { throw new Error('not used'); },
      settleMs: 0, scanIntervalMs: 1000, factsIntervalMs: 1000, retryBaseMs: 1, retryMaxMs: 1,
    });
    const err = await rejection(agent.refreshFacts());
    expect(err.status).toBe(403);
    expect((await getNode('node-b')).metadata.labels?.[K.NODE_RESTORE_CAPABLE]).toBe('true');
  });

  it('a token of the agent\'s ServiceAccount bound to no pod (no node) may patch no node', async () => {
    const unbound = await tokenClient('agent-unbound', await agentToken());
    expect((await whoAmI(unbound)).extra?.[NODE_NAME_EXTRA]).toBeUndefined();
    for (const node of ['node-a', 'node-b']) {
      const err = await rejection(patchNode(unbound, node, { metadata: { labels: { [K.NODE_CRIU_VERSION]: '40101' } } }));
      expect({ status: err.status, message: err.message }).toEqual({ status: 403, message: expect.stringMatching(/may only change its own node/) });
    }
  });

  it('other identities are not limited by the policy (the cluster admin patches node-b)', async () => {
    await patchNode(cp.client, 'node-b', { metadata: { labels: { 'example.com/team': 'a' } } });
    expect((await getNode('node-b')).metadata.labels?.['example.com/team']).toBe('a');
  });
});

describe('RBAC', () => {
  it('the agent cannot write a node\'s status or create nodes at all', async () => {
    const status = await rejection(agentA.request('PATCH', '/api/v1/nodes/node-a/status', { body: { status: { capacity: { pods: '1' } } }, contentType: MERGE }));
    expect(status.status).toBe(403);
    const create = await rejection(agentA.request('POST', '/api/v1/nodes', { body: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-c' } } }));
    expect(create.status).toBe(403);
  });
});
