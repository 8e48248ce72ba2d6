/**
 * Issue 13 point 9 at the decision: every opted-in pod the webhook admits carries
 * `lazarus.dev/spec-hashes`, the hashes of the pod as Lazarus saw it (a restored pod: before the
 * image swap), so the agent and `lazarus explain` can use what the webhook compared with.
 */
import jsonPatch from 'fast-json-patch';
import { specHash } from '../../api/spec-hash.js';
import type { Container, Pod } from '../../api/types.js';
import { decide, decisionInputs } from '../../webhook/decide.js';
import { explainPod } from '../../explain/explain.js';
import { NOW, REGISTRY, checkpoint, container, rsPod, view } from '../support/builders.js';

const EXCLUDED = new Set(['kube-system', 'lazarus-system']);
const STAMP = 'lazarus.dev/spec-hashes';
const admit = (pod: Pod, v = view()): { outcome: string; out: Pod } => {
  const d = decide({ pod: decisionInputs(pod), namespace: 'shop', excludedNamespaces: EXCLUDED, defaultRegistry: REGISTRY, now: NOW }, v);
  return { outcome: d.outcome, out: jsonPatch.applyPatch(structuredClone(pod), d.patch, true, false).newDocument };
};
const token = (suffix: string): Container => container('app', 'registry.example/web:1.4', { volumeMounts: [{ name: `kube-api-access-${suffix}`, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }] });

describe('the webhook stamps the spec hashes it computed', () => {
  it('a cold start is stamped (no checkpoint yet) and says why, images untouched', () => {
    const { outcome, out } = admit(rsPod());
    expect(outcome).toBe('cold');
    expect(out.metadata.annotations).toEqual({ [STAMP]: `app=${specHash(container())}`, 'lazarus.dev/cold-start': 'no checkpoint of Deployment web container app' });
    expect(out.spec).toEqual(rsPod().spec);
  });

  it('a restored pod is stamped with the pre-restore hash (its original image), for every container', () => {
    const side = container('side', 'registry.example/side:2');
    const v = view({ checkpoints: [checkpoint('web-app-1'), checkpoint('web-side-1', { container: side })] });
    const { outcome, out } = admit(rsPod([container(), side]), v);
    expect(outcome).toBe('restored');
    expect(out.spec.containers[0]?.image).toMatch(/@sha256:/);
    expect(out.metadata.annotations?.[STAMP]).toBe(`app=${specHash(container())},side=${specHash(side)}`);
    expect(out.metadata.annotations?.['lazarus.dev/cold-start']).toBeUndefined();
  });

  it('a stamp the pod arrived with is replaced by the webhook\'s own', () => {
    const { out } = admit(rsPod([container()], 'web-7d9c', { [STAMP]: 'app=0000000000000000' }));
    expect(out.metadata.annotations?.[STAMP]).toBe(`app=${specHash(container())}`);
  });

  it('a pod that is not opted in is left alone', () => {
    const { outcome, out } = admit(rsPod([container()], 'web-7d9c', { 'lazarus.dev/restore': 'disabled' }));
    expect(outcome).toBe('skipped');
    expect(out.metadata.annotations?.[STAMP]).toBeUndefined();
  });

  it('siblings (different token mount names) share one decision and get the same stamp', () => {
    const a = rsPod([token('abcde')]);
    const b = rsPod([token('fghij')]);
    expect(JSON.stringify(decisionInputs(a))).toBe(JSON.stringify(decisionInputs(b)));
    expect(admit(a).out.metadata.annotations?.[STAMP]).toBe(`app=${specHash(container())}`);
    expect(admit(b).out.metadata.annotations?.[STAMP]).toBe(admit(a).out.metadata.annotations?.[STAMP]);
  });
});

describe('lazarus explain', () => {
  it('shows the stamped hash of a pod changed by a webhook after Lazarus, and so the checkpoint as usable', () => {
    const admitted = admit(rsPod()).out;
    const running: Pod = structuredClone(admitted);
    running.metadata.name = 'web-7d9c-abcde';
    running.spec.containers[0] = { ...container(), env: [{ name: 'INJECTED_BY', value: 'mesh' }] };
    const e = explainPod(running, 'shop', view({ checkpoints: [checkpoint('web-app-1')] }), [], NOW);
    expect(e.specHashes).toEqual({ app: specHash(container()) });
  });
});
