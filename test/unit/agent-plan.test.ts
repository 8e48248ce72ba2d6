/**
 * Issue 13 points 6, 7 and 9 as pure decisions of the agent: names unique per source pod, a 409
 * never adopting another pod's Checkpoint, a recreated pod never lending its spec hash to an old
 * archive, and the spec hash the webhook stamped at admission winning over the running pod's.
 */
import { adoptionRefusal, checkpointName, checkpointObject, imageRefFor, podTag, sourcePodMismatch, type CheckpointInput } from '../../agent/plan.js';
import { parseImageRef } from '../../agent/registry.js';
import { podContainerSpecHash, specHash, specHashesAnnotation } from '../../api/spec-hash.js';
import type { Container, Pod } from '../../api/types.js';

const W = { kind: 'Deployment' as const, name: 'web' };
const T = '2026-11-27T12:00:00.5Z';
const UID_A = '1b2c3d4e-0000-4000-8000-000000000001';
const UID_B = '9f8e7d6c-0000-4000-8000-000000000002';

describe('names and tags are unique per source pod (point 6)', () => {
  it('two replicas checkpointed in the same second get different Checkpoint names and image tags', () => {
    const a = podTag({ name: 'web-7d9c-abcde', uid: UID_A });
    const b = podTag({ name: 'web-7d9c-fghij', uid: UID_B });
    expect(a).toBe('1b2c3d4e');
    expect(checkpointName(W, 'app', T, a)).not.toBe(checkpointName(W, 'app', T, b));
    expect(imageRefFor('reg.test/lz', 'shop', W, 'app', T, a)).not.toBe(imageRefFor('reg.test/lz', 'shop', W, 'app', T, b));
  });

  it('a pod seen without a UID is told apart by a hash of its name', () => {
    expect(podTag({ name: 'web-0' })).toMatch(/^[0-9a-f]{8}$/);
    expect(podTag({ name: 'web-0' })).not.toBe(podTag({ name: 'web-1' }));
  });

  it('stays a DNS-1123 subdomain of at most 253 characters and a valid tag, even for long names', () => {
    const long = { kind: 'StatefulSet' as const, name: 'w'.repeat(240) };
    const name = checkpointName(long, 'c'.repeat(60), T, podTag({ uid: UID_A }));
    expect(name.length).toBeLessThanOrEqual(253);
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(name).not.toBe(checkpointName(long, 'c'.repeat(60), T, podTag({ uid: UID_B })));
    const ref = parseImageRef(imageRefFor('reg.test/lz', 'shop', long, 'c'.repeat(60), T, podTag({ uid: UID_A })));
    expect(ref.tag).toBe('20261127t120000z-1b2c3d4e');
  });
});

describe('a name conflict adopts only the same source pod\'s Checkpoint (point 6)', () => {
  const input = (sourcePod: string, uid?: string, container = 'app'): CheckpointInput => ({
    name: 'web-app-20261127t120000z-1b2c3d4e', namespace: 'shop', workload: W, container, sourcePod,
    image: `reg.test/lz/shop/web-app@sha256:${'a'.repeat(64)}`, baseImage: 'web:1.4', specHash: '0123456789abcdef', takenAt: T,
    origin: { node: 'n', architecture: 'amd64', kernelVersion: '6.8', criuVersion: 40101, runtime: 'cri-o://1.33.2', cgroup: 'v2', cpuFlags: [] },
    ...(uid ? { sourcePodUid: uid } : {}),
  });
  it.each([
    ['the same pod and UID (a retry of the same archive): adopted', input('web-a', UID_A), undefined],
    ['the same pod name with another UID (recreated): refused', input('web-a', UID_B), /not overwriting it/],
    ['another pod: refused', input('web-b', UID_B), /already exists for pod web-b .*not overwriting it with pod web-a's/],
    ['another container: refused', input('web-a', UID_A, 'side'), /not overwriting/],
    ['an existing one without a UID label: refused', input('web-a'), /uid unknown/],
  ])('%s', (_name, existingInput, refusal) => {
    const existing = checkpointObject(existingInput);
    const desired = checkpointObject(input('web-a', UID_A));
    const answer = adoptionRefusal(existing, desired);
    if (refusal === undefined) expect(answer).toBeUndefined();
    else expect(answer).toMatch(refusal);
  });

  it('the source pod UID is recorded as a label', () => {
    expect(checkpointObject(input('web-a', UID_A)).metadata.labels?.['lazarus.dev/source-pod-uid']).toBe(UID_A);
  });
});

describe('the pod found by name must be the archive\'s pod (point 7)', () => {
  const pod = (uid: string | undefined, created = '2026-11-27T11:00:00Z'): Pod => ({
    metadata: { name: 'web-0', namespace: 'shop', creationTimestamp: created, ...(uid ? { uid } : {}) },
    spec: { containers: [] },
  });
  it.each([
    ['same UID', { podUid: UID_A }, pod(UID_A), undefined],
    ['recreated: another UID', { podUid: UID_A }, pod(UID_B), /recreated before its checkpoint was processed \(the archive's pod UID is 1b2c3d4e.*now 9f8e7d6c/],
    ['no UID in the archive, container created after the pod', { createdTime: '2026-11-27T11:00:05Z' }, pod(UID_B), undefined],
    ['no UID in the archive, container created within the clock-skew allowance', { createdTime: '2026-11-27T10:59:30Z' }, pod(UID_B), undefined],
    ['no UID in the archive, container created an hour before the pod', { createdTime: '2026-11-27T10:00:00Z' }, pod(UID_B), /container was created at 2026-11-27T10:00:00Z, the pod at 2026-11-27T11:00:00Z/],
    ['no UID and no times anywhere: matched by name', {}, pod(undefined, ''), undefined],
  ])('%s', (_name, archive, p, reason) => {
    const answer = sourcePodMismatch(archive, p);
    if (reason === undefined) expect(answer).toBeUndefined();
    else expect(answer).toMatch(reason);
  });
});

describe('the spec hash stamped at admission wins over the running pod\'s (point 9)', () => {
  const admitted: Container = { name: 'app', image: 'web:1.4', env: [{ name: 'MODE', value: 'prod' }] };
  const injected: Container = { ...admitted, env: [...(admitted.env ?? []), { name: 'INJECTED', value: '1' }], volumeMounts: [{ name: 'mesh', mountPath: '/mesh' }] };
  const stamped = (containers: Container[], value = specHashesAnnotation(containers)): Pod['metadata'] => ({ annotations: { 'lazarus.dev/spec-hashes': value } });

  it('a container changed by a webhook after Lazarus hashes as admitted', () => {
    expect(specHash(injected)).not.toBe(specHash(admitted));
    expect(podContainerSpecHash({ metadata: stamped([admitted]) }, injected)).toEqual({ hash: specHash(admitted), source: 'admission' });
  });

  it('without the stamp (admitted while the webhook was down) the running pod is hashed, with its original image', () => {
    const restored: Container = { ...admitted, image: `reg.test/lz@sha256:${'1'.repeat(64)}` };
    expect(podContainerSpecHash({ metadata: { annotations: { 'lazarus.dev/original-images': 'app=web:1.4' } } }, restored))
      .toEqual({ hash: specHash(admitted), source: 'running pod' });
  });

  it('a malformed stamp is not trusted', () => {
    expect(podContainerSpecHash({ metadata: stamped([admitted], 'app=../../etc') }, injected)).toEqual({ hash: specHash(injected), source: 'running pod' });
  });

  it.each([
    ['generation 1: as admitted', { generation: 1 }, 'admission'],
    ['no generation (Kubernetes before 1.33)', {}, 'admission'],
    ['generation 2: the image was changed in place, the stamp names the old version', { generation: 2 }, 'running pod'],
    ['generation 2 while terminating: graceful deletion counts one', { generation: 2, deletionTimestamp: '2026-11-27T12:00:00Z' }, 'admission'],
    ['generation 3 while terminating: changed, then deleted', { generation: 3, deletionTimestamp: '2026-11-27T12:00:00Z' }, 'running pod'],
  ])('%s', (_name, meta, source) => {
    expect(podContainerSpecHash({ metadata: { ...stamped([admitted]), ...meta } }, injected).source).toBe(source);
  });

  it('each container takes its own stamped hash', () => {
    const side: Container = { name: 'side', image: 'side:1' };
    const meta = stamped([admitted, side]);
    expect(podContainerSpecHash({ metadata: meta }, side).hash).toBe(specHash(side));
    expect(podContainerSpecHash({ metadata: meta }, injected).hash).toBe(specHash(admitted));
  });
});
