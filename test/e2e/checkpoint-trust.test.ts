/**
 * Who may make a pod run what (issue 13, point 1), against the real kube-apiserver with the
 * manifests' RBAC and ValidatingAdmissionPolicies: a Checkpoint names the image a restored pod
 * runs, so only the agent of the Checkpoint's origin node may create one, nobody may change its
 * spec afterwards, the controller only writes status and deletes, and no agent reads the
 * webhook's Secret (it holds the CA key the API server trusts for admission). Each refusal is a
 * 403 whose message says what was refused.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { serviceAccountToken, writeTokenKubeconfig } from '../harness/identity.js';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { createNode } from '../harness/nodes.js';
import { applyObjects, installCrds, type KubeObject } from '../harness/apply.js';
import { createNamespace, waitFor } from '../harness/wait.js';
import { kubectlPath, render } from '../support/kustomize.js';
import { createKubeClient, loadKubeConfig, KubeError, type KubeClient } from '../../kube/client.js';
import type { Checkpoint } from '../../api/types.js';
import { asAgentOf, createCheckpointObject } from '../../demo/checkpoint-writer.js';
import * as K from '../../api/keys.js';

const run = promisify(execFile);
const SYSTEM_NS = 'lazarus-system';
const NS = 'shop';
const AGENT = `system:serviceaccount:${SYSTEM_NS}:lazarus-agent`;
const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';
const CHECKPOINTS = `/apis/${K.API_VERSION}/namespaces/${NS}/checkpoints`;
const MERGE = 'application/merge-patch+json';
const IMAGE = `registry.example/lazarus/${NS}/web-app@sha256:${'b'.repeat(64)}`;

let cp: ControlPlane;
/** The agent on node-x: a token bound to its pod there, as the kubelet asks for it. */
let agentX: KubeClient;
let controller: KubeClient;
let webhook: KubeClient;

/** Identities, RBAC and admission policies of manifests/base; no workloads (nothing runs here). */
function trustObjects(objects: readonly KubeObject[]): KubeObject[] {
  const kinds = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
  return objects.filter((o) => kinds.has(o.kind));
}

async function tokenClient(name: string, token: string): Promise<KubeClient> {
  const file = await writeTokenKubeconfig(path.join(cp.dir, `${name}.kubeconfig`), cp.server, cp.ca.certPem, name, token);
  return createKubeClient(loadKubeConfig(file));
}

function checkpoint(name: string, originNode: string): Checkpoint {
  return {
    apiVersion: K.API_VERSION, kind: 'Checkpoint',
    metadata: { name, namespace: NS, labels: { [K.CHECKPOINT_WORKLOAD]: 'web', [K.CHECKPOINT_CONTAINER]: 'app' } },
    spec: {
      workload: { kind: 'Deployment', name: 'web' }, container: 'app', sourcePod: 'web-7d9c-abcde',
      image: IMAGE, baseImage: 'registry.example/web:1.4', specHash: '3f2a9c0011223344', takenAt: new Date().toISOString(),
      origin: { node: originNode, architecture: 'amd64', kernelVersion: '6.8.0', criuVersion: 40101, runtime: 'cri-o://1.33.2', cgroup: 'v2', cpuFlags: ['avx2'] },
    },
  } as Checkpoint;
}

const create = (client: KubeClient, body: Checkpoint, dryRun = false): Promise<Checkpoint> =>
  client.request<Checkpoint>('POST', CHECKPOINTS, { body, ...(dryRun ? { query: { dryRun: 'All' } } : {}) });
const getCheckpoint = (name: string): Promise<Checkpoint> => cp.client.request<Checkpoint>('GET', `${CHECKPOINTS}/${name}`);

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

beforeAll(async () => {
  cp = await startControlPlane({ log: () => undefined });
  await installCrds(cp.client);
  await applyObjects(cp.client, trustObjects(render('manifests/base') as unknown as KubeObject[]), { namespace: SYSTEM_NS });
  await Promise.all([createNode(cp.client, { name: 'node-x' }), createNode(cp.client, { name: 'node-y' }), createNamespace(cp.client, NS)]);
  const pod = await cp.client.request<{ metadata: { name: string; uid: string } }>('POST', `/api/v1/namespaces/${SYSTEM_NS}/pods`, {
    body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'lazarus-agent-x' }, spec: { nodeName: 'node-x', serviceAccountName: 'lazarus-agent', containers: [{ name: 'agent', image: 'lazarus:0.1.0' }] } },
  });
  agentX = await tokenClient('agent-x', await serviceAccountToken(cp.client, SYSTEM_NS, 'lazarus-agent', pod.metadata));
  controller = await tokenClient('controller', await serviceAccountToken(cp.client, SYSTEM_NS, 'lazarus-controller'));
  webhook = await tokenClient('webhook', await serviceAccountToken(cp.client, SYSTEM_NS, 'lazarus-webhook'));
  for (const name of ['lazarus-webhook-tls', 'lazarus-registry-push']) {
    await cp.client.request('POST', `/api/v1/namespaces/${SYSTEM_NS}/secrets`, { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name }, data: { x: 'eA==' } } });
  }
  // The policy is enforced once the admission plugin has loaded policy and binding; a dry run changes nothing.
  await waitFor(async () => {
    try {
      await create(cp.client, checkpoint('probe', 'node-x'), true);
      return false;
    } catch (err) {
      if (err instanceof KubeError && err.status === 403) return true;
      throw err;
    }
  }, { timeoutMs: 30_000, description: 'ValidatingAdmissionPolicy lazarus-checkpoint-origin to be enforced' });
}, 120_000);

afterAll(async () => {
  await cp?.stop();
});

describe('creating a Checkpoint', () => {
  it('the policy type-checks against the Checkpoint schema without warnings', async () => {
    type Policy = { metadata: { generation: number }; status?: { observedGeneration?: number; typeChecking?: { expressionWarnings?: Array<{ fieldRef: string; warning: string }> } } };
    const policy = await waitFor(async () => {
      const p = await cp.client.request<Policy>('GET', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/lazarus-checkpoint-origin');
      return p.status?.observedGeneration === p.metadata.generation ? p : undefined;
    }, { description: 'the policy\'s type checking' });
    expect(policy.status?.typeChecking?.expressionWarnings ?? []).toEqual([]);
  });

  it('the agent of node-x records a checkpoint taken on node-x, and makes it Ready through status', async () => {
    await create(agentX, checkpoint('web-app-own', 'node-x'));
    await agentX.request('PATCH', `${CHECKPOINTS}/web-app-own/status`, { body: { status: { phase: 'Ready', restores: 0 } }, contentType: MERGE });
    expect((await getCheckpoint('web-app-own')).status?.phase).toBe('Ready');
  });

  it('the agent of node-x may not claim a checkpoint of node-y', async () => {
    const err = await rejection(create(agentX, checkpoint('web-app-forged', 'node-y')));
    expect({ status: err.status, message: err.message }).toEqual({
      status: 403, message: expect.stringContaining(`only the Lazarus agent of node node-y may create a Checkpoint with spec.origin.node node-y; this request came from ${AGENT} on node node-x`),
    });
  });

  it('neither may a cluster admin, without saying which node\'s agent it stands in for', async () => {
    const err = await rejection(create(cp.client, checkpoint('web-app-admin', 'node-x')));
    expect({ status: err.status, message: err.message }).toEqual({ status: 403, message: expect.stringMatching(/only the Lazarus agent of node node-x may create .*\(no node in its token\)/) });
  });

  it('an admin who impersonates the agent of node-y (kubeconfig as + as-user-extra, as docs/security.md says) may', async () => {
    const kubeconfig = parse(await readFile(cp.kubeconfigPath, 'utf8')) as { users: Array<{ user: Record<string, unknown> }> };
    for (const u of kubeconfig.users) Object.assign(u.user, { as: AGENT, 'as-user-extra': { [NODE_NAME_EXTRA]: ['node-y'] } });
    const file = path.join(cp.dir, 'as-agent-y.kubeconfig');
    await writeFile(file, stringify(kubeconfig), { mode: 0o600 });
    const manifest = path.join(cp.dir, 'checkpoint-y.json');
    await writeFile(manifest, JSON.stringify(checkpoint('web-app-by-hand', 'node-y')));
    await run(kubectlPath(), ['--kubeconfig', file, 'create', '-f', manifest]);
    expect((await getCheckpoint('web-app-by-hand')).spec.origin.node).toBe('node-y');
  });
});

describe('lazarus demo on a cluster with Lazarus installed', () => {
  it('creates its checkpoints of a gone node by standing in for that node\'s agent (impersonation), as a person would', async () => {
    const created = await createCheckpointObject(cp.client, checkpoint('web-app-demo', 'node-lost'));
    expect(created.spec.origin.node).toBe('node-lost');
    await createCheckpointObject(cp.client, checkpoint('web-app-demo-dry', 'node-lost'), { dryRun: true });
    await expect(getCheckpoint('web-app-demo-dry')).rejects.toMatchObject({ status: 404 });
  });

  it('but impersonating the agent does not open other doors: a Secret is still refused', async () => {
    const err = await rejection(cp.client.request('GET', `/api/v1/namespaces/${SYSTEM_NS}/secrets/lazarus-webhook-tls`, { headers: asAgentOf('node-x') }));
    expect(err.status).toBe(403);
  });
});

describe('changing a Checkpoint', () => {
  it.each([
    ['its image', { spec: { image: `evil.example/x@sha256:${'c'.repeat(64)}` } }],
    ['its origin node', { spec: { origin: { node: 'node-y' } } }],
  ])('nobody, not even a cluster admin, may change %s', async (_what, patch) => {
    const before = await getCheckpoint('web-app-own');
    const err = await rejection(cp.client.request('PATCH', `${CHECKPOINTS}/web-app-own`, { body: patch, contentType: MERGE }));
    expect({ status: err.status, message: err.message }).toEqual({
      status: 403, message: expect.stringContaining(`the spec of Checkpoint ${NS}/web-app-own cannot change after creation`),
    });
    expect((await getCheckpoint('web-app-own')).spec).toEqual(before.spec);
  });

  it('the agent that created it may not change its spec either', async () => {
    const err = await rejection(agentX.request('PATCH', `${CHECKPOINTS}/web-app-own`, { body: { spec: { image: IMAGE.replace('web-app', 'other') } }, contentType: MERGE }));
    expect(err.status).toBe(403);
    expect((await getCheckpoint('web-app-own')).spec.image).toBe(IMAGE);
  });

  it('the controller may not patch a checkpoint\'s spec (RBAC: status and delete only)', async () => {
    const err = await rejection(controller.request('PATCH', `${CHECKPOINTS}/web-app-own`, { body: { spec: { image: IMAGE.replace('web-app', 'other') } }, contentType: MERGE }));
    expect({ status: err.status, message: err.message }).toEqual({ status: 403, message: expect.stringMatching(/lazarus-controller" cannot patch resource "checkpoints"/) });
    expect((await getCheckpoint('web-app-own')).spec.image).toBe(IMAGE);
  });

  it('the controller still writes status (restore outcome) and deletes (retention)', async () => {
    const current = await getCheckpoint('web-app-own');
    await controller.request('PUT', `${CHECKPOINTS}/web-app-own/status`, { body: { ...current, status: { ...current.status, phase: 'Expired', reason: 'retention' } } });
    expect((await getCheckpoint('web-app-own')).status?.phase).toBe('Expired');
    await controller.request('DELETE', `${CHECKPOINTS}/web-app-own`);
    await expect(getCheckpoint('web-app-own')).rejects.toMatchObject({ status: 404 });
  });
});

describe('Secrets', () => {
  it('an agent cannot read the webhook\'s Secret (it holds the CA key)', async () => {
    const err = await rejection(agentX.request('GET', `/api/v1/namespaces/${SYSTEM_NS}/secrets/lazarus-webhook-tls`));
    expect({ status: err.status, message: err.message }).toEqual({ status: 403, message: expect.stringMatching(/lazarus-agent" cannot get resource "secrets" .*lazarus-system/) });
  });

  it('an agent cannot list Secrets either (a list would return every value)', async () => {
    expect((await rejection(agentX.request('GET', `/api/v1/namespaces/${SYSTEM_NS}/secrets`))).status).toBe(403);
  });

  it('an agent reads the registry push Secret, the one name it is granted', async () => {
    const secret = await agentX.request<{ metadata: { name: string } }>('GET', `/api/v1/namespaces/${SYSTEM_NS}/secrets/lazarus-registry-push`);
    expect(secret.metadata.name).toBe('lazarus-registry-push');
  });

  it('the controller cannot read the webhook\'s Secret; the webhook can', async () => {
    expect((await rejection(controller.request('GET', `/api/v1/namespaces/${SYSTEM_NS}/secrets/lazarus-webhook-tls`))).status).toBe(403);
    const own = await webhook.request<{ metadata: { name: string } }>('GET', `/api/v1/namespaces/${SYSTEM_NS}/secrets/lazarus-webhook-tls`);
    expect(own.metadata.name).toBe('lazarus-webhook-tls');
  });
});
