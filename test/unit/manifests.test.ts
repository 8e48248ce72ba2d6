import { parse } from 'yaml';
import { OVERLAYS, render, type K8sObject } from '../support/kustomize.js';
import { CHART_VALUE_SETS, renderChart } from '../support/helm.js';
import { parseDuration } from '../../api/duration.js';

interface Rule { apiGroups?: string[]; resources?: string[]; verbs?: string[]; resourceNames?: string[] }
interface Container { name: string; securityContext?: { privileged?: boolean; allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } } }

function podSpecOf(o: K8sObject): { containers: Container[]; initContainers?: Container[] } | undefined {
  const spec = o.spec as { template?: { spec?: { containers: Container[] } } } | undefined;
  return spec?.template?.spec;
}

interface Binding { roleRef: { kind: string; name: string }; subjects?: Array<{ kind: string; name: string }>; metadata: { name: string; namespace?: string } }

/** Every rule granting `verb` on `group`/`resource`, with its role and the ServiceAccounts bound to it. */
function rulesWith(objects: readonly K8sObject[], group: string, resource: string, verb: string): Array<{ role: string; rule: Rule; subjects: string[] }> {
  const bindings = objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') as unknown as Binding[];
  const found: Array<{ role: string; rule: Rule; subjects: string[] }> = [];
  for (const role of objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')) {
    const subjects = bindings
      .filter((b) => b.roleRef.kind === role.kind && b.roleRef.name === role.metadata.name && (role.kind === 'ClusterRole' || b.metadata.namespace === role.metadata.namespace))
      .flatMap((b) => (b.subjects ?? []).filter((s) => s.kind === 'ServiceAccount').map((s) => s.name));
    for (const rule of (role as unknown as { rules: Rule[] }).rules) {
      if (rule.apiGroups?.includes(group) && rule.resources?.includes(resource) && rule.verbs?.includes(verb)) found.push({ role: role.metadata.name, rule, subjects });
    }
  }
  return found;
}

function subjectsAllowed(objects: readonly K8sObject[], group: string, resource: string, verb: string): string[] {
  return [...new Set(rulesWith(objects, group, resource, verb).flatMap((r) => r.subjects))];
}

// Every kustomize overlay and every value set of the Helm chart keeps the same promises.
const INSTALLS: ReadonlyArray<[string, () => K8sObject[]]> = [
  ...OVERLAYS.map((dir): [string, () => K8sObject[]] => [dir, () => render(dir)]),
  ...CHART_VALUE_SETS.map(({ name, values }): [string, () => K8sObject[]] => [`charts/lazarus (${name} values)`, () => renderChart(values)]),
];

describe.each(INSTALLS)('%s', (_name, renderInstall) => {
  const objects = renderInstall();

  it('renders a complete install', () => {
    const kinds = new Set(objects.map((o) => `${o.kind}/${o.metadata.name}`));
    for (const want of ['CustomResourceDefinition/checkpoints.lazarus.dev', 'CustomResourceDefinition/restorepolicies.lazarus.dev',
      'Deployment/lazarus-webhook', 'Deployment/lazarus-extender', 'Deployment/lazarus-controller', 'DaemonSet/lazarus-agent',
      'MutatingWebhookConfiguration/lazarus', 'ValidatingWebhookConfiguration/lazarus', 'PodDisruptionBudget/lazarus-webhook', 'RestorePolicy/default',
      'ValidatingAdmissionPolicy/lazarus-agent-own-node', 'ValidatingAdmissionPolicy/lazarus-checkpoint-origin']) {
      expect(kinds).toContain(want);
    }
  });

  it('grants no wildcard verb, resource or API group', () => {
    for (const o of objects.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
      for (const rule of (o as unknown as { rules: Rule[] }).rules) {
        for (const field of ['apiGroups', 'resources', 'verbs'] as const) {
          expect({ role: o.metadata.name, [field]: rule[field] }).toEqual({ role: o.metadata.name, [field]: expect.not.arrayContaining(['*']) });
        }
      }
    }
  });

  // Issue 13: a Checkpoint is a capability to run an image in someone else's pods, and the
  // webhook's Secret holds the CA key the API server trusts for admission.
  it('only the agent creates Checkpoints; nobody updates or patches them (the controller: status and delete)', () => {
    const on = (resource: string, verb: string): string[] => subjectsAllowed(objects, 'lazarus.dev', resource, verb);
    expect(on('checkpoints', 'create')).toEqual(['lazarus-agent']);
    expect(on('checkpoints', 'update')).toEqual([]);
    expect(on('checkpoints', 'patch')).toEqual([]);
    expect(on('checkpoints', 'delete')).toEqual(['lazarus-controller']);
    expect(on('checkpoints/status', 'update').sort()).toEqual(['lazarus-agent', 'lazarus-controller']);
  });

  it('Secrets are read by name only, and only the webhook reads its own', () => {
    for (const verb of ['get', 'list', 'watch', 'update', 'patch']) {
      const unnamed = rulesWith(objects, '', 'secrets', verb).filter((r) => !r.rule.resourceNames?.length);
      expect({ verb, unnamed: unnamed.map((r) => r.role) }).toEqual({ verb, unnamed: [] });
    }
    // A webhook serving files (the chart's self-signed certificates) reads it through no API at all.
    const webhook = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'lazarus-webhook');
    const filesMode = (webhook ? podSpecOf(webhook)?.containers[0] as { args?: string[] } | undefined : undefined)?.args?.some((a) => a.startsWith('--tls-cert-file=')) ?? false;
    const readers = rulesWith(objects, '', 'secrets', 'get').filter((r) => r.rule.resourceNames?.includes('lazarus-webhook-tls'));
    expect(readers.flatMap((r) => r.subjects)).toEqual(filesMode ? [] : ['lazarus-webhook']);
    const agentSecrets = rulesWith(objects, '', 'secrets', 'get').filter((r) => r.subjects.includes('lazarus-agent'));
    expect(agentSecrets.flatMap((r) => r.rule.resourceNames)).toEqual(['lazarus-registry-push']);
  });

  it('no pod mounts the CA key: the webhook projects only the serving pair of its Secret', () => {
    for (const w of objects.filter((o) => podSpecOf(o))) {
      const volumes = ((w.spec as { template: { spec: { volumes?: Array<{ name: string; secret?: { secretName: string; items?: Array<{ key: string }> } }> } } }).template.spec.volumes ?? []);
      for (const v of volumes.filter((x) => x.secret?.secretName === 'lazarus-webhook-tls')) {
        expect({ where: `${w.kind}/${w.metadata.name}/${v.name}`, keys: v.secret?.items?.map((i) => i.key) }).toEqual({ where: `${w.kind}/${w.metadata.name}/${v.name}`, keys: ['tls.crt', 'tls.key'] });
      }
    }
  });

  it('the webhook and extender drain on SIGTERM within their grace period (readiness first, then close)', () => {
    for (const name of ['lazarus-webhook', 'lazarus-extender']) {
      const d = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name);
      const spec = (d?.spec as { template: { spec: { terminationGracePeriodSeconds?: number; containers: Array<{ args?: string[] }> } } } | undefined)?.template.spec;
      const drain = spec?.containers[0]?.args?.find((a) => a.startsWith('--shutdown-drain='))?.slice('--shutdown-drain='.length);
      const drainMs = drain ? parseDuration(drain) : undefined;
      expect({ name, drainMs: (drainMs ?? 0) > 0 }).toEqual({ name, drainMs: true });
      // The drain, then up to CLOSE_GRACE_MS (3 s) for requests in flight, before the kubelet's SIGKILL.
      expect((drainMs ?? 0) + 3_000).toBeLessThan((spec?.terminationGracePeriodSeconds ?? 30) * 1000);
    }
  });

  it('the webhook, extender and controller run under a V8 heap ceiling of 40–75% of their memory limit', () => {
    // Without one, Node sizes its heap from the host and collects lazily until the kernel kills
    // the container; bench:memory measures the peaks under this ceiling.
    const mib = (q: string): number => { const m = /^(\d+)(Mi|Gi)$/.exec(q); return m ? Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1) : NaN; };
    for (const name of ['lazarus-webhook', 'lazarus-extender', 'lazarus-controller']) {
      const d = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name);
      const c = (d?.spec as { template: { spec: { containers: Array<{ env?: Array<{ name: string; value?: string }>; resources?: { limits?: { memory?: string } } }> } } } | undefined)?.template.spec.containers[0];
      const heap = Number(/--max-old-space-size=(\d+)/.exec(c?.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '')?.[1]);
      const share = heap / mib(c?.resources?.limits?.memory ?? '');
      expect({ name, share: share >= 0.4 && share <= 0.75 }).toEqual({ name, share: true });
    }
  });

  it('every container has a securityContext; only the agent is privileged; the rest drop ALL and run read-only', () => {
    const workloads = objects.filter((o) => podSpecOf(o));
    expect(workloads.length).toBeGreaterThanOrEqual(4);
    for (const w of workloads) {
      for (const c of [...(podSpecOf(w)?.containers ?? []), ...(podSpecOf(w)?.initContainers ?? [])]) {
        const where = `${w.kind}/${w.metadata.name}/${c.name}`;
        expect({ where, has: c.securityContext !== undefined }).toEqual({ where, has: true });
        if (w.metadata.name === 'lazarus-agent') continue;
        expect({ where, privileged: c.securityContext?.privileged ?? false }).toEqual({ where, privileged: false });
        expect({ where, drop: c.securityContext?.capabilities?.drop }).toEqual({ where, drop: ['ALL'] });
        expect({ where, ro: c.securityContext?.readOnlyRootFilesystem }).toEqual({ where, ro: true });
      }
    }
  });

  it('the agent runs as root, explicitly (the image is USER 65532), and reaches the host through nsenter', () => {
    const ds = objects.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'lazarus-agent');
    const c = (ds ? podSpecOf(ds) : undefined)?.containers.find((x) => x.name === 'agent');
    expect(c?.securityContext).toMatchObject({ runAsUser: 0, runAsGroup: 0, privileged: true, readOnlyRootFilesystem: true });
    expect((c as { args?: string[] } | undefined)?.args).toEqual(expect.arrayContaining(['--host-exec=nsenter --target 1 --mount --']));
  });

  it('the webhook never blocks a pod', () => {
    const mwc = objects.find((o) => o.kind === 'MutatingWebhookConfiguration') as unknown as { webhooks: { failurePolicy: string; sideEffects: string; timeoutSeconds: number; namespaceSelector: { matchExpressions: { values: string[] }[] } }[] };
    for (const w of mwc.webhooks) {
      expect(w).toMatchObject({ failurePolicy: 'Ignore', sideEffects: 'None' });
      expect(w.timeoutSeconds).toBeLessThanOrEqual(5);
      expect(w.namespaceSelector.matchExpressions[0]?.values).toEqual(expect.arrayContaining(['kube-system', 'lazarus-system']));
    }
  });

  it('the eviction webhook never blocks a drain and never holds Lazarus\' own or kube-system pods; it writes nothing on dryRun', () => {
    const vwc = objects.find((o) => o.kind === 'ValidatingWebhookConfiguration') as unknown as { metadata: { name: string }; webhooks: { failurePolicy: string; sideEffects: string; timeoutSeconds: number; clientConfig: { service: { path: string } }; rules: { operations: string[]; resources: string[] }[]; namespaceSelector: { matchExpressions: { values: string[] }[] } }[] };
    // Secret mode injects the caBundle into the configurations named --webhook-config: both are `lazarus`.
    expect(vwc.metadata.name).toBe('lazarus');
    const [w] = vwc.webhooks;
    expect(w).toMatchObject({ failurePolicy: 'Ignore', sideEffects: 'NoneOnDryRun', clientConfig: { service: { path: '/validate-eviction' } }, rules: [{ operations: ['CREATE'], resources: ['pods/eviction'] }] });
    expect(w?.timeoutSeconds).toBeLessThanOrEqual(5);
    expect(w?.namespaceSelector.matchExpressions[0]?.values).toEqual(expect.arrayContaining(['kube-system', 'lazarus-system']));
  });

  it('the webhook may GET and patch pods and create Events, for evictions, and no more', () => {
    const role = objects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'lazarus-webhook-eviction') as unknown as { rules: Rule[] };
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'patch'] }, { apiGroups: [''], resources: ['events'], verbs: ['create'] }]);
  });
});

it('the cert-manager overlay hands certificates to cert-manager', () => {
  const objects = render('manifests/overlays/cert-manager');
  for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
    const config = objects.find((o) => o.kind === kind) as unknown as { metadata: { annotations?: Record<string, string> } };
    expect(config.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe('lazarus-system/lazarus-webhook');
  }
  expect(objects.some((o) => o.kind === 'Job')).toBe(false);
  expect(objects.some((o) => o.kind === 'Certificate')).toBe(true);
});

// Issue 12: system:kube-scheduler allows get/update only on the Lease `kube-scheduler`; the second
// scheduler's own Lease needs a Role of its own, or it never leads and its pods stay Pending.
it('the second scheduler may take its own leader-election Lease', () => {
  const objects = render('manifests/overlays/second-scheduler');
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'lazarus-scheduler-config') as unknown as { data: Record<string, string> };
  const config = parse(cm.data['config.yaml'] ?? '') as { leaderElection: { leaderElect: boolean; resourceNamespace: string; resourceName: string } };
  const { resourceNamespace: ns, resourceName: name } = config.leaderElection;
  expect({ ns, name }).toEqual({ ns: 'lazarus-system', name: 'lazarus-scheduler' });
  const bound = objects.filter((o) => o.kind === 'RoleBinding' && o.metadata.namespace === ns)
    .map((o) => o as unknown as { roleRef: { kind: string; name: string }; subjects: { kind: string; name: string; namespace?: string }[] })
    .filter((b) => b.roleRef.kind === 'Role' && b.subjects.some((s) => s.kind === 'ServiceAccount' && s.name === 'lazarus-scheduler' && s.namespace === ns));
  const rules = bound.flatMap((b) => (objects.find((o) => o.kind === 'Role' && o.metadata.namespace === ns && o.metadata.name === b.roleRef.name) as unknown as { rules: Rule[] } | undefined)?.rules ?? [])
    .filter((r) => r.apiGroups?.includes('coordination.k8s.io') && r.resources?.includes('leases'));
  const allows = (verb: string, byName: boolean) => rules.some((r) => r.verbs?.includes(verb) && (r.resourceNames === undefined || (byName && r.resourceNames.includes(name))));
  expect({ get: allows('get', true), update: allows('update', true), create: allows('create', false) }).toEqual({ get: true, update: true, create: true });
  // Least privilege: get/update are limited to that one Lease.
  expect(rules.filter((r) => r.verbs?.some((v) => v !== 'create')).every((r) => r.resourceNames?.length === 1 && r.resourceNames[0] === name)).toBe(true);
});
