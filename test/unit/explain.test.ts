import { explainPod, formatExplanation } from '../../explain/explain.js';
import { specHash } from '../../api/spec-hash.js';
import type { Checkpoint, Pod } from '../../api/types.js';
import { HOUR, MINUTE, NOW, ORIGIN, REGISTRY, ago, checkpoint, container, node, rsPod, view } from '../support/builders.js';

const NODES = [node('node-good'), node('node-arm', { arch: 'arm64' }), node('node-old', { criu: 31701 })];
const explain = (pod: Pod, checkpoints: Checkpoint[], ns = 'shop') =>
  explainPod({ ...pod, metadata: { ...pod.metadata, name: 'web-7d9c-xyz' } }, ns, view({ checkpoints, nodes: NODES }), NODES, NOW, new Set(['kube-system', 'lazarus-system']), REGISTRY);

/** The pod as the webhook restored it from `cp`. */
function restoredPod(cp: Checkpoint): Pod {
  const pod = rsPod([{ ...container(), image: cp.spec.image }], 'web-7d9c', {
    'lazarus.dev/restored-from': `app=${cp.metadata.name ?? ''}`, 'lazarus.dev/original-images': 'app=registry.example/web:1.4',
    'lazarus.dev/origin-node': ORIGIN.node, 'lazarus.dev/origin-arch': 'amd64', 'lazarus.dev/origin-kernel': ORIGIN.kernelVersion,
    'lazarus.dev/origin-criu': '4.1.1', 'lazarus.dev/origin-runtime': ORIGIN.runtime, 'lazarus.dev/origin-cpu-flags': ORIGIN.cpuFlags.join(' '),
  });
  return pod;
}

function s390xCheckpoint(): Checkpoint {
  const cp = checkpoint('cp');
  cp.spec.origin.architecture = 's390x';
  return cp;
}

describe('explainPod: every checkpoint of the workload, and why it is (not) usable', () => {
  it.each([
    ['Ready, fresh, same spec hash', checkpoint('cp', {}), ''],
    ['Failed, with the runtime\'s reason', { ...checkpoint('cp', { phase: 'Failed' }), status: { phase: 'Failed' as const, reason: 'criu: restore failed' } }, 'not Ready (Failed: criu: restore failed)'],
    ['Pending', checkpoint('cp', { phase: 'Pending' }), 'not Ready (Pending)'],
    ['older than maxCheckpointAge (24h)', checkpoint('cp', { takenAt: ago(25 * HOUR) }), 'older than maxCheckpointAge 24h'],
    ['exactly maxCheckpointAge old', checkpoint('cp', { takenAt: ago(24 * HOUR) }), ''],
    ['another spec hash', checkpoint('cp', { specHash: '0123456789abcdef' }), `spec hash 0123456789abcdef is not the pod's ${specHash(container())}: the container changed since`],
    ['a foreign registry (issue 13)', { ...checkpoint('cp'), spec: { ...checkpoint('cp').spec, image: `evil.example/x@sha256:${'a'.repeat(64)}` } },
      `not trusted: image evil.example/x@sha256:${'a'.repeat(64)} is not under the trusted registry prefix ${REGISTRY}/ (Lazarus restores only digest references under ${REGISTRY}/)`],
    ['a tag only (issue 13)', { ...checkpoint('cp'), spec: { ...checkpoint('cp').spec, image: `${REGISTRY}/shop/web-app:v1` } },
      `not trusted: image ${REGISTRY}/shop/web-app:v1 is not a digest reference (…@sha256:<64 hex>) (Lazarus restores only digest references under ${REGISTRY}/)`],
  ])('%s', (_name, cp, unusable) => {
    const e = explain(rsPod(), [cp]);
    expect(e.checkpoints).toEqual([expect.objectContaining({ name: 'cp', unusable, chosen: unusable === '' })]);
  });

  it('newest first; the webhook picks the newest usable one, and its origin judges the nodes', () => {
    const e = explain(rsPod(), [checkpoint('older', { takenAt: ago(2 * HOUR) }), checkpoint('newest', { takenAt: ago(MINUTE), phase: 'Failed' }), checkpoint('newer', { takenAt: ago(HOUR) })]);
    expect(e.checkpoints.map((c) => [c.name, c.age, c.chosen])).toEqual([['newest', '1m', false], ['newer', '1h', true], ['older', '2h', false]]);
    expect(e.wouldRestore).toMatchObject({ outcome: 'restored', checkpoints: { app: 'newer' } });
    expect(e.nodes.map((n) => [n.node, n.compatible])).toEqual([['node-good', true], ['node-arm', false], ['node-old', false]]);
  });

  it('without a checkpoint there are no node verdicts (any node can run it cold)', () => {
    const e = explain(rsPod(), []);
    expect(e).toMatchObject({ origin: undefined, nodes: [], checkpoints: [], wouldRestore: { outcome: 'cold', reason: 'no checkpoint of Deployment web container app' } });
    const text = formatExplanation(e);
    expect(text).toContain('checkpoints of Deployment/web: none in this namespace');
    expect(text).toContain('nodes: no checkpoint to restore, so any node can run it cold');
  });

  it('an untrusted checkpoint: the webhook would start the pod cold, and says which image and prefix', () => {
    const foreign = { ...checkpoint('cp'), spec: { ...checkpoint('cp').spec, image: `evil.example/x@sha256:${'a'.repeat(64)}` } };
    const e = explain(rsPod(), [foreign]);
    expect(e.wouldRestore).toMatchObject({ outcome: 'cold', reason: expect.stringMatching(/^checkpoint cp of Deployment web container app is not trusted: image evil\.example\/x@sha256:a{64} is not under the trusted registry prefix registry\.example\/lazarus\//) });
    expect(formatExplanation(e)).toContain('started cold; created now, the webhook would start it cold: checkpoint cp of Deployment web container app is not trusted');
  });

  it.each<[string, Record<string, string>, string]>([
    ['the Deployment says disabled, its ReplicaSet still carries the old enabled copy', { 'lazarus.dev/restore': 'disabled' }, 'opted out: lazarus.dev/restore=disabled on Deployment web'],
    ['the annotation was removed from the Deployment, its ReplicaSet still carries it', {}, 'not opted in: not opted in (lazarus.dev/restore not set and the default policy has mode OptIn)'],
  ])('opt-in: %s (issue 13, point 3)', (_name, deploymentAnnotations, line) => {
    const owners = {
      ReplicaSet: { 'shop/web-7d9c': { annotations: { 'lazarus.dev/restore': 'enabled' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } },
      Deployment: { 'shop/web': { annotations: deploymentAnnotations } },
    };
    const e = explainPod({ ...rsPod(), metadata: { ...rsPod().metadata, name: 'web-7d9c-xyz' } }, 'shop', view({ checkpoints: [checkpoint('cp')], nodes: NODES, owners }), NODES, NOW, undefined, REGISTRY);
    expect(e.optIn.enabled).toBe(false);
    expect(e.wouldRestore?.outcome).toBe('skipped');
    expect(formatExplanation(e)).toContain(`policy: (built-in defaults); ${line}`);
  });

  it('an excluded namespace is what the webhook says first', () => {
    expect(explain(rsPod(), [checkpoint('cp', { namespace: 'kube-system' })], 'kube-system').wouldRestore).toEqual({ outcome: 'skipped', reason: 'namespace kube-system is excluded' });
  });

  it('a restored pod: its spec hash is that of the original image, its checkpoint is marked', () => {
    const cp = checkpoint('web-app-1');
    const e = explain(restoredPod(cp), [cp]);
    expect(e.specHashes).toEqual({ app: specHash(container()) });
    expect(e.checkpoints).toEqual([expect.objectContaining({ name: 'web-app-1', chosen: true, unusable: '' })]);
    expect(formatExplanation(e).split('\n')).toContain('  ✔ app web-app-1  Ready, taken 4m ago on node-7: restored from this');
  });

  it.each([
    ['eviction', '(eviction held for it)'], ['drain', '(node cordoned)'], ['interval', '(periodic)'], ['demand', '(on demand)'],
  ] as const)('says which path took the checkpoint it restored from (status.trigger %s)', (trigger, words) => {
    const cp = checkpoint('web-app-1');
    cp.status = { ...cp.status, phase: 'Ready', trigger };
    expect(formatExplanation(explain(restoredPod(cp), [cp])).split('\n')).toContain(`  ✔ app web-app-1  Ready, taken 4m ago on node-7 ${words}: restored from this`);
  });

  it('a restored pod whose checkpoint was deleted since says so', () => {
    const e = explain(restoredPod(checkpoint('web-app-1')), []);
    expect(formatExplanation(e)).toContain('restored from: app ← web-app-1 (checkpoint no longer exists)');
  });

  it.each([
    ['restored', [checkpoint('cp')], 'started cold; created now, the webhook would restore it: restored from web-7d9c-abcde'],
    ['cold', [s390xCheckpoint()], 'started cold; created now, the webhook would start it cold: no Ready node can restore'],
  ])('a pod that was not restored: what the webhook would do now (%s)', (_name, cps, line) => {
    expect(formatExplanation(explain(rsPod(), cps))).toContain(line);
  });
});

describe('explainPod: why a node is not restore-capable', () => {
  const REASON = 'containerd 2.3.7: restore via CreateContainer is off (enable_experimental_restore_via_create is not set); set enable_experimental_restore_via_create = true under [plugins.\'io.containerd.cri.v1.runtime\'] in /etc/containerd/config.toml';
  const nodes = [
    node('node-off', { capable: false, capableReason: REASON }),
    node('node-silent', { capable: false }),
    node('node-on', { capableReason: 'restore enabled (CRI-O 1.33.2, container_level_enabled = "checkpoint_restore")' }),
  ];
  const e = explainPod({ ...rsPod(), metadata: { ...rsPod().metadata, name: 'web-7d9c-xyz' } }, 'shop', view({ checkpoints: [checkpoint('cp')], nodes }), nodes, NOW, undefined, REGISTRY);
  const verdict = (name: string) => e.nodes.find((n) => n.node === name);

  it.each([
    ['the agent\'s reason replaces the bare label test', 'node-off', [`node is not restore-capable: ${REASON}`]],
    ['without the annotation (no agent, or an older one) the label test stays', 'node-silent', [expect.stringMatching(/^node is not restore-capable \(lazarus.dev\/restore-capable is not "true"/)]],
    ['a capable node has no reason to show', 'node-on', []],
  ])('%s', (_name, n, reasons) => expect(verdict(n)?.reasons).toEqual(reasons));

  it('is printed on the node\'s line', () => {
    expect(formatExplanation(e)).toMatch(new RegExp(`✘ node-off +node is not restore-capable: containerd 2\\.3\\.7: restore via CreateContainer is off`));
  });
});
