import jsonPatch from 'fast-json-patch';
import { decide, decisionInputs, type ClusterView } from '../../webhook/decide.js';
import type { Pod } from '../../api/types.js';
import type { ViewData } from '../support/builders.js';
import { HOUR, MINUTE, NOW, ago, checkpoint, container, node, policy, rsPod, view } from '../support/builders.js';

const EXCLUDED = new Set(['kube-system', 'lazarus-system']);
const run = (pod: Pod, v: ClusterView, namespace = 'shop') => {
  const input = { pod, namespace, excludedNamespaces: EXCLUDED, now: NOW };
  const decision = decide(input, v);
  // Every row also proves that the pod's decisionInputs (the handler's cache key) carry
  // everything the decision reads.
  expect(decide({ ...input, pod: decisionInputs(pod) }, v)).toEqual(decision);
  return decision;
};
const apply = (pod: Pod, patch: jsonPatch.Operation[]): Pod => jsonPatch.applyPatch(structuredClone(pod), patch, true, false).newDocument;

describe('decide: opt-in', () => {
  const cp = checkpoint('web-app-1');
  it.each([
    ['Deployment annotated enabled, pod silent', {}, undefined, 'restored'],
    ['pod disabled overrides Deployment enabled', {}, { 'lazarus.dev/restore': 'disabled' }, 'skipped'],
    ['pod enabled with Deployment silent', { Deployment: { 'shop/web': {} } }, { 'lazarus.dev/restore': 'enabled' }, 'restored'],
    ['nothing annotated, default policy OptIn', { Deployment: { 'shop/web': {} } }, undefined, 'skipped'],
    ['ReplicaSet annotated enabled', {
      ReplicaSet: { 'shop/web-7d9c': { annotations: { 'lazarus.dev/restore': 'enabled' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } },
      Deployment: { 'shop/web': {} },
    }, undefined, 'restored'],
  ] as [string, ViewData['owners'] & object, Record<string, string> | undefined, string][])('%s', (_name, owners, podAnnotations, outcome) => {
    const merged = Object.keys(owners).length ? {
      ReplicaSet: { 'shop/web-7d9c': { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } },
      ...owners,
    } : undefined;
    const d = run(rsPod([container()], 'web-7d9c', podAnnotations ? { ...podAnnotations } : undefined),
      view({ checkpoints: [cp], ...(merged ? { owners: merged } : {}) }));
    expect(d.outcome).toBe(outcome);
  });

  it('policy mode All restores a workload nobody annotated, in a matching namespace only', () => {
    const all = policy('everything', { mode: 'All', namespaceSelector: { matchLabels: { team: 'shop' } } });
    const owners = { ReplicaSet: { 'shop/web-7d9c': { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } }, Deployment: { 'shop/web': {} } };
    const cps = [checkpoint('web-app-1')];
    expect(run(rsPod(), view({ checkpoints: cps, owners, policies: [all], namespaces: { shop: { team: 'shop' } } })).outcome).toBe('restored');
    expect(run(rsPod(), view({ checkpoints: cps, owners, policies: [all], namespaces: { shop: { team: 'other' } } })).outcome).toBe('skipped');
  });

  it('mode All still honours disabled on the Deployment', () => {
    const owners = { ReplicaSet: { 'shop/web-7d9c': { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } }, Deployment: { 'shop/web': { annotations: { 'lazarus.dev/restore': 'disabled' } } } };
    const d = run(rsPod(), view({ checkpoints: [checkpoint('web-app-1')], owners, policies: [policy('all', { mode: 'All' })] }));
    expect(d.outcome).toBe('skipped');
    expect(d.reason).toContain('disabled on Deployment web');
  });

  it.each(['kube-system', 'lazarus-system'])('never touches excluded namespace %s', (ns) => {
    expect(run(rsPod(), view({ checkpoints: [checkpoint('web-app-1', { namespace: ns })] }), ns).outcome).toBe('skipped');
  });

  it('leaves an already restored pod alone', () => {
    const d = run(rsPod([container()], 'web-7d9c', { 'lazarus.dev/restored-from': 'app=x' }), view({ checkpoints: [cp] }));
    expect(d).toMatchObject({ outcome: 'skipped', patch: [] });
  });

  it('finds the Deployment from the ReplicaSet name when the ReplicaSet is not cached yet', () => {
    const owners = { Deployment: { 'shop/web': { annotations: { 'lazarus.dev/restore': 'enabled' } } } };
    expect(run(rsPod(), view({ checkpoints: [cp], owners })).outcome).toBe('restored');
  });

  it('StatefulSet pods resolve to the StatefulSet', () => {
    const pod: Pod = { metadata: { name: 'db-0', namespace: 'shop', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', controller: true }] }, spec: { containers: [container('pg', 'postgres:16')] } };
    const owners = { StatefulSet: { 'shop/db': { annotations: { 'lazarus.dev/restore': 'enabled' } } } };
    const cps = [checkpoint('db-pg-1', { container: container('pg', 'postgres:16'), workload: { kind: 'StatefulSet', name: 'db' }, sourcePod: 'db-0' })];
    const d = run(pod, view({ checkpoints: cps, owners }));
    expect(d.outcome).toBe('restored');
    expect(d.checkpoints).toEqual({ pg: 'db-pg-1' });
  });

  it('bare pods are their own workload', () => {
    const pod: Pod = { metadata: { name: 'solo', namespace: 'shop', annotations: { 'lazarus.dev/restore': 'enabled' } }, spec: { containers: [container()] } };
    const d = run(pod, view({ checkpoints: [checkpoint('solo-app-1', { workload: { kind: 'Pod', name: 'solo' }, sourcePod: 'solo' })] }));
    expect(d.outcome).toBe('restored');
  });
});

describe('decide: checkpoint choice', () => {
  const newest = (cps: ReturnType<typeof checkpoint>[], pod = rsPod()) => run(pod, view({ checkpoints: cps }));

  it.each([
    ['age exactly at maxCheckpointAge is usable', [checkpoint('edge', { takenAt: ago(24 * HOUR) })], 'edge'],
    ['one millisecond older is not', [checkpoint('old', { takenAt: ago(24 * HOUR + 1) })], undefined],
    ['the newest Ready one wins', [checkpoint('older', { takenAt: ago(2 * HOUR) }), checkpoint('newer', { takenAt: ago(MINUTE) })], 'newer'],
    ['Failed is never used', [checkpoint('bad', { phase: 'Failed', takenAt: ago(MINUTE) }), checkpoint('ok', { takenAt: ago(HOUR) })], 'ok'],
    ['Pending and Expired are never used', [checkpoint('p', { phase: 'Pending' }), checkpoint('e', { phase: 'Expired' })], undefined],
    ['same timestamp: name order decides, deterministically', [checkpoint('web-app-a', { takenAt: ago(MINUTE) }), checkpoint('web-app-b', { takenAt: ago(MINUTE) })], 'web-app-b'],
    ['another namespace with a matching name is ignored', [checkpoint('web-app-1', { namespace: 'other' })], undefined],
    ['another workload is ignored', [checkpoint('api-app-1', { workload: { kind: 'Deployment', name: 'api' } })], undefined],
    ['a different spec hash (Deployment rolled to a new image) is never used', [checkpoint('v1', { container: container('app', 'registry.example/web:1.3') })], undefined],
  ])('%s', (_name, cps, chosen) => {
    const d = newest(cps);
    if (chosen === undefined) {
      expect(d.outcome).toBe('cold');
      expect(d.patch.map((op) => op.path)).toEqual(['/metadata/annotations']); // only the spec-hashes stamp
      expect(d.warnings.join()).toMatch(/starting cold/);
    } else {
      expect(d.outcome).toBe('restored');
      expect(d.checkpoints).toEqual({ app: chosen });
    }
  });

  it('explains a rolled Deployment in the warning', () => {
    const d = newest([checkpoint('v1', { container: container('app', 'registry.example/web:1.3') })]);
    expect(d.warnings).toEqual([expect.stringMatching(/no Ready checkpoint of Deployment web container app has the pod's spec hash [0-9a-f]{16}.*starting cold/)]);
  });

  it('spec hash covers env: a changed env var starts cold', () => {
    const pod = rsPod([container('app', 'registry.example/web:1.4', { env: [{ name: 'MODE', value: 'fast' }] })]);
    expect(newest([checkpoint('plain')], pod).outcome).toBe('cold');
  });

  describe('multi-container pods', () => {
    const app = container('app');
    const side = container('proxy', 'registry.example/envoy:1.30');
    const pod = rsPod([app, side]);

    it('restore all containers from one source pod', () => {
      const d = newest([
        checkpoint('a1', { container: app, sourcePod: 'p1', takenAt: ago(10 * MINUTE) }),
        checkpoint('s1', { container: side, sourcePod: 'p1', takenAt: ago(10 * MINUTE) }),
      ], pod);
      expect(d.outcome).toBe('restored');
      expect(d.checkpoints).toEqual({ app: 'a1', proxy: 's1' });
    });

    it('start cold when one container lacks a checkpoint', () => {
      const d = newest([checkpoint('a1', { container: app })], pod);
      expect(d.outcome).toBe('cold');
      expect(d.warnings[0]).toContain('container proxy');
    });

    it('never mixes source pods: falls back to the newest pod that covers every container', () => {
      const d = newest([
        checkpoint('a-new', { container: app, sourcePod: 'p2', takenAt: ago(MINUTE) }),
        checkpoint('a-old', { container: app, sourcePod: 'p1', takenAt: ago(HOUR) }),
        checkpoint('s-old', { container: side, sourcePod: 'p1', takenAt: ago(HOUR) }),
      ], pod);
      expect(d.checkpoints).toEqual({ app: 'a-old', proxy: 's-old' });
    });

    it('start cold when no single source pod covers every container', () => {
      const d = newest([
        checkpoint('a', { container: app, sourcePod: 'p1' }),
        checkpoint('s', { container: side, sourcePod: 'p2' }),
      ], pod);
      expect(d.outcome).toBe('cold');
      expect(d.reason).toMatch(/single source pod/);
    });
  });
});

describe('decide: nodes pre-check', () => {
  it.each([
    ['only an arm64 node', 'cold', [node('n1', { arch: 'arm64' })]],
    ['only an older CRIU', 'cold', [node('n1', { criu: 31701 })]],
    ['only a NotReady node', 'cold', [node('n1', { ready: false })]],
    ['only a cordoned node', 'cold', [node('n1', { unschedulable: true })]],
    ['only a node without the agent', 'cold', [node('n1', { capable: false })]],
    ['one good node among bad ones', 'restored', [node('n1', { arch: 'arm64' }), node('n2', { criu: 40200 })]],
  ] as const)('%s → %s', (_name, outcome, nodes) => {
    const d = run(rsPod(), view({ checkpoints: [checkpoint('c')], nodes: [...nodes] }));
    expect(d.outcome).toBe(outcome);
    if (outcome === 'cold') expect(d.warnings[0]).toMatch(/no Ready node can restore checkpoints from node-7/);
  });
});

describe('decide: the patch', () => {
  const cp = checkpoint('web-app-20261127t115600z');

  it('swaps the image, stamps origin facts, requires arch and CRIU', () => {
    const pod = rsPod();
    const d = run(pod, view({ checkpoints: [cp] }));
    const out = apply(pod, d.patch);
    expect(out.spec.containers[0]?.image).toBe(cp.spec.image);
    expect(out.metadata.annotations).toEqual({
      'lazarus.dev/restored-from': 'app=web-app-20261127t115600z',
      'lazarus.dev/original-images': 'app=registry.example/web:1.4',
      'lazarus.dev/origin-node': 'node-7',
      'lazarus.dev/origin-arch': 'amd64',
      'lazarus.dev/origin-kernel': '6.8.0-45-generic',
      'lazarus.dev/origin-criu': '4.1.1',
      'lazarus.dev/origin-runtime': 'cri-o://1.33.2',
      'lazarus.dev/origin-cpu-flags': 'fpu sse4_2 avx2',
      'lazarus.dev/spec-hashes': `app=${cp.spec.specHash}`,
    });
    expect(out.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual([{
      matchExpressions: [
        { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] },
        { key: 'lazarus.dev/criu-version', operator: 'Gt', values: ['40100'] },
      ],
    }]);
    expect(d.warnings).toEqual(['lazarus: container app restored from checkpoint web-app-20261127t115600z taken 4m ago on node-7']);
    // only paths under metadata.annotations, spec.containers and spec.affinity change
    for (const op of d.patch) expect(op.path).toMatch(/^\/(metadata\/annotations|spec\/containers\/0\/image|spec\/affinity)/);
  });

  it('ANDs the requirements into every existing required term (terms are ORed)', () => {
    const pod = rsPod();
    pod.spec.affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [
      { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] },
      { matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] },
    ] } } };
    const out = apply(pod, run(pod, view({ checkpoints: [cp] })).patch);
    const terms = out.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
    expect(terms).toHaveLength(2);
    for (const t of terms) expect(t.matchExpressions?.map((e) => e.key)).toEqual(['zone', 'kubernetes.io/arch', 'lazarus.dev/criu-version']);
    expect(pod.spec.affinity.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[0]?.matchExpressions).toHaveLength(1);
  });

  it('criu Exact pins the version; schedulerName and imagePullSecret come from the policy', () => {
    const pod = rsPod();
    const p = policy('strict', { compatibility: { criu: 'Exact' }, schedulerName: 'lazarus-scheduler', imagePullSecret: 'ckpt-pull' });
    const out = apply(pod, run(pod, view({ checkpoints: [cp], policies: [p] })).patch);
    expect(out.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[0]?.matchExpressions?.[1])
      .toEqual({ key: 'lazarus.dev/criu-version', operator: 'In', values: ['40101'] });
    expect(out.spec.schedulerName).toBe('lazarus-scheduler');
    expect(out.spec.imagePullSecrets).toEqual([{ name: 'ckpt-pull' }]);
  });

  it('does not change its input', () => {
    const pod = rsPod();
    const before = structuredClone(pod);
    run(pod, view({ checkpoints: [cp] }));
    expect(pod).toEqual(before);
  });
});
