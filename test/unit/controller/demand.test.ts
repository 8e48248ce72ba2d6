import { formatAnswer, formatTime, parseAnswer, type CheckpointAnswer } from '../../../api/checkpoint-request.js';
import { effectivePolicy } from '../../../api/policy.js';
import type { EffectivePolicy } from '../../../api/types.js';
import type { OwnerKind, OwnerView } from '../../../api/workload.js';
import { askedSubjects, intake, planDemand, summarize, workloadPods, type DemandItem, type DemandSubject, type ItemResult } from '../../../controller/demand.js';
import { answerPatch, subjectPath } from '../../../controller/kube-io.js';
import type { PodView, PolicyView } from '../../../controller/targets.js';

const T = Date.parse('2026-12-06T03:40:02Z');

describe('lazarus.dev/checkpoint grammar', () => {
  it.each<{ name: string; value: string; want: CheckpointAnswer | undefined }>([
    { name: 'now', value: 'now', want: { state: 'now' } },
    { name: 'requested', value: 'requested 2026-12-06T03:40:02Z', want: { state: 'requested', at: T } },
    { name: 'taken, detail with colons and commas', value: 'taken 2026-12-06T03:40:02Z: app=/var/lib/kubelet/checkpoints/a.tar, b=c: d', want: { state: 'taken', at: T, detail: 'app=/var/lib/kubelet/checkpoints/a.tar, b=c: d' } },
    { name: 'failed', value: 'failed 2026-12-06T03:40:02Z: not opted in', want: { state: 'failed', at: T, reason: 'not opted in' } },
    { name: 'fractional seconds are read', value: 'requested 2026-12-06T03:40:02.5Z', want: { state: 'requested', at: T + 500 } },
    { name: 'case matters: Now is not a request', value: 'Now', want: undefined },
    { name: 'empty', value: '', want: undefined },
    { name: 'now with spaces', value: ' now', want: undefined },
    { name: 'requested without a time', value: 'requested', want: undefined },
    { name: 'taken without the colon', value: 'taken 2026-12-06T03:40:02Z', want: undefined },
    { name: 'a time that is no date', value: 'requested 2026-13-45T03:40:02Z', want: undefined },
    { name: 'a local time', value: 'requested 2026-12-06T03:40:02+01:00', want: undefined },
  ])('parse: $name', ({ value, want }) => {
    expect(parseAnswer(value)).toEqual(want);
  });

  it.each<{ name: string; answer: CheckpointAnswer; text: string }>([
    { name: 'requested: whole seconds', answer: { state: 'requested', at: T + 999 }, text: 'requested 2026-12-06T03:40:02Z' },
    { name: 'taken', answer: { state: 'taken', at: T, detail: 'app=x' }, text: 'taken 2026-12-06T03:40:02Z: app=x' },
    { name: 'failed: one line', answer: { state: 'failed', at: T, reason: 'criu said:\n  no\n' }, text: 'failed 2026-12-06T03:40:02Z: criu said: no' },
    { name: 'failed: bounded', answer: { state: 'failed', at: T, reason: 'x'.repeat(2000) }, text: `failed 2026-12-06T03:40:02Z: ${'x'.repeat(997)}...` },
  ])('format: $name, and parse gives it back', ({ answer, text }) => {
    expect(formatAnswer(answer)).toBe(text);
    expect(formatAnswer(parseAnswer(text) ?? { state: 'now' })).toBe(text);
  });

  it('formatTime truncates to the second', () => {
    expect(formatTime(T + 1)).toBe('2026-12-06T03:40:02Z');
  });
});

describe('intake: only `now` asks for work', () => {
  it.each([
    { name: 'now: claim', value: 'now', pending: false, answered: undefined, want: 'claim' },
    { name: 'now while working on it: wait (the answer is dropped, then it is claimed anew)', value: 'now', pending: true, answered: undefined, want: 'ignore' },
    { name: 'requested, nobody working: adopt (a previous leader accepted it)', value: 'requested 2026-12-06T03:40:02Z', pending: false, answered: undefined, want: 'adopt' },
    { name: 'requested, working on it: ignore', value: 'requested 2026-12-06T03:40:02Z', pending: true, answered: undefined, want: 'ignore' },
    { name: 'requested, answered by us already (lagging cache): ignore', value: 'requested 2026-12-06T03:40:02Z', pending: false, answered: 'requested 2026-12-06T03:40:02Z', want: 'ignore' },
    { name: 'requested, an older one answered: adopt', value: 'requested 2026-12-06T03:40:02Z', pending: false, answered: 'requested 2026-12-06T03:00:00Z', want: 'adopt' },
    { name: 'taken: the answer never re-triggers', value: 'taken 2026-12-06T03:40:02Z: app=x', pending: false, answered: undefined, want: 'ignore' },
    { name: 'failed: the answer never re-triggers', value: 'failed 2026-12-06T03:40:02Z: no', pending: false, answered: undefined, want: 'ignore' },
    { name: 'not in the grammar: reject with a hint', value: 'yes please', pending: false, answered: undefined, want: 'reject' },
  ])('$name', ({ value, pending, answered, want }) => {
    const got = intake(value, { pending, answered });
    expect(got.action).toBe(want);
    if (got.action === 'adopt') expect(got.requestedAt).toBe(T);
    if (got.action === 'reject') expect(got.reason).toBe(`"${value}" is not a request: set lazarus.dev/checkpoint=now`);
  });
});

// ---- which pods and containers ----------------------------------------------------------------

function pod(name: string, extra: Partial<PodView> = {}): PodView {
  return {
    namespace: 'shop', name, uid: `uid-${name}`, nodeName: 'n1', phase: 'Running', deleting: false,
    labels: { 'pod-template-hash': '7d9c' },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9c', controller: true }],
    containers: ['app'], containerStatuses: [{ name: 'app', state: { running: {} } }],
    ...extra,
  };
}

function view(owners: Record<string, OwnerView>, spec: Parameters<typeof effectivePolicy>[0]['spec'] = {}): PolicyView {
  const policies: EffectivePolicy[] = [effectivePolicy({ metadata: { name: 'p' }, spec: { checkpoint: { timeoutSeconds: 42 }, ...spec } })];
  return {
    policies: () => policies, namespaceLabels: () => ({}),
    owners: { get: (kind: OwnerKind, ns: string, name: string) => owners[`${kind}/${ns}/${name}`] },
  };
}

const OWNERS: Record<string, OwnerView> = {
  'ReplicaSet/shop/web-7d9c': { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] },
  'Deployment/shop/web': { annotations: { 'lazarus.dev/restore': 'enabled' } },
  'Deployment/shop/off': {},
  'StatefulSet/shop/db': { annotations: { 'lazarus.dev/restore': 'enabled' } },
  'ReplicaSet/shop/bare': { annotations: { 'lazarus.dev/restore': 'enabled' } },
};

const sub = (kind: DemandSubject['kind'], name: string): DemandSubject => ({ kind, namespace: 'shop', name });
const summary = (plan: ReturnType<typeof planDemand>): string[] | string =>
  'error' in plan ? plan.error : plan.items.map((i) => (i.target ? `${i.pod}/${i.container}@${i.target.node}/${i.target.timeoutSeconds}s` : `${i.pod}/${i.container}: ${i.error ?? ''}`));

describe('planDemand: which containers a request covers', () => {
  const stsPod = (name: string): PodView => pod(name, { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', controller: true }] });
  const barePod = (name: string, annotations?: Record<string, string>): PodView => pod(name, { ownerReferences: [], ...(annotations ? { annotations } : {}) });
  const PODS: PodView[] = [
    pod('web-b'), pod('web-a'),
    pod('web-gone', { deleting: true }),
    pod('web-pending', { phase: 'Pending' }),
    pod('web-two', { containers: ['app', 'side'], containerStatuses: [{ name: 'app', state: { running: {} } }, { name: 'side', state: { waiting: { reason: 'CrashLoopBackOff' } } }] }),
    pod('web-optout', { annotations: { 'lazarus.dev/restore': 'disabled' } }),
    stsPod('db-0'), stsPod('db-1'),
    pod('bare-rs-1', { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'bare', controller: true }], labels: {} }),
    barePod('solo', { 'lazarus.dev/restore': 'enabled' }), barePod('loose'),
    pod('other-ns', { namespace: 'elsewhere' }),
  ];
  const pending = PODS.find((p) => p.name === 'web-pending');
  if (pending) delete pending.nodeName; // not yet scheduled

  it.each<{ name: string; subject: DemandSubject; spec?: Parameters<typeof effectivePolicy>[0]['spec']; want: string[] | string }>([
    { name: 'an opted-in pod (through its Deployment): its running container, the policy timeout', subject: sub('Pod', 'web-a'), want: ['web-a/app@n1/42s'] },
    { name: 'a bare pod opted in itself', subject: sub('Pod', 'solo'), want: ['solo/app@n1/42s'] },
    { name: 'a bare pod, OptIn policy: not opted in, with what to do', subject: sub('Pod', 'loose'), want: 'not opted in: annotate lazarus.dev/restore=enabled on the pod or its workload (lazarus.dev/restore not set and RestorePolicy p has mode OptIn)' },
    { name: 'a bare pod, policy mode All: served', subject: sub('Pod', 'loose'), spec: { mode: 'All' }, want: ['loose/app@n1/42s'] },
    { name: 'a pod that opted out under an opted-in Deployment', subject: sub('Pod', 'web-optout'), want: 'not opted in: annotate lazarus.dev/restore=enabled on the pod or its workload (lazarus.dev/restore=disabled on Pod web-optout)' },
    { name: 'a pod being deleted', subject: sub('Pod', 'web-gone'), want: 'pod web-gone is being deleted' },
    { name: 'a pod not yet on a node', subject: sub('Pod', 'web-pending'), want: 'pod web-pending is Pending and not on a node, not Running' },
    { name: 'a container not running is named', subject: sub('Pod', 'web-two'), want: ['web-two/app@n1/42s', 'web-two/side: container side is not running'] },
    { name: 'a pod that does not exist', subject: sub('Pod', 'nope'), want: 'pod nope not found' },
    { name: 'Deployment: each current pod, by name; others say why not', subject: sub('Deployment', 'web'), want: [
      'web-a/app@n1/42s', 'web-b/app@n1/42s',
      'web-optout/app: not opted in: annotate lazarus.dev/restore=enabled on the pod or its workload (lazarus.dev/restore=disabled on Pod web-optout)',
      'web-pending/app: pod web-pending is Pending and not on a node, not Running',
      'web-two/app@n1/42s', 'web-two/side: container side is not running',
    ] },
    { name: 'StatefulSet: its pods', subject: sub('StatefulSet', 'db'), want: ['db-0/app@n1/42s', 'db-1/app@n1/42s'] },
    { name: 'a bare ReplicaSet: its pods', subject: sub('ReplicaSet', 'bare'), want: ['bare-rs-1/app@n1/42s'] },
    { name: 'a Deployment not opted in', subject: sub('Deployment', 'off'), want: 'not opted in: annotate lazarus.dev/restore=enabled on the pod or its workload (lazarus.dev/restore not set and RestorePolicy p has mode OptIn)' },
    { name: 'a Deployment with no pods', subject: sub('Deployment', 'off'), spec: { mode: 'All' }, want: 'no pods of Deployment off' },
    { name: 'a workload that does not exist', subject: sub('StatefulSet', 'nope'), want: 'StatefulSet nope not found' },
  ])('$name', ({ subject, spec, want }) => {
    expect(summary(planDemand(subject, PODS, view(OWNERS, spec), T))).toEqual(want);
  });

  it('workloadPods does not change its input and sorts by name', () => {
    const before = structuredClone(PODS);
    expect(workloadPods(sub('Deployment', 'web'), PODS, view(OWNERS)).map((p) => p.name)).toEqual(['web-a', 'web-b', 'web-optout', 'web-pending', 'web-two']);
    expect(PODS).toEqual(before);
  });
});

describe('askedSubjects', () => {
  it('annotated pods and workloads; a ReplicaSet a Deployment controls is the Deployment\'s copy, not a request', () => {
    const asked = askedSubjects(
      [pod('a', { annotations: { 'lazarus.dev/checkpoint': 'now' } }), pod('b')],
      [
        { kind: 'Deployment', namespace: 'shop', name: 'web', view: { annotations: { 'lazarus.dev/checkpoint': 'now' } } },
        { kind: 'ReplicaSet', namespace: 'shop', name: 'web-7d9c', view: { annotations: { 'lazarus.dev/checkpoint': 'now' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } },
        { kind: 'ReplicaSet', namespace: 'shop', name: 'bare', view: { annotations: { 'lazarus.dev/checkpoint': 'now' } } },
        { kind: 'StatefulSet', namespace: 'shop', name: 'db', view: {} },
      ]);
    expect(asked.map((a) => `${a.subject.kind}/${a.subject.name}=${a.value}`)).toEqual(['Pod/a=now', 'Deployment/web=now', 'ReplicaSet/bare=now']);
    expect(asked[0]?.subject.uid).toBe('uid-a');
  });
});

describe('summarize: the answer', () => {
  const item = (p: string, c: string, error?: string): DemandItem => ({ key: `shop/${p}/${c}`, pod: p, container: c, ...(error ? { error } : { target: { key: `shop/${p}/${c}`, namespace: 'shop', pod: p, podUid: '', node: 'n1', container: c, startedAt: 0, intervalMs: 0, onDrain: false, timeoutSeconds: 60, maxParallelPerNode: 4 } }) });
  const ok = (paths: string[] = ['/ck/a.tar']): ItemResult => ({ ok: true, node: 'n1', paths });
  const AGENT = 'the agent on the node turns each archive into an image and a Checkpoint (Ready later)';
  it.each<{ name: string; subject: DemandSubject; items: DemandItem[]; results: Record<string, ItemResult>; want: string }>([
    { name: 'pod, all taken: archive paths, node, and that Ready comes from the agent', subject: sub('Pod', 'a'), items: [item('a', 'app'), item('a', 'side')], results: { 'shop/a/app': ok(), 'shop/a/side': ok([]) },
      want: `taken 2026-12-06T03:40:02Z: app=/ck/a.tar, side=archive written on node n1; ${AGENT}` },
    { name: 'pod, one failed: failed, naming what was taken', subject: sub('Pod', 'a'), items: [item('a', 'app'), item('a', 'side')], results: { 'shop/a/app': ok(), 'shop/a/side': { ok: false, reason: 'node n1: 500 criu failed' } },
      want: 'failed 2026-12-06T03:40:02Z: side: node n1: 500 criu failed (taken: app)' },
    { name: 'pod, a container not running', subject: sub('Pod', 'a'), items: [item('a', 'app'), item('a', 'side', 'container side is not running')], results: { 'shop/a/app': ok() },
      want: 'failed 2026-12-06T03:40:02Z: side: container side is not running (taken: app)' },
    { name: 'workload, all taken: n/n pods', subject: sub('Deployment', 'web'), items: [item('w1', 'app'), item('w2', 'app'), item('w3', 'app')], results: { 'shop/w1/app': ok(), 'shop/w2/app': ok(), 'shop/w3/app': ok() },
      want: `taken 2026-12-06T03:40:02Z: 3/3 pods (w1, w2, w3), archives on their nodes; ${AGENT}` },
    { name: 'workload, one pod failed: k/n and each reason', subject: sub('StatefulSet', 'db'), items: [item('db-0', 'app'), item('db-1', 'app'), item('db-1', 'side', 'container side is not running')], results: { 'shop/db-0/app': ok(), 'shop/db-1/app': ok() },
      want: 'failed 2026-12-06T03:40:02Z: 1/2 pods taken; db-1/side: container side is not running' },
  ])('$name', ({ subject, items, results, want }) => {
    expect(formatAnswer(summarize(subject, items, new Map(Object.entries(results)), T))).toBe(want);
  });
});

describe('answerPatch and subjectPath: the write that never clobbers a new request', () => {
  it('tests the value read, then replaces it (RFC 6902, the path from a diff)', () => {
    expect(answerPatch('now', 'requested 2026-12-06T03:40:02Z')).toEqual([
      { op: 'test', path: '/metadata/annotations/lazarus.dev~1checkpoint', value: 'now' },
      { op: 'replace', path: '/metadata/annotations/lazarus.dev~1checkpoint', value: 'requested 2026-12-06T03:40:02Z' },
    ]);
    expect(answerPatch('now', 'now')).toEqual([]);
  });
  it.each<{ subject: DemandSubject; want: string }>([
    { subject: sub('Pod', 'web-1'), want: '/api/v1/namespaces/shop/pods/web-1' },
    { subject: sub('Deployment', 'web'), want: '/apis/apps/v1/namespaces/shop/deployments/web' },
    { subject: sub('StatefulSet', 'db'), want: '/apis/apps/v1/namespaces/shop/statefulsets/db' },
    { subject: sub('ReplicaSet', 'bare'), want: '/apis/apps/v1/namespaces/shop/replicasets/bare' },
  ])('$subject.kind → $want', ({ subject, want }) => {
    expect(subjectPath(subject)).toBe(want);
  });
});
