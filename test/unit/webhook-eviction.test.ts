import jsonPatch from 'fast-json-patch';
import { decideEviction, STALE_HOLD_MS, type EvictionDecision } from '../../webhook/eviction.js';
import type { Checkpoint, Pod } from '../../api/types.js';
import { NOW, checkpoint, container, policy, rsPod, view, type ViewData } from '../support/builders.js';

const EXCLUDED = new Set(['kube-system', 'lazarus-system']);
const SECOND = 1_000;
const at = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
const HELD = NOW - 10 * SECOND;

/** A running pod of the Deployment web (ReplicaSet web-7d9c), as a GET returns it. */
function running(annotations?: Record<string, string>, extra: Partial<Pod['metadata']> = {}, containers = [container()]): Pod {
  const pod = rsPod(containers, 'web-7d9c', annotations);
  return {
    ...pod,
    metadata: { ...pod.metadata, name: 'web-7d9c-abcde', uid: 'uid-1', resourceVersion: '42', ...extra },
    spec: { ...pod.spec, nodeName: 'node-1' },
    status: { phase: 'Running' },
  };
}
function bare(annotations: Record<string, string>): Pod {
  return { metadata: { name: 'solo', namespace: 'shop', uid: 'uid-2', resourceVersion: '7', annotations }, spec: { containers: [container()], nodeName: 'node-1' }, status: { phase: 'Running' } };
}
const held = (request: string, more: Record<string, string> = {}): Record<string, string> =>
  ({ 'lazarus.dev/eviction-held-since': at(HELD), 'lazarus.dev/checkpoint': request, ...more });
const fresh = (phase: 'Ready' | 'Failed' | 'Pending' = 'Ready', takenAt = at(HELD + 3 * SECOND), extra: Partial<Parameters<typeof checkpoint>[1]> = {}): Checkpoint =>
  checkpoint(`web-app-${phase}`, { sourcePod: 'web-7d9c-abcde', takenAt, phase, ...extra });

function decide(pod: Pod | undefined, data: ViewData = {}, opts: { now?: number; dryRun?: boolean; namespace?: string; name?: string } = {}): EvictionDecision {
  return decideEviction({ pod, namespace: opts.namespace ?? 'shop', name: opts.name ?? pod?.metadata.name ?? 'gone', dryRun: opts.dryRun ?? false, excludedNamespaces: EXCLUDED, now: opts.now ?? NOW }, view(data));
}
const annotationsAfter = (pod: Pod, d: EvictionDecision): Record<string, string> | undefined => {
  if (d.verdict !== 'hold' || !d.write) return undefined;
  return (jsonPatch.applyPatch(structuredClone(pod), d.write, true, false).newDocument as Pod).metadata.annotations;
};

describe('decideEviction', () => {
  it.each<[string, () => Pod | undefined, ViewData, { now?: number }, Partial<EvictionDecision>]>([
    ['not opted in → allow', () => running(), { owners: { Deployment: { 'shop/web': {} } } }, {}, { verdict: 'allow', reason: 'not-opted-in' }],
    ['pod disabled while its Deployment is enabled → allow', () => running({ 'lazarus.dev/restore': 'disabled' }), {}, {}, { verdict: 'allow', reason: 'not-opted-in' }],
    ['pod gone → allow (the eviction answers 404 itself)', () => undefined, {}, {}, { verdict: 'allow', reason: 'pod-gone' }],
    ['pod being deleted → allow', () => running(undefined, { deletionTimestamp: at(NOW) }), {}, {}, { verdict: 'allow', reason: 'deleting' }],
    ['requested and within the timeout → 429 without writing again', () => running(held(`requested ${at(HELD + SECOND)}`)), {}, {}, { verdict: 'hold', reason: 'in-progress', heldSince: HELD }],
    ['`now` not accepted yet → 429 without writing', () => running(held('now')), {}, {}, { verdict: 'hold', reason: 'in-progress' }],
    ['taken, agent not done yet (Pending) → 429', () => running(held(`taken ${at(HELD + 3 * SECOND)}: app=/x on node node-1`)), { checkpoints: [fresh('Pending')] }, {}, { verdict: 'hold', reason: 'in-progress' }],
    ['taken + a Ready checkpoint of every container since the hold → allow', () => running(held(`taken ${at(HELD + 3 * SECOND)}: app=/x`)), { checkpoints: [fresh('Ready')] }, {}, { verdict: 'allow', reason: 'fresh-checkpoint' }],
    ['a Ready checkpoint older than the hold does not count → 429', () => running(held(`taken ${at(HELD + 3 * SECOND)}: app=/x`)), { checkpoints: [fresh('Ready', at(HELD - SECOND))] }, {}, { verdict: 'hold' }],
    ['a Ready checkpoint of another pod does not count → 429', () => running(held(`requested ${at(HELD)}`)), { checkpoints: [fresh('Ready', undefined, { sourcePod: 'web-7d9c-other' })] }, {}, { verdict: 'hold' }],
    ['timeout (60s, the boundary) → allow with a warning', () => running(held(`requested ${at(HELD)}`)), {}, { now: HELD + 60 * SECOND }, { verdict: 'allow', reason: 'timeout' }],
    ['one millisecond before the timeout → 429', () => running(held(`requested ${at(HELD)}`)), {}, { now: HELD + 60 * SECOND - 1 }, { verdict: 'hold' }],
    ['the policy\'s evictionTimeout sets the bound', () => running(held(`requested ${at(HELD)}`)), { policies: [policy('fast', { checkpoint: { evictionTimeout: '5s' } })] }, {}, { verdict: 'allow', reason: 'timeout' }],
    ['failed answer → allow with a warning', () => running(held(`failed ${at(HELD + SECOND)}: app: node node-1: 500 criu failed`)), {}, {}, { verdict: 'allow', reason: 'checkpoint-failed' }],
    ['a Failed Checkpoint taken for the hold → allow with a warning', () => running(held(`taken ${at(HELD + 3 * SECOND)}: app=/x`)), { checkpoints: [fresh('Failed')] }, {}, { verdict: 'allow', reason: 'checkpoint-failed' }],
    ['pod Pending (not checkpointable) → allow with a warning', () => ({ ...running(), status: { phase: 'Pending' } }), {}, {}, { verdict: 'allow', reason: 'not-checkpointable' }],
    ['excluded namespace → allow', () => running(), {}, {}, { verdict: 'allow', reason: 'excluded' }],
  ])('%s', (name, pod, data, opts, expected) => {
    const p = pod();
    const d = decide(p, data, { ...opts, ...(name.startsWith('excluded') ? { namespace: 'lazarus-system' } : {}) });
    expect(d).toMatchObject(expected);
    if (d.verdict === 'hold') {
      expect(d.message).toContain('Lazarus is checkpointing shop/web-7d9c-abcde before its eviction, retry');
      if (!name.includes('not count')) expect(d.write).toBeUndefined();
    }
    const warns = ['timeout', 'checkpoint-failed', 'not-checkpointable'];
    if (d.verdict === 'allow') expect(d.warning !== undefined).toBe(warns.includes(d.reason));
    if (d.verdict === 'allow' && d.warning) {
      expect(d.warning).toMatchObject({ reason: 'EvictionNotHeld', pod: 'web-7d9c-abcde', workload: { kind: 'Deployment', name: 'web' } });
      expect(d.warning.message).toContain('admitted without a fresh checkpoint');
    }
  });

  it('no hold yet: requests a checkpoint and starts the hold in one patch that tests the resourceVersion → 429', () => {
    const pod = running({ other: 'kept' });
    const d = decide(pod);
    expect(d).toMatchObject({ verdict: 'hold', reason: 'requested', heldSince: NOW });
    if (d.verdict !== 'hold') throw new Error('unreachable');
    expect(d.write?.[0]).toEqual({ op: 'test', path: '/metadata/resourceVersion', value: '42' });
    expect(annotationsAfter(pod, d)).toEqual({ other: 'kept', 'lazarus.dev/checkpoint': 'now', 'lazarus.dev/eviction-held-since': at(NOW) });
    // A pod changed since the GET fails the test: the write is never applied over somebody else's.
    expect(() => jsonPatch.applyPatch({ ...structuredClone(pod), metadata: { ...pod.metadata, resourceVersion: '43' } }, d.write ?? [], true, false)).toThrow();
  });

  it('a pod without annotations gets the map added', () => {
    const pod = running();
    delete pod.metadata.annotations;
    const d = decide(pod);
    expect(annotationsAfter(pod, d)).toEqual({ 'lazarus.dev/checkpoint': 'now', 'lazarus.dev/eviction-held-since': at(NOW) });
  });

  it('a Ready checkpoint taken before the eviction does not admit it: a new hold starts', () => {
    const d = decide(running(), { checkpoints: [fresh('Ready', at(NOW - 30 * SECOND))] });
    expect(d).toMatchObject({ verdict: 'hold', reason: 'requested' });
  });

  it('a stale hold (an eviction that never happened) starts a new one', () => {
    const old = NOW - 60 * SECOND - STALE_HOLD_MS - SECOND;
    const pod = running({ 'lazarus.dev/eviction-held-since': at(old), 'lazarus.dev/checkpoint': `taken ${at(old)}: app=/x` });
    const d = decide(pod, { checkpoints: [fresh('Ready', at(old + SECOND))] });
    expect(d).toMatchObject({ verdict: 'hold', reason: 'requested', heldSince: NOW });
    expect(annotationsAfter(pod, d)?.['lazarus.dev/eviction-held-since']).toBe(at(NOW));
  });

  it('an answer older than the hold (somebody overwrote the request) asks again, keeping the hold\'s start', () => {
    const pod = running(held(`taken ${at(HELD - 600 * SECOND)}: app=/x`));
    const d = decide(pod);
    expect(d).toMatchObject({ verdict: 'hold', reason: 'requested', heldSince: HELD });
    expect(annotationsAfter(pod, d)).toEqual(held('now'));
  });

  it('every container needs its fresh Ready checkpoint', () => {
    const two = [container('app'), container('side', 'registry.example/side:1')];
    const pod = running(held(`taken ${at(HELD + 3 * SECOND)}: app=/x, side=/y`), {}, two);
    const app = fresh('Ready');
    expect(decide(pod, { checkpoints: [app] })).toMatchObject({ verdict: 'hold' });
    const side = checkpoint('web-side-1', { container: container('side', 'registry.example/side:1'), sourcePod: 'web-7d9c-abcde', takenAt: at(HELD + 4 * SECOND) });
    expect(decide(pod, { checkpoints: [app, side] })).toMatchObject({ verdict: 'allow', reason: 'fresh-checkpoint' });
  });

  it('a namesake pod\'s checkpoint (another UID) does not count', () => {
    const cp = fresh('Ready');
    cp.metadata.labels = { 'lazarus.dev/source-pod-uid': 'uid-of-a-predecessor' };
    expect(decide(running(held(`requested ${at(HELD)}`)), { checkpoints: [cp] })).toMatchObject({ verdict: 'hold' });
    cp.metadata.labels = { 'lazarus.dev/source-pod-uid': 'uid-1' };
    expect(decide(running(held(`requested ${at(HELD)}`)), { checkpoints: [cp] })).toMatchObject({ verdict: 'allow', reason: 'fresh-checkpoint' });
  });

  it('dryRun never writes: a would-be hold is admitted with a message, failures raise no Event', () => {
    const d = decide(running(), {}, { dryRun: true });
    expect(d).toMatchObject({ verdict: 'allow', reason: 'dry-run' });
    expect(d.message).toContain('a real eviction would be held');
    expect('write' in d).toBe(false);
    const timedOut = decide(running(held(`requested ${at(HELD)}`)), {}, { dryRun: true, now: HELD + 61 * SECOND });
    expect(timedOut).toMatchObject({ verdict: 'allow', reason: 'timeout' });
    expect(timedOut.verdict === 'allow' && timedOut.warning).toBeFalsy();
  });

  it('a bare pod opted in by its own annotation: held, and its warning names the pod as the workload', () => {
    const pod = bare({ 'lazarus.dev/restore': 'enabled' });
    const first = decide(pod);
    expect(first).toMatchObject({ verdict: 'hold', reason: 'requested' });
    const bareHeld = bare({ 'lazarus.dev/restore': 'enabled', ...held(`failed ${at(HELD)}: pod shop/solo: container app is not running`) });
    const d = decide(bareHeld);
    expect(d).toMatchObject({ verdict: 'allow', reason: 'checkpoint-failed', warning: { pod: 'solo', workload: { kind: 'Pod', name: 'solo' } } });
    const cp = checkpoint('solo-app-1', { workload: { kind: 'Pod', name: 'solo' }, sourcePod: 'solo', takenAt: at(HELD + SECOND) });
    expect(decide(bare({ 'lazarus.dev/restore': 'enabled', ...held(`taken ${at(HELD)}: app=/x`) }), { checkpoints: [cp] })).toMatchObject({ verdict: 'allow', reason: 'fresh-checkpoint' });
  });
});
