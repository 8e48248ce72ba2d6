import { OVERLAYS, render, type K8sObject } from '../support/kustomize.js';

interface Rule { apiGroups?: string[]; resources?: string[]; verbs?: string[]; resourceNames?: string[] }
interface Container { name: string; securityContext?: { privileged?: boolean; allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } } }

function podSpecOf(o: K8sObject): { containers: Container[]; initContainers?: Container[] } | undefined {
  const spec = o.spec as { template?: { spec?: { containers: Container[] } } } | undefined;
  return spec?.template?.spec;
}

describe.each(OVERLAYS)('%s', (dir) => {
  const objects = render(dir);

  it('renders a complete install', () => {
    const kinds = new Set(objects.map((o) => `${o.kind}/${o.metadata.name}`));
    for (const want of ['CustomResourceDefinition/checkpoints.lazarus.dev', 'CustomResourceDefinition/restorepolicies.lazarus.dev',
      'Deployment/lazarus-webhook', 'Deployment/lazarus-extender', 'Deployment/lazarus-controller', 'DaemonSet/lazarus-agent',
      'MutatingWebhookConfiguration/lazarus', 'PodDisruptionBudget/lazarus-webhook', 'RestorePolicy/default',
      'ValidatingAdmissionPolicy/lazarus-agent-own-node']) {
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
});

it('the cert-manager overlay hands certificates to cert-manager', () => {
  const objects = render('manifests/overlays/cert-manager');
  const mwc = objects.find((o) => o.kind === 'MutatingWebhookConfiguration') as unknown as { metadata: { annotations?: Record<string, string> } };
  expect(mwc.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe('lazarus-system/lazarus-webhook');
  expect(objects.some((o) => o.kind === 'Job')).toBe(false);
  expect(objects.some((o) => o.kind === 'Certificate')).toBe(true);
});
