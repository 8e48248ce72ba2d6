import jsonPatch from 'fast-json-patch';
import { decide, decisionInputs, type ClusterView } from '../../webhook/decide.js';
import type { Pod } from '../../api/types.js';
import type { ViewData } from '../support/builders.js';
import { HOUR, MINUTE, NOW, ORIGIN, REGISTRY, ago, checkpoint, container, node, policy, rsPod, view } from '../support/builders.js';
import { compatibility, nodeFacts } from '../../api/compat.js';
import { matchesTerm } from '../../api/placement.js';
import { DEFAULT_POLICY } from '../../api/policy.js';

const EXCLUDED = new Set(['kube-system', 'lazarus-system']);
const run = (pod: Pod, v: ClusterView, namespace = 'shop') => {
  const input = { pod, namespace, excludedNamespaces: EXCLUDED, defaultRegistry: REGISTRY, now: NOW };
  const decision = decide(input, v);
  // Every row also proves that the pod's decisionInputs (the handler's cache key) carry
  // everything the decision reads.
  expect(decide({ ...input, pod: decisionInputs(pod) }, v)).toEqual(decision);
  // and that the answer's JSON is the patch's
  expect(JSON.parse(decision.patchJson)).toEqual(decision.patch);
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
    // The Deployment controller copies annotations onto the ReplicaSet and never removes them:
    // under a known Deployment, the ReplicaSet's copy is stale and the Deployment decides.
    ['annotation removed from the Deployment, the ReplicaSet keeps its copy: opted out', {
      ReplicaSet: { 'shop/web-7d9c': { annotations: { 'lazarus.dev/restore': 'enabled' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } },
      Deployment: { 'shop/web': {} },
    }, undefined, 'skipped'],
    ['Deployment disabled, the ReplicaSet still says enabled: opted out', {
      ReplicaSet: { 'shop/web-7d9c': { annotations: { 'lazarus.dev/restore': 'enabled' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } },
      Deployment: { 'shop/web': { annotations: { 'lazarus.dev/restore': 'disabled' } } },
    }, undefined, 'skipped'],
    ['ReplicaSet annotated enabled, its Deployment not in the cache: the copy counts', {
      ReplicaSet: { 'shop/web-7d9c': { annotations: { 'lazarus.dev/restore': 'enabled' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } },
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

  it('swaps the image, stamps origin facts, requires arch, CRIU, restore-capable and the runtime', () => {
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
        // Labels, so that no pod lands on a node that cannot restore while the extender is down.
        { key: 'lazarus.dev/restore-capable', operator: 'In', values: ['true'] },
        { key: 'lazarus.dev/runtime', operator: 'In', values: ['cri-o'] },
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
    const out = apply(pod, run(pod, view({ checkpoints: [cp], nodes: [node('node-a', { labels: { zone: 'a' } })] })).patch);
    const terms = out.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
    expect(terms).toHaveLength(2);
    for (const t of terms) expect(t.matchExpressions?.map((e) => e.key)).toEqual(['zone', 'kubernetes.io/arch', 'lazarus.dev/criu-version', 'lazarus.dev/restore-capable', 'lazarus.dev/runtime']);
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

/** The restored pod's required terms. */
const termsOf = (pod: Pod) => pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
const requiring = (...terms: NonNullable<ReturnType<typeof termsOf>>): Pod => {
  const pod = rsPod();
  pod.spec.affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } };
  return pod;
};

describe('decide: an empty node-selector term matches nothing and stays so (issue 13, point 4)', () => {
  it('[{zone In a}, {}] keeps its empty term empty: the pod may not leave zone a', () => {
    const pod = requiring({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }, {});
    const d = run(pod, view({ checkpoints: [checkpoint('c')], nodes: [node('node-a', { labels: { zone: 'a' } }), node('node-b', { labels: { zone: 'b' } })] }));
    expect(d.outcome).toBe('restored');
    const terms = termsOf(apply(pod, d.patch)) ?? [];
    expect(terms).toHaveLength(2);
    expect(terms[0]?.matchExpressions?.map((e) => e.key)).toEqual(['zone', 'kubernetes.io/arch', 'lazarus.dev/criu-version', 'lazarus.dev/restore-capable', 'lazarus.dev/runtime']);
    expect(terms[1]).toEqual({});
  });

  it('a pod whose only term is empty (it can run nowhere) is not rewritten into "any node that can restore"', () => {
    const d = run(requiring({ matchExpressions: [] }), view({ checkpoints: [checkpoint('c')] }));
    expect(d.outcome).toBe('cold');
    expect(d.patch.map((op) => op.path)).toEqual(['/metadata/annotations']); // only the spec-hashes stamp: no affinity, no image
  });
});

describe('decide: the pod\'s own placement (issue 13, point 2: Pending forever)', () => {
  const gpu = (p: Pod): Pod => { p.spec.nodeSelector = { pool: 'gpu' }; return p; };
  const general = node('node-general', { labels: { pool: 'general' } });
  const gpuNode = node('node-gpu', { labels: { pool: 'gpu' } });
  const gpuOldCriu = node('node-gpu-old', { labels: { pool: 'gpu' }, criu: 31701 });
  const tainted = node('node-tainted', { taints: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }] });
  const softTaint = node('node-soft', { taints: [{ key: 'dedicated', value: 'db', effect: 'PreferNoSchedule' }] });
  const noRuntimeLabel = node('node-old-agent');
  delete noRuntimeLabel.metadata.labels?.['lazarus.dev/runtime'];

  it('nodeSelector pool=gpu, the only restore-capable node is in pool general: cold, with a reason', () => {
    const d = run(gpu(rsPod()), view({ checkpoints: [checkpoint('c')], nodes: [general, gpuOldCriu] }));
    expect(d.outcome).toBe('cold');
    expect(d.patch.map((op) => op.path)).toEqual(['/metadata/annotations']); // only the spec-hashes stamp: no affinity, no image
    expect(d.warnings).toEqual([expect.stringMatching(/no node both can restore checkpoints from node-7 .* and may run the pod: 1 can restore, none passes the pod's placement \(node-general: nodeSelector pool=gpu \(node has pool=general\)\); starting cold/)]);
  });

  it.each<[string, (p: Pod) => Pod, ReturnType<typeof node>[], 'restored' | 'cold', RegExp | undefined]>([
    ['nodeSelector met by a restore-capable node', gpu, [general, gpuNode], 'restored', undefined],
    ['required affinity (matchExpressions) excludes the only capable node', () => requiring({ matchExpressions: [{ key: 'pool', operator: 'In', values: ['gpu'] }] }), [general], 'cold', /the pod's required node affinity/],
    ['required affinity: the second (ORed) term admits it', () => requiring({ matchExpressions: [{ key: 'pool', operator: 'In', values: ['gpu'] }] }, { matchExpressions: [{ key: 'pool', operator: 'NotIn', values: ['gpu'] }] }), [general], 'restored', undefined],
    ['matchFields metadata.name names another node', () => requiring({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-x'] }] }), [general], 'cold', /required node affinity/],
    ['matchFields metadata.name names the capable node', () => requiring({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-general'] }] }), [general, gpuNode], 'restored', undefined],
    ['a NoSchedule taint the pod does not tolerate', (p) => p, [tainted], 'cold', /taint dedicated=db:NoSchedule not tolerated/],
    ['the same taint, tolerated by key and value', (p) => { p.spec.tolerations = [{ key: 'dedicated', operator: 'Equal', value: 'db', effect: 'NoSchedule' }]; return p; }, [tainted], 'restored', undefined],
    ['the same taint, tolerated by an Exists toleration without key', (p) => { p.spec.tolerations = [{ operator: 'Exists' }]; return p; }, [tainted], 'restored', undefined],
    ['a toleration for another effect does not help', (p) => { p.spec.tolerations = [{ key: 'dedicated', operator: 'Exists', effect: 'NoExecute' }]; return p; }, [tainted], 'cold', /not tolerated/],
    ['PreferNoSchedule keeps no pod off', (p) => p, [softTaint], 'restored', undefined],
    ['a NoExecute taint counts too', (p) => p, [node('node-x', { taints: [{ key: 'gone', effect: 'NoExecute' }] })], 'cold', /taint gone:NoExecute/],
    ['nodeName set to a node that cannot restore', (p) => { p.spec.nodeName = 'node-gpu-old'; return p; }, [general, gpuOldCriu], 'cold', /nodeName is node-gpu-old/],
    // Point 5: the check evaluates exactly what the patch requires, so a node whose agent does
    // not publish lazarus.dev/runtime yet is no restore target: cold, never Pending.
    ['the only capable node lacks the runtime label (older agent)', (p) => p, [noRuntimeLabel], 'cold', /node lacks what the restore requires: lazarus.dev\/runtime In \[cri-o\]/],
  ])('%s → %s', (_name, shape, nodes, outcome, reason) => {
    const d = run(shape(rsPod()), view({ checkpoints: [checkpoint('c')], nodes }));
    expect(d.outcome).toBe(outcome);
    if (reason) expect(d.reason).toMatch(reason);
  });

  it('runtime: Ignore requires no runtime label, so an older agent\'s node still restores', () => {
    const d = run(rsPod(), view({ checkpoints: [checkpoint('c')], nodes: [noRuntimeLabel], policies: [policy('loose', { compatibility: { runtime: 'Ignore' } })] }));
    expect(d.outcome).toBe('restored');
    expect(termsOf(apply(rsPod(), d.patch))?.[0]?.matchExpressions?.map((e) => e.key)).not.toContain('lazarus.dev/runtime');
  });
});

describe('decide: only trusted checkpoint images are restored (issue 13, point 1)', () => {
  const withImage = (name: string, image: string, takenAt = ago(MINUTE), sourcePod = 'web-7d9c-abcde') => {
    const cp = checkpoint(name, { takenAt, sourcePod });
    cp.spec.image = image;
    return cp;
  };
  const digest = `@sha256:${'a'.repeat(64)}`;
  const decideWith = (cps: ReturnType<typeof checkpoint>[], defaultRegistry: string | null = REGISTRY, policies: ReturnType<typeof policy>[] = []) =>
    decide({ pod: rsPod(), namespace: 'shop', excludedNamespaces: EXCLUDED, now: NOW, ...(defaultRegistry === null ? {} : { defaultRegistry }) }, view({ checkpoints: cps, policies }));

  it.each<[string, string, boolean]>([
    ['a digest under the prefix', `${REGISTRY}/shop/web-app${digest}`, true],
    ['a tag only', `${REGISTRY}/shop/web-app:20261127t120000z`, false],
    ['a tag and a digest', `${REGISTRY}/shop/web-app:v1${digest}`, false],
    ['a foreign registry', `evil.example/lazarus/shop/web-app${digest}`, false],
    ['a sibling path that merely starts with the prefix', `${REGISTRY}x/shop/web-app${digest}`, false],
    ['the prefix as a longer path component (r.example/a vs r.example/ab)', `registry.example/lazarusx/web-app${digest}`, false],
    ['a short digest', `${REGISTRY}/shop/web-app@sha256:${'a'.repeat(63)}`, false],
    ['an upper-case digest', `${REGISTRY}/shop/web-app@sha256:${'A'.repeat(64)}`, false],
    ['a path that climbs out of the prefix', `${REGISTRY}/../evil/web-app${digest}`, false],
    ['an empty path component', `${REGISTRY}//web-app${digest}`, false],
  ])('%s → trusted %s', (_name, image, trusted) => {
    const d = decideWith([withImage('cp', image)]);
    expect(d.outcome).toBe(trusted ? 'restored' : 'cold');
    if (!trusted) {
      // The reason names the checkpoint, the image and the trusted prefix, in the warning.
      expect(d.warnings).toEqual([expect.stringContaining('checkpoint cp of Deployment web container app is not trusted')]);
      expect(d.warnings[0]).toContain(image.slice(0, 40));
      expect(d.warnings[0]).toContain(`${REGISTRY}/`);
    }
  });

  it('an untrusted newest checkpoint is skipped for an older trusted one', () => {
    const d = decideWith([
      withImage('newest-foreign', `evil.example/x${digest}`, ago(MINUTE), 'p2'),
      withImage('older-trusted', `${REGISTRY}/shop/web-app${digest}`, ago(HOUR), 'p1'),
    ]);
    expect(d.checkpoints).toEqual({ app: 'older-trusted' });
  });

  it('the policy\'s spec.checkpoint.registry is the prefix, before the webhook\'s --registry', () => {
    const own = policy('own', { checkpoint: { registry: 'mirror.example/team/' } });
    expect(decideWith([withImage('cp', `mirror.example/team/shop/web-app${digest}`)], REGISTRY, [own]).outcome).toBe('restored');
    expect(decideWith([withImage('cp', `${REGISTRY}/shop/web-app${digest}`)], REGISTRY, [own]).reason).toMatch(/not under the trusted registry prefix mirror\.example\/team\//);
  });

  it('with no registry anywhere, nothing is trusted, and the reason says what to set', () => {
    const d = decideWith([withImage('cp', `${REGISTRY}/shop/web-app${digest}`)], null);
    expect(d.outcome).toBe('cold');
    expect(d.reason).toMatch(/no trusted registry is configured \(set spec.checkpoint.registry in the RestorePolicy, or the webhook's --registry\)/);
  });
});

describe('decide and the extender agree (issue 13, point 5)', () => {
  // Every node the agent labelled: the written affinity admits it and the hard filters pass it,
  // or neither; so the extender, when it is up, never contradicts the affinity.
  const nodes = [
    node('same'), node('arm', { arch: 'arm64' }), node('old-criu', { criu: 31701 }), node('newer-criu', { criu: 40200 }),
    node('incapable', { capable: false }), node('containerd', { runtime: 'containerd://2.1.4' }),
  ];
  it.each(nodes.map((n) => [n.metadata.name ?? '', n] as const))('%s', (_name, n) => {
    const d = run(rsPod(), view({ checkpoints: [checkpoint('c')], nodes: [n] }));
    const facts = nodeFacts(n);
    const ok = compatibility(ORIGIN, facts, { compatibility: DEFAULT_POLICY.spec.compatibility, placement: 'Prefer' }).ok;
    expect(d.outcome).toBe(ok ? 'restored' : 'cold');
    if (d.outcome === 'restored') {
      const terms = termsOf(apply(rsPod(), d.patch)) ?? [];
      expect(terms.some((t) => matchesTerm(facts, t))).toBe(true);
    }
  });
});
