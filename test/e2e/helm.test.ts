/**
 * charts/lazarus against a real API server (the harness control plane, no nodes): every value
 * set the tests use is accepted by the server, rendered by `helm template` and by
 * `helm install --dry-run=server`; then a real install, upgrade and uninstall, which leaves the
 * users' Checkpoints (and the CRDs) where they were.
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { helmPath, tool, type Tool } from '../harness/helm-bin.js';
import { repoRoot } from '../harness/kube-bin.js';
import { CHART_VALUE_SETS, withValuesFile } from '../support/helm.js';

const NS = 'lazarus-system';
const chart = path.join(repoRoot(), 'charts', 'lazarus');
let cp: ControlPlane;
let helm: Tool;
let kubectl: Tool;

beforeAll(async () => {
  cp = await startControlPlane();
  helm = tool(await helmPath(), cp.kubeconfigPath);
  kubectl = tool(path.join(cp.binDir, 'kubectl'), cp.kubeconfigPath);
  // What docs/install-helm.md says to do first: the CRDs, and the namespace labelled for the agent.
  await kubectl(['apply', '--server-side', '-k', path.join(chart, 'crds')]);
  await kubectl(['apply', '--server-side', '-f', '-'], { input: readFileSync(path.join(repoRoot(), 'test/fixtures/helm/foreign-crds.yaml'), 'utf8') });
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  await kubectl(['create', 'namespace', NS]);
  await kubectl(['label', 'namespace', NS, 'pod-security.kubernetes.io/enforce=privileged']);
}, 180_000);

afterAll(() => cp?.stop(), 60_000);

describe.each(CHART_VALUE_SETS)('$name values', ({ values }) => {
  it('helm template | kubectl apply --dry-run=server: the API server accepts every object', async () => {
    const manifest = await withValuesFile(values, (file) => helm(['template', 'lazarus', chart, '--namespace', NS, '-f', file]));
    const out = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: manifest });
    const applied = out.trim().split('\n');
    expect(applied.length).toBe(manifest.split('\n').filter((l) => l.startsWith('kind: ')).length);
    expect(applied.every((l) => l.endsWith('(server dry run)'))).toBe(true);
  }, 60_000);

  it('helm install --dry-run=server renders against the cluster', async () => {
    const out = await withValuesFile(values, (file) => helm(['install', 'lazarus', chart, '--namespace', NS, '--dry-run=server', '-f', file]));
    expect(out).toContain('STATUS: pending-install');
    expect(out).toContain('kind: DaemonSet');
  }, 60_000);
});

it('refuses a namespace whose Pod Security would refuse the agent, and says how to fix it', async () => {
  await kubectl(['create', 'namespace', 'restricted-ops']);
  await kubectl(['label', 'namespace', 'restricted-ops', 'pod-security.kubernetes.io/enforce=baseline']);
  await expect(helm(['install', 'lazarus', chart, '--namespace', 'restricted-ops', '--dry-run=server']))
    .rejects.toThrow('namespace restricted-ops enforces Pod Security "baseline", which refuses the Lazarus agent (hostPID, privileged): run `kubectl label namespace restricted-ops pod-security.kubernetes.io/enforce=privileged --overwrite`');
});

it('installs, upgrades and uninstalls; uninstall leaves Checkpoints and the CRDs', async () => {
  // A user's Checkpoint, recorded before the install (no admission policy yet says only agents may).
  await kubectl(['create', 'namespace', 'shop']);
  await kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({
    apiVersion: 'lazarus.dev/v1alpha1', kind: 'Checkpoint', metadata: { name: 'web-1', namespace: 'shop' },
    spec: { workload: { kind: 'Deployment', name: 'web' }, container: 'web', sourcePod: 'web-abc', image: 'registry.example/lazarus/shop/web@sha256:' + 'b'.repeat(64),
      baseImage: 'registry.example/web:1.4', specHash: '0123456789abcdef', takenAt: '2026-01-01T00:00:00Z',
      origin: { node: 'n1', architecture: 'amd64', kernelVersion: '6.8.0', criuVersion: 40101, runtime: 'cri-o://1.33.2' } },
  }) });

  // Self-signed certificates: no hook Job, which would wait for a node this cluster does not have.
  const installed = await helm(['install', 'lazarus', chart, '--namespace', NS, '--set', 'certificates.mode=self-signed']);
  expect(installed).toContain('STATUS: deployed');
  expect(installed).toContain('leaves your Checkpoints and their');
  const managed = await kubectl(['get', 'deploy,ds,svc,restorepolicy,validatingadmissionpolicy,mutatingwebhookconfiguration', '-A', '-l', 'app.kubernetes.io/instance=lazarus', '-o', 'name']);
  expect(managed.trim().split('\n').sort()).toEqual([
    'daemonset.apps/lazarus-agent', 'deployment.apps/lazarus-controller', 'deployment.apps/lazarus-extender', 'deployment.apps/lazarus-webhook',
    'mutatingwebhookconfiguration.admissionregistration.k8s.io/lazarus', 'restorepolicy.lazarus.dev/default', 'service/lazarus-extender', 'service/lazarus-webhook',
    'validatingadmissionpolicy.admissionregistration.k8s.io/lazarus-agent-own-node', 'validatingadmissionpolicy.admissionregistration.k8s.io/lazarus-checkpoint-origin',
  ]);
  const caBefore = await kubectl(['-n', NS, 'get', 'secret', 'lazarus-webhook-tls', '-o', 'jsonpath={.data.ca\\.crt}']);

  const upgraded = await helm(['upgrade', 'lazarus', chart, '--namespace', NS, '--set', 'certificates.mode=self-signed', '--set', 'controller.replicas=1', '--set', 'defaultPolicy.mode=All']);
  expect(upgraded).toContain('REVISION: 2');
  expect(await kubectl(['-n', NS, 'get', 'deploy', 'lazarus-controller', '-o', 'jsonpath={.spec.replicas}'])).toBe('1');
  expect(await kubectl(['get', 'restorepolicy', 'default', '-o', 'jsonpath={.spec.mode}'])).toBe('All');
  // The generated CA survives an upgrade: the API server keeps trusting the running webhook.
  expect(await kubectl(['-n', NS, 'get', 'secret', 'lazarus-webhook-tls', '-o', 'jsonpath={.data.ca\\.crt}'])).toBe(caBefore);
  expect(await kubectl(['get', 'mutatingwebhookconfiguration', 'lazarus', '-o', 'jsonpath={.webhooks[0].clientConfig.caBundle}'])).toBe(caBefore);

  const uninstalled = await helm(['uninstall', 'lazarus', '--namespace', NS, '--wait']);
  expect(uninstalled).toContain('release "lazarus" uninstalled');
  expect(await kubectl(['get', 'deploy,ds,restorepolicy,validatingadmissionpolicy,mutatingwebhookconfiguration', '-A', '-l', 'app.kubernetes.io/part-of=lazarus', '-o', 'name'])).toBe('');
  expect(await kubectl(['-n', 'shop', 'get', 'checkpoint', 'web-1', '-o', 'jsonpath={.spec.image}'])).toBe(`registry.example/lazarus/shop/web@sha256:${'b'.repeat(64)}`);
  expect((await kubectl(['get', 'crd', '-o', 'name'])).split('\n')).toEqual(expect.arrayContaining([
    'customresourcedefinition.apiextensions.k8s.io/checkpoints.lazarus.dev', 'customresourcedefinition.apiextensions.k8s.io/restorepolicies.lazarus.dev']));
}, 180_000);
