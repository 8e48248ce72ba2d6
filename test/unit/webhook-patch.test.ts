import jsonPatch from 'fast-json-patch';
import { PatchBuilder, sharedAnnotations, sharedValue } from '../../webhook/patch.js';
import { decide, restoreRequirements } from '../../webhook/decide.js';
import { withRequirements } from '../../api/placement.js';
import { criuString } from '../../api/versions.js';
import { specHash } from '../../api/spec-hash.js';
import * as K from '../../api/keys.js';
import type { Checkpoint, EffectivePolicy, Pod } from '../../api/types.js';
import { NOW, REGISTRY, checkpoint, container, node, policy, rsPod, view } from '../support/builders.js';

const apply = (pod: unknown, ops: jsonPatch.Operation[]): unknown => jsonPatch.applyPatch(structuredClone(pod), structuredClone(ops), true, false).newDocument;

describe('PatchBuilder: operations and their JSON', () => {
  it('writes what JSON.stringify(ops) writes, shared values and odd strings alike', () => {
    const affinity = sharedValue({ nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'a/b', operator: 'In', values: ['x"y'] }] }] } } });
    const patch = new PatchBuilder();
    patch.set('/spec/containers/0/image', true, 'img "quoted" ü');
    patch.set('/spec/affinity', false, affinity);
    patch.append('/spec/imagePullSecrets', { name: 'pull' });
    patch.annotate({ 'a/b': '1', same: 'v' }, [{ key: 'a/b', value: '2\n' }, { key: 'same', value: 'v' }, { key: 'c~d', value: 'new', valueJson: '"new"' }]);
    patch.annotate(undefined, sharedAnnotations({ 'x/y': 'ü', z: '' }));
    expect(patch.ops.map((op) => `${op.op} ${op.path}`)).toEqual([
      'replace /spec/containers/0/image', 'add /spec/affinity', 'add /spec/imagePullSecrets/-',
      'replace /metadata/annotations/a~1b', 'add /metadata/annotations/c~0d', 'add /metadata/annotations',
    ]);
    expect(patch.json).toBe(JSON.stringify(patch.ops));
    expect(new PatchBuilder().json).toBe('[]');
  });

  it('replaces annotations that are null or no object as a whole', () => {
    for (const existing of [null, 'text', ['a']]) {
      const patch = new PatchBuilder();
      patch.annotate(existing, [{ key: 'k', value: 'v' }]);
      expect(patch.ops).toEqual([{ op: 'replace', path: '/metadata/annotations', value: { k: 'v' } }]);
      expect(apply({ metadata: { annotations: existing } }, patch.ops)).toEqual({ metadata: { annotations: { k: 'v' } } });
    }
  });

  it('freezes a shared value all the way down: no patch can change what the others carry', () => {
    const value = sharedValue({ a: [{ b: 1 }] });
    expect(Object.isFrozen(value.a[0])).toBe(true);
    expect(() => { (value.a as { b: number }[]).push({ b: 2 }); }).toThrow(TypeError);
  });
});

/**
 * The restored pod as DESIGN §4 describes it, field by field on a copy: what every restore patch
 * must turn the pod into.
 */
function restoredCopy(pod: Pod, cps: readonly Checkpoint[], p: EffectivePolicy): unknown {
  const out = structuredClone(pod);
  const origin = cps[0]?.spec.origin;
  if (!origin) throw new Error('no checkpoint');
  const originals: string[] = [];
  out.spec.containers.forEach((c, i) => {
    originals.push(`${c.name}=${c.image ?? ''}`);
    c.image = cps[i]?.spec.image ?? '';
  });
  out.metadata.annotations = {
    ...out.metadata.annotations,
    [K.RESTORED_FROM]: cps.map((cp) => `${cp.spec.container}=${cp.metadata.name ?? ''}`).join(','),
    [K.ORIGINAL_IMAGES]: originals.join(','),
    [K.ORIGIN_NODE]: origin.node,
    [K.ORIGIN_ARCH]: origin.architecture,
    [K.ORIGIN_KERNEL]: origin.kernelVersion,
    [K.ORIGIN_CRIU]: criuString(origin.criuVersion),
    [K.ORIGIN_RUNTIME]: origin.runtime,
    [K.ORIGIN_CPU_FLAGS]: origin.cpuFlags.join(' '),
    [K.SPEC_HASHES]: pod.spec.containers.map((c) => `${c.name}=${specHash(c)}`).join(','),
  };
  const affinity = pod.spec.affinity;
  const own = affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  out.spec.affinity = { ...affinity, nodeAffinity: { ...affinity?.nodeAffinity, requiredDuringSchedulingIgnoredDuringExecution: {
    ...own, nodeSelectorTerms: withRequirements(own?.nodeSelectorTerms, restoreRequirements(origin, p.spec.compatibility)),
  } } };
  if (p.spec.schedulerName) out.spec.schedulerName = p.spec.schedulerName;
  const secret = p.spec.imagePullSecret;
  if (secret && !(Array.isArray(pod.spec.imagePullSecrets) && pod.spec.imagePullSecrets.some((s) => s.name === secret))) {
    out.spec.imagePullSecrets = [...(Array.isArray(pod.spec.imagePullSecrets) ? pod.spec.imagePullSecrets : []), { name: secret }];
  }
  return out;
}

describe('restore patches: every shape of pod and policy, against the pod restored field by field', () => {
  const zoneA = { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] };
  const annotations: [string, Record<string, string> | null | undefined][] = [
    ['none', undefined], ['null', null], ['empty', {}], ['others', { 'team/owner': 'shop', x: 'ü "q"' }],
    ['a stale stamp and the same origin node', { [K.SPEC_HASHES]: 'app=old', [K.ORIGIN_NODE]: 'node-7' }],
  ];
  const affinities: [string, unknown][] = [
    ['none', undefined], ['null', null], ['empty', {}], ['pod affinity only', { podAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] } }],
    ['node affinity without required terms', { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: zoneA }] } }],
    ['required terms', { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [zoneA, { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }] }] } } }],
  ];
  const schedulers = [undefined, 'default-scheduler', 'lazarus-scheduler'];
  const secrets: unknown[] = [undefined, null, [], [{ name: 'other' }], [{ name: 'ckpt-pull' }]];
  const policies = [policy('plain'), policy('routed', { schedulerName: 'lazarus-scheduler', imagePullSecret: 'ckpt-pull', compatibility: { criu: 'Exact', runtime: 'Ignore' } })];
  const containerSets = [[container()], [container('app'), { name: 'side', image: undefined as unknown as string }]];

  it('applies to exactly that pod, and its JSON is its operations', () => {
    let restored = 0;
    for (const [, a] of annotations) for (const [, affinity] of affinities) for (const scheduler of schedulers) for (const pulls of secrets) for (const p of policies) for (const containers of containerSets) {
      const pod = rsPod(structuredClone(containers), 'web-7d9c', a === undefined ? undefined : a as Record<string, string>);
      if (a === null) (pod.metadata as Record<string, unknown>).annotations = null;
      if (affinity !== undefined) (pod.spec as Record<string, unknown>).affinity = structuredClone(affinity);
      if (scheduler !== undefined) pod.spec.schedulerName = scheduler;
      if (pulls !== undefined) (pod.spec as Record<string, unknown>).imagePullSecrets = structuredClone(pulls);
      const cps = pod.spec.containers.map((c) => checkpoint(`web-${c.name}-1`, { container: c }));
      const d = decide({ pod, namespace: 'shop', excludedNamespaces: new Set(), defaultRegistry: REGISTRY, now: NOW },
        view({ checkpoints: cps, policies: [p], nodes: [node('node-1', { labels: { zone: 'a' } })] }));
      expect(d.outcome).toBe('restored');
      expect(JSON.parse(d.patchJson)).toEqual(d.patch);
      expect(apply(pod, d.patch)).toEqual(restoredCopy(pod, cps, p));
      restored++;
    }
    expect(restored).toBe(annotations.length * affinities.length * schedulers.length * secrets.length * policies.length * containerSets.length);
  });
});
