/**
 * charts/lazarus and manifests/ are one install written twice: every value set with a kustomize
 * counterpart renders the same objects, up to the differences listed here with their reasons.
 * Runs the real helm (scripts/helm-build.sh) and kubectl kustomize; no cluster.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { render, type K8sObject } from '../support/kustomize.js';
import { CHART, CHART_VALUE_SETS, EVERYTHING, renderChart, runHelm, withValuesFile } from '../support/helm.js';
import { diffInstalls } from '../support/manifest-diff.js';

const NS = 'lazarus-system';
const ONLY_KUSTOMIZE_NAMESPACE = { object: `Namespace//${NS}`, path: '', why: 'Helm does not own its release namespace: it is created and labelled privileged before the install (docs/install-helm.md); templates/namespace-check.yaml refuses one that enforces less' };
const SNIPPET = { object: `ConfigMap/${NS}/lazarus-scheduler-extender-snippet`, path: '', why: 'the chart\'s default scheduler.mode is default-scheduler, which ships overlays/default-scheduler\'s snippet' };
const CERTS_HOOK = { object: `Job/${NS}/lazarus-certs`, path: '/metadata/annotations', why: 'a post-install/post-upgrade hook: an upgrade cannot change a Job\'s pod template, so Helm replaces it' };
const SELF_SIGNED = [
  { object: `Job/${NS}/lazarus-certs`, path: '', why: 'Helm generated the certificate: nothing to set up' },
  { object: `Secret/${NS}/lazarus-webhook-tls`, path: '', why: 'the CA and serving certificate Helm generated' },
  { object: `Deployment/${NS}/lazarus-webhook`, path: '/spec/template/spec/containers/0/args', why: 'files mode (--tls-cert-file/--tls-key-file) instead of secret mode' },
  { object: 'MutatingWebhookConfiguration//lazarus', path: '/webhooks/0/clientConfig/caBundle', why: 'the generated CA, written by Helm' },
  { object: 'ValidatingWebhookConfiguration//lazarus', path: '/webhooks/0/clientConfig/caBundle', why: 'the generated CA, written by Helm' },
  ...['ClusterRole//lazarus-webhook-cabundle', 'ClusterRoleBinding//lazarus-webhook-cabundle', `Role/${NS}/lazarus-serving-cert`, `RoleBinding/${NS}/lazarus-serving-cert`]
    .map((object) => ({ object, path: '', why: 'the webhook serves files: it writes neither the Secret nor the caBundle' })),
];

/** What differs on purpose, per value set: nothing else may. */
const INTENDED: Record<string, ReadonlyArray<{ object: string; path: string; why: string }>> = {
  defaults: [ONLY_KUSTOMIZE_NAMESPACE, SNIPPET, CERTS_HOOK],
  'cert-manager': [ONLY_KUSTOMIZE_NAMESPACE, SNIPPET],
  'self-signed': [ONLY_KUSTOMIZE_NAMESPACE, SNIPPET, ...SELF_SIGNED],
  'default-scheduler': [ONLY_KUSTOMIZE_NAMESPACE, CERTS_HOOK],
  'second-scheduler': [ONLY_KUSTOMIZE_NAMESPACE, CERTS_HOOK],
};

const find = (objects: readonly K8sObject[], kind: string, name: string): K8sObject => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name} in the render`);
  return o;
};
interface PodSpec { containers: Array<{ name: string; image: string; args?: string[]; volumeMounts?: Array<{ name: string; mountPath: string }> }>; imagePullSecrets?: Array<{ name: string }>; nodeSelector?: Record<string, string>; tolerations?: unknown[]; volumes?: Array<{ name: string; hostPath?: { path: string } }> }
const podSpec = (o: K8sObject): PodSpec => (o.spec as { template: { spec: PodSpec } }).template.spec;

describe.each(CHART_VALUE_SETS.filter((v) => v.overlay))('charts/lazarus with $name values and $overlay', ({ name, values, overlay }) => {
  it('render the same objects, up to the listed differences', () => {
    const found = diffInstalls(render(overlay ?? ''), renderChart(values)).map((d) => ({ object: d.object, path: d.path }));
    const intended = (INTENDED[name] ?? []).map(({ object, path: p }) => ({ object, path: p }));
    const key = (d: { object: string; path: string }): string => `${d.object} ${d.path}`;
    expect(found.map(key).sort()).toEqual(intended.map(key).sort());
  });
});

it('the CRDs live in one place: the chart\'s crds/, which manifests/base lists, and Helm skips its kustomization.yaml', () => {
  const fromChart = renderChart({}).filter((o) => o.kind === 'CustomResourceDefinition');
  const fromBase = render('manifests/base').filter((o) => o.kind === 'CustomResourceDefinition');
  expect(fromChart.map((o) => o.metadata.name).sort()).toEqual(['checkpoints.lazarus.dev', 'restorepolicies.lazarus.dev']);
  expect(fromChart).toEqual(expect.arrayContaining(fromBase));
  expect(readdirSync('manifests/base').filter((f) => f.includes('crd'))).toEqual([]);
  // The packaged chart (what people install from a repository) holds the CRDs and not the kustomization.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lazarus-chart-'));
  try {
    runHelm(['package', CHART, '--destination', dir]);
    const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz')) ?? '';
    const files = execFileSync('tar', ['-tzf', path.join(dir, tgz)], { encoding: 'utf8' }).split('\n').filter((f) => f.includes('/crds/'));
    expect(files.sort()).toEqual(['lazarus/crds/checkpoints.yaml', 'lazarus/crds/restorepolicies.yaml']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it.each(CHART_VALUE_SETS)('helm lint --strict passes with $name values', ({ values }) => {
  const out = withValuesFile(values, (file) => runHelm(['lint', '--strict', CHART, '--namespace', NS, '-f', file]));
  expect(out).toContain('0 chart(s) failed');
});

// A wrong value fails at install (helm validates values.schema.json before rendering) and says where.
it.each([
  ['a certificate mode that does not exist', { certificates: { mode: 'selfsigned' } }, "at '/certificates/mode': value must be one of 'webhook', 'self-signed', 'cert-manager'"],
  ['a scheduler mode that does not exist', { scheduler: { mode: 'default' } }, "at '/scheduler/mode': value must be one of 'default-scheduler', 'second-scheduler'"],
  ['a misspelt top-level key', { certificate: { mode: 'webhook' } }, "additional properties 'certificate' not allowed"],
  ['a digest that is not sha256', { image: { digest: 'latest' } }, "at '/image/digest'"],
  ['a registry URL with a scheme', { registry: { url: 'https://registry.example/lazarus' } }, "at '/registry/url'"],
  ['a policy mode in the wrong case', { defaultPolicy: { mode: 'optin' } }, "at '/defaultPolicy/mode': value must be one of 'OptIn', 'All'"],
  ['a duration Go cannot parse', { defaultPolicy: { maxCheckpointAge: '1 day' } }, "at '/defaultPolicy/maxCheckpointAge'"],
  ['retain above the CRD\'s maximum', { defaultPolicy: { checkpoint: { retain: 101 } } }, "at '/defaultPolicy/checkpoint/retain': maximum: got 101, want 100"],
  ['no webhook replicas', { webhook: { replicas: 0 } }, "at '/webhook/replicas': minimum: got 0, want 1"],
  ['a relative checkpoint directory', { agent: { checkpointDir: 'checkpoints' } }, "at '/agent/checkpointDir'"],
  ['a resource quantity that is not one', { agent: { resources: { limits: { memory: 'lots' } } } }, "/agent/resources/limits/memory"],
  ['a toleration operator that does not exist', { agent: { tolerations: [{ operator: 'Any' }] } }, "at '/agent/tolerations/0/operator'"],
  ['an issuerRef without a name', { certificates: { mode: 'cert-manager', certManager: { issuerRef: { kind: 'ClusterIssuer' } } } }, "at '/certificates/certManager/issuerRef'"],
])('%s is refused with a message naming the value', (_what, values, message) => {
  expect(() => renderChart(values)).toThrow(message);
});

describe('every value a person changes reaches the objects', () => {
  const objects = renderChart(EVERYTHING);
  const lazarusPods = objects.filter((o) => ['Deployment', 'DaemonSet', 'Job'].includes(o.kind));
  const agent = find(objects, 'DaemonSet', 'lazarus-agent');

  it('image by digest and pull secrets on every Lazarus pod, the uninstall hook\'s too', () => {
    expect(lazarusPods.map((o) => o.metadata.name).sort()).toEqual(['lazarus-agent', 'lazarus-certs', 'lazarus-controller', 'lazarus-delete-checkpoints', 'lazarus-extender', 'lazarus-webhook']);
    for (const o of lazarusPods) {
      expect({ pod: o.metadata.name, image: podSpec(o).containers[0]?.image, secrets: podSpec(o).imagePullSecrets })
        .toEqual({ pod: o.metadata.name, image: `registry.example/lazarus@sha256:${'a'.repeat(64)}`, secrets: [{ name: 'pull-one' }, { name: 'pull-two' }] });
    }
  });

  it('the registry, its push Secret and the policy fields reach the default RestorePolicy, and the agent may read that Secret', () => {
    expect(find(objects, 'RestorePolicy', 'default').spec).toEqual({
      priority: 5, mode: 'All', maxCheckpointAge: '12h', placement: 'Require', imagePullSecret: 'pull-one',
      compatibility: { criu: 'AtLeastOrigin', cpu: 'Superset', runtime: 'SameName', kernel: 'Prefer' },
      checkpoint: { interval: '10m', onDrain: true, timeoutSeconds: 90, maxParallelPerNode: 2, retain: 5, evictionTimeout: '30s', registry: 'registry.example:5000/checkpoints', pushSecret: 'lazarus-registry-push' },
      restore: { failureAction: 'ColdStart', unschedulableTimeout: '60s', imagePullTimeout: '2m' },
    });
    const secret = find(objects, 'Secret', 'lazarus-registry-push') as K8sObject & { type: string; data: Record<string, string> };
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');
    expect(Buffer.from(secret.data['.dockerconfigjson'] ?? '', 'base64').toString()).toBe('{"auths":{}}');
    expect((find(objects, 'Role', 'lazarus-agent-push-secret') as unknown as { rules: Array<{ resourceNames: string[] }> }).rules[0]?.resourceNames).toEqual(['lazarus-registry-push']);
    expect(podSpec(agent).containers[0]?.args).toContain('--insecure-registry=registry.example:5000');
  });

  it('replicas, resources, the agent\'s placement and its checkpoint directory (argument, mount and host path alike)', () => {
    expect((find(objects, 'Deployment', 'lazarus-webhook').spec as { replicas: number }).replicas).toBe(3);
    expect((podSpec(find(objects, 'Deployment', 'lazarus-webhook')).containers[0] as { resources?: unknown }).resources).toEqual({ requests: { cpu: '200m', memory: '300Mi' }, limits: { memory: '512Mi' } });
    expect((podSpec(find(objects, 'Deployment', 'lazarus-controller')).containers[0] as { resources?: unknown }).resources).toEqual({ requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '1Gi' } });
    const spec = podSpec(agent);
    expect(spec.nodeSelector).toEqual({ 'lazarus.dev/restore-capable': 'true' });
    expect(spec.tolerations).toEqual([{ key: 'dedicated', operator: 'Equal', value: 'stateful', effect: 'NoSchedule' }]);
    expect(spec.containers[0]?.args).toContain('--checkpoint-dir=/srv/kubelet/checkpoints');
    expect(spec.containers[0]?.volumeMounts?.find((m) => m.name === 'checkpoints')?.mountPath).toBe('/srv/kubelet/checkpoints');
    expect(spec.volumes?.find((v) => v.name === 'checkpoints')?.hostPath?.path).toBe('/srv/kubelet/checkpoints');
  });

  it('metrics: a Service per component and a ServiceMonitor with the labels Prometheus selects by', () => {
    const services = objects.filter((o) => o.kind === 'Service' && o.metadata.name.endsWith('-metrics'));
    expect(services.map((s) => (s.spec as { selector: Record<string, string> }).selector['app.kubernetes.io/name']).sort()).toEqual(['lazarus-agent', 'lazarus-controller', 'lazarus-extender', 'lazarus-webhook']);
    const monitor = find(objects, 'ServiceMonitor', 'lazarus') as K8sObject & { metadata: { labels: Record<string, string> }; spec: { endpoints: Array<{ port: string; interval: string }> } };
    expect(monitor.metadata.labels.release).toBe('prometheus');
    expect(monitor.spec.endpoints).toEqual([expect.objectContaining({ port: 'metrics', interval: '15s' })]);
    expect(renderChart({}).some((o) => o.kind === 'ServiceMonitor')).toBe(false);
  });

  it('uninstall.deleteCheckpoints adds a pre-delete Job that may list and delete Checkpoints, nothing else', () => {
    const job = find(objects, 'Job', 'lazarus-delete-checkpoints');
    expect(job.metadata).toMatchObject({ annotations: { 'helm.sh/hook': 'pre-delete' } });
    expect((find(objects, 'ClusterRole', 'lazarus-uninstall') as unknown as { rules: unknown }).rules).toEqual([{ apiGroups: ['lazarus.dev'], resources: ['checkpoints'], verbs: ['list', 'deletecollection'] }]);
    expect(renderChart({}).some((o) => o.metadata.name === 'lazarus-delete-checkpoints')).toBe(false);
  });
});

it('self-signed: one CA in the Secret and both webhook configurations, and a serving certificate for the Service it signs', () => {
  const objects = renderChart({ certificates: { mode: 'self-signed' } });
  const data = (find(objects, 'Secret', 'lazarus-webhook-tls') as unknown as { data: Record<string, string> }).data;
  const ca = new X509Certificate(Buffer.from(data['ca.crt'] ?? '', 'base64'));
  const leaf = new X509Certificate(Buffer.from(data['tls.crt'] ?? '', 'base64'));
  for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
    const hooks = (find(objects, kind, 'lazarus') as unknown as { webhooks: Array<{ clientConfig: { caBundle: string } }> }).webhooks;
    expect(hooks[0]?.clientConfig.caBundle).toBe(data['ca.crt']);
  }
  expect(leaf.verify(ca.publicKey)).toBe(true);
  expect(leaf.checkHost(`lazarus-webhook.${NS}.svc`)).toBe(`lazarus-webhook.${NS}.svc`);
  expect(leaf.checkHost('lazarus-webhook.elsewhere.svc')).toBeUndefined();
});

it('a release namespace other than lazarus-system is named everywhere Lazarus names its own', () => {
  const text = withValuesFile({ scheduler: { mode: 'second-scheduler' }, certificates: { mode: 'cert-manager' } }, (file) => runHelm(['template', 'lazarus', CHART, '--namespace', 'ops-lazarus', '-f', file]));
  expect(text).not.toContain('lazarus-system');
  const objects = parseAllDocuments(text).map((d) => d.toJS() as K8sObject).filter(Boolean);
  const policy = find(objects, 'ValidatingAdmissionPolicy', 'lazarus-checkpoint-origin');
  expect(JSON.stringify(policy)).toContain('system:serviceaccount:ops-lazarus:lazarus-agent');
});

it('values.yaml documents every value the schema knows, and the schema knows every value in values.yaml', () => {
  const schema = JSON.parse(readFileSync(path.join(CHART, 'values.schema.json'), 'utf8')) as { properties: Record<string, unknown> };
  const values = parseAllDocuments(readFileSync(path.join(CHART, 'values.yaml'), 'utf8'))[0]?.toJS() as Record<string, unknown>;
  expect(Object.keys(values).sort()).toEqual(Object.keys(schema.properties).sort());
});
