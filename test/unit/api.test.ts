import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { canonicalJson, hashedFields, specHash } from '../../api/spec-hash.js';
import { DEFAULT_MAX_PARALLEL_PER_NODE, DEFAULT_POLICY, MAX_PARALLEL_PER_NODE, effectivePolicy, matchesSelector, parallelPerNodeProblem, selectPolicy } from '../../api/policy.js';
import { formatAge, parseDuration, DURATION_PATTERN } from '../../api/duration.js';
import { compareVersions, criuCode, criuString, parseCriuLabel, parseKernel, parseRuntime } from '../../api/versions.js';
import { policy } from '../support/builders.js';
import type { Container } from '../../api/types.js';

describe('specHash', () => {
  it('is 16 hex chars of SHA-256 over the canonical JSON of the non-empty fields', () => {
    // Computed independently: printf '{"args":["-v"],"image":"web:1"}' | sha256sum | cut -c1-16
    expect(specHash({ name: 'app', image: 'web:1', args: ['-v'], command: [], env: [] })).toBe('73648cf7ba451a3f');
  });
  it('ignores key order and fields outside the contract, keeps array order', () => {
    const a = specHash({ name: 'a', image: 'x', env: [{ name: 'A', value: '1' }], resources: { limits: {} } });
    const b = specHash({ resources: {}, env: [{ value: '1', name: 'A' }], image: 'x', name: 'b' });
    expect(a).toBe(b);
    expect(specHash({ name: 'a', image: 'x', args: ['1', '2'] })).not.toBe(specHash({ name: 'a', image: 'x', args: ['2', '1'] }));
  });
  it('uses the original image for a restored container', () => {
    expect(specHash({ name: 'a', image: 'ckpt@sha256:1' }, 'web:1')).toBe(specHash({ name: 'a', image: 'web:1' }));
  });
  it('is the hash of canonicalJson(hashedFields()), which it writes without building', () => {
    const token = { name: 'kube-api-access-x1', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true };
    for (const [c, original] of [
      [{ name: 'a', image: 'x' }, undefined],
      [{ name: 'a', image: 'ckpt@sha256:1', workingDir: '/w', envFrom: [{ configMapRef: { name: 'c' } }] }, 'web:1'],
      [{ name: 'a', image: 'x', command: ['/s'], args: ['-v'], env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }], volumeMounts: [{ name: 'd', mountPath: '/d' }, token] }, undefined],
      [{ name: 'a', image: 'x', volumeMounts: [token], workingDir: '' }, undefined],
      [{ name: 'a' }, undefined],
    ] as [Container, string | undefined][]) {
      const expected = createHash('sha256').update(canonicalJson(hashedFields(c, original))).digest('hex').slice(0, 16);
      expect(specHash(c, original)).toBe(expected);
    }
  });
  it('canonical JSON sorts keys at every level without whitespace', () => {
    expect(canonicalJson({ b: [{ z: 1, a: 2 }], a: 'x' })).toBe('{"a":"x","b":[{"a":2,"z":1}]}');
  });
});

describe('durations', () => {
  it.each([['24h', 86_400_000], ['1h30m', 5_400_000], ['90s', 90_000], ['1.5h', 5_400_000], ['250ms', 250], ['', undefined], ['24', undefined], ['1d', undefined], ['-1h', undefined]])(
    '%s → %s', (text, ms) => expect(parseDuration(text)).toBe(ms));
  it('the CRD pattern accepts exactly what parseDuration accepts', () => {
    for (const t of ['24h', '1h30m', 'h', '5x', '30m']) expect(new RegExp(DURATION_PATTERN).test(t)).toBe(parseDuration(t) !== undefined);
  });
  it.each([[45_000, '45s'], [4 * 60_000, '4m'], [192 * 60_000, '3h12m'], [53 * 3_600_000, '2d5h']])('formatAge(%s) = %s', (ms, s) => expect(formatAge(ms)).toBe(s));
});

describe('versions', () => {
  it.each([['4.1.1', 40101], ['3.17.1', 31701], ['4.1', 40100], ['v4.2.0', 40200], ['Version: 4.1.1', undefined], ['4.100.0', undefined]])('criuCode(%s) = %s', (v, c) => expect(criuCode(v)).toBe(c));
  it('round-trips', () => expect(criuString(40101)).toBe('4.1.1'));
  it.each([['40101', 40101], ['', undefined], ['4.1.1', undefined], [undefined, undefined]])('parseCriuLabel(%s)', (v, c) => expect(parseCriuLabel(v)).toBe(c));
  it('parses kernels and runtimes', () => {
    expect(parseKernel('6.8.0-45-generic')).toEqual({ major: 6, minor: 8, full: '6.8.0-45-generic' });
    expect(parseRuntime('cri-o://1.33.2')).toEqual({ name: 'cri-o', version: '1.33.2' });
    expect(parseRuntime('containerd://2.1.4')).toEqual({ name: 'containerd', version: '2.1.4' });
    expect(compareVersions('1.33.2', '1.26')).toBe(1);
    expect(compareVersions('2.1.0', '2.1')).toBe(0);
  });
});

describe('policies', () => {
  it('fills every default; a stored partial policy keeps its own values', () => {
    const p = effectivePolicy({ metadata: { name: 'p' }, spec: { compatibility: { criu: 'Exact' }, checkpoint: { retain: 5 } } });
    expect(p.spec.compatibility).toEqual({ criu: 'Exact', cpu: 'Superset', runtime: 'SameName', kernel: 'Prefer' });
    expect(p.spec.checkpoint).toMatchObject({ retain: 5, onDrain: true, timeoutSeconds: 60 });
    expect(p.maxCheckpointAgeMs).toBe(86_400_000);
    expect(DEFAULT_POLICY.spec.mode).toBe('OptIn');
  });

  it.each([
    { name: 'unset → the default', spec: {}, want: DEFAULT_MAX_PARALLEL_PER_NODE },
    { name: '1 (lower boundary)', spec: { maxParallelPerNode: 1 }, want: 1 },
    { name: '64 (upper boundary)', spec: { maxParallelPerNode: MAX_PARALLEL_PER_NODE }, want: 64 },
    { name: '0 → the default (the schema refuses it)', spec: { maxParallelPerNode: 0 }, want: DEFAULT_MAX_PARALLEL_PER_NODE },
    { name: '65 → the default', spec: { maxParallelPerNode: 65 }, want: DEFAULT_MAX_PARALLEL_PER_NODE },
    { name: '2.5 → the default', spec: { maxParallelPerNode: 2.5 }, want: DEFAULT_MAX_PARALLEL_PER_NODE },
  ])('checkpoint.maxParallelPerNode: $name', ({ spec, want }) => {
    expect(effectivePolicy({ metadata: { name: 'p' }, spec: { checkpoint: spec } }).spec.checkpoint.maxParallelPerNode).toBe(want);
  });

  it.each([
    [4, undefined],
    [0, 'spec.checkpoint.maxParallelPerNode must be a whole number from 1 to 64, got 0'],
    [-1, 'spec.checkpoint.maxParallelPerNode must be a whole number from 1 to 64, got -1'],
    ['4', 'spec.checkpoint.maxParallelPerNode must be a whole number from 1 to 64, got "4"'],
    [1.5, 'spec.checkpoint.maxParallelPerNode must be a whole number from 1 to 64, got 1.5'],
  ])('parallelPerNodeProblem(%p)', (value, problem) => expect(parallelPerNodeProblem(value)).toBe(problem));

  it.each([
    ['empty selector matches all', {}, { a: '1' }, true],
    ['matchLabels', { matchLabels: { a: '1' } }, { a: '1', b: '2' }, true],
    ['matchLabels mismatch', { matchLabels: { a: '1' } }, { a: '2' }, false],
    ['In', { matchExpressions: [{ key: 'a', operator: 'In' as const, values: ['1', '2'] }] }, { a: '2' }, true],
    ['In on a missing label', { matchExpressions: [{ key: 'a', operator: 'In' as const, values: ['1'] }] }, {}, false],
    ['NotIn on a missing label', { matchExpressions: [{ key: 'a', operator: 'NotIn' as const, values: ['1'] }] }, {}, true],
    ['Exists', { matchExpressions: [{ key: 'a', operator: 'Exists' as const }] }, { a: '' }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'a', operator: 'DoesNotExist' as const }] }, { a: 'x' }, false],
  ])('selector: %s', (_n, selector, labels, expected) => expect(matchesSelector(selector, labels)).toBe(expected));

  it('highest priority wins, ties go to name order, no match gives the defaults', () => {
    const a = policy('b-low', { priority: 1 });
    const b = policy('a-high', { priority: 5 });
    const c = policy('0-high', { priority: 5, namespaceSelector: { matchLabels: { tier: 'gold' } } });
    const d = policy('0-also-high', { priority: 5 });
    expect(selectPolicy([a, b], { namespaceLabels: {}, workloadLabels: {} }).name).toBe('a-high');
    expect(selectPolicy([a, b, c], { namespaceLabels: {}, workloadLabels: {} }).name).toBe('a-high');
    expect(selectPolicy([a, b, c], { namespaceLabels: { tier: 'gold' }, workloadLabels: {} }).name).toBe('0-high');
    expect(selectPolicy([b, d], { namespaceLabels: {}, workloadLabels: {} }).name).toBe('0-also-high');
    expect(selectPolicy([policy('x', { workloadSelector: { matchLabels: { app: 'db' } } })], { namespaceLabels: {}, workloadLabels: { app: 'web' } })).toBe(DEFAULT_POLICY);
  });
});

describe('CRDs match the code', () => {
  const rp = parse(readFileSync('charts/lazarus/crds/restorepolicies.yaml', 'utf8'));
  const spec = rp.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
  it('every enum and default of RestorePolicy equals api/policy.ts defaults', () => {
    const d = DEFAULT_POLICY.spec;
    expect(spec.mode.default).toBe(d.mode);
    expect(spec.placement.default).toBe(d.placement);
    expect(spec.maxCheckpointAge.default).toBe(d.maxCheckpointAge);
    for (const [k, v] of Object.entries(d.compatibility)) expect(spec.compatibility.properties[k].default).toBe(v);
    for (const [k, v] of Object.entries(d.checkpoint)) expect(spec.checkpoint.properties[k].default).toBe(v);
    expect(spec.maxCheckpointAge.pattern).toBe(DURATION_PATTERN);
    for (const [k, v] of Object.entries(d.restore)) expect(spec.restore.properties[k].default).toBe(v);
    for (const k of ['unschedulableTimeout', 'imagePullTimeout']) expect(spec.restore.properties[k].pattern).toBe(DURATION_PATTERN);
    expect(spec.checkpoint.properties.maxParallelPerNode).toMatchObject({ type: 'integer', minimum: 1, maximum: MAX_PARALLEL_PER_NODE });
    expect(spec.checkpoint.properties.evictionTimeout.pattern).toBe(DURATION_PATTERN);
  });
  it('Checkpoint has the status subresource and the printer columns of DESIGN §3', () => {
    const cp = parse(readFileSync('charts/lazarus/crds/checkpoints.yaml', 'utf8'));
    const v = cp.spec.versions[0];
    expect(v.subresources).toEqual({ status: {} });
    expect(v.additionalPrinterColumns.map((c: { name: string }) => c.name.toUpperCase())).toEqual(['WORKLOAD', 'CONTAINER', 'ORIGIN', 'CRIU', 'KERNEL', 'PHASE', 'AGE']);
  });
});

describe('specHash and the API server', () => {
  it('ignores the per-pod service-account token mount the API server injects before webhooks run', () => {
    const mount = (name: string) => ({ name, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' });
    const a = specHash({ name: 'app', image: 'web:1', volumeMounts: [mount('kube-api-access-x7k2p')] });
    const b = specHash({ name: 'app', image: 'web:1', volumeMounts: [mount('kube-api-access-q9zzt')] });
    expect(a).toBe(b);
    expect(a).toBe(specHash({ name: 'app', image: 'web:1' }));
    expect(specHash({ name: 'app', image: 'web:1', volumeMounts: [{ name: 'data', mountPath: '/data' }] })).not.toBe(a);
  });
});
