import { generateMaterial, servingNames, type Identity, type Material } from '../../certs/generate.js';
import { assess, pairProblems, type Assessment, type Loose } from '../../certs/inspect.js';
import { testEntropy } from './certs-helpers.js';

const H = 3_600_000;
const M = 60_000;
const id: Identity = { service: 'wh', namespace: 'ns' };
const names = servingNames(id);
const t0 = Date.parse('2026-11-27T12:00:00Z');

let good: Material;
let other: Material;
let oldCa: Material; // a CA that has expired by t0

beforeAll(async () => {
  good = await generateMaterial(id, { caLifetimeMs: 3 * H, certLifetimeMs: 1 * H }, testEntropy({ now: t0 }));
  other = await generateMaterial(id, { caLifetimeMs: 3 * H, certLifetimeMs: 1 * H }, testEntropy({ now: t0 }));
  oldCa = await generateMaterial(id, { caLifetimeMs: 1 * H, certLifetimeMs: 1 * H }, testEntropy({ now: t0 - 2 * H }));
});

type Row = [string, () => Loose<Material>, number, Assessment['kind'], RegExp | undefined];
const rows: Row[] = [
  ['fresh material', () => good, t0, 'ok', undefined],
  ['the serving cert with more than a third left', () => good, t0 + 39 * M, 'ok', undefined],
  ['the serving cert with less than a third left', () => good, t0 + 41 * M, 'renew-cert', /less than a third/],
  ['an expired serving cert', () => good, t0 + 61 * M, 'renew-cert', /expire/],
  ['the CA with less than a third left', () => good, t0 + 2 * H + M, 'rotate-ca', /CA expires/],
  ['an expired CA', () => good, t0 + 3 * H + M, 'new-ca', /the CA expired/],
  ['an empty Secret', () => ({}), t0, 'new-ca', /ca.crt is missing/],
  ['garbage in ca.crt', () => ({ ...good, ca: 'hello' }), t0, 'new-ca', /ca.crt is unreadable/],
  ['garbage between PEM markers', () => ({ ...good, ca: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }), t0, 'new-ca', /ca.crt is unreadable/],
  ['garbage in ca.key', () => ({ ...good, caKey: 'nope' }), t0, 'new-ca', /ca.key is unreadable/],
  ['a CA key of another CA', () => ({ ...good, caKey: other.caKey }), t0, 'new-ca', /does not match/],
  ['a serving cert as the CA', () => ({ ...good, ca: good.cert, caKey: good.key }), t0, 'new-ca', /not a CA/],
  ['a missing tls.key', () => ({ ...good, key: undefined }), t0, 'renew-cert', /tls.key is missing/],
  ['garbage in tls.crt', () => ({ ...good, cert: 'x' }), t0, 'renew-cert', /tls.crt is unreadable/],
  ['a tls.key that does not match', () => ({ ...good, key: other.key }), t0, 'renew-cert', /does not match tls.crt/],
  ['a serving cert from another CA', () => ({ ...good, cert: other.cert, key: other.key }), t0, 'renew-cert', /not signed by the CA/],
  ['an expired old CA still in the bundle', () => ({ ...good, ca: good.ca + oldCa.ca }), t0, 'prune', /expired CA/],
];

describe('assess', () => {
  it.each(rows)('%s', (_what, material, now, kind, reason) => {
    const a = assess(material(), now, names);
    expect(a.kind).toBe(kind);
    if (reason) expect(a.kind === 'ok' ? '' : a.reasons.join(' ')).toMatch(reason);
  });

  it('asks for a new serving cert when a name is added', () => {
    const a = assess(good, t0, servingNames({ ...id, dnsNames: ['new.example'], ips: ['10.1.2.3'] }));
    expect(a).toEqual({ kind: 'renew-cert', reasons: ['tls.crt does not cover new.example, 10.1.2.3'], keep: names });
  });

  it('reports when the next renewal is due: two thirds into the serving cert', () => {
    const a = assess(good, t0, names);
    expect(a.kind === 'ok' ? a.renewAt : 0).toBe(t0 + 40 * M);
  });
});

describe('pairProblems (files)', () => {
  it.each([
    ['a good pair', () => [good.cert, good.key], t0, []],
    ['a mismatched pair', () => [good.cert, other.key], t0, ['key does not match the certificate']],
    ['an expired certificate', () => [good.cert, good.key], t0 + 2 * H, [expect.stringMatching(/^certificate expired at/)]],
    ['an unreadable certificate', () => ['junk', good.key], t0, [expect.stringMatching(/^certificate is unreadable/)]],
    ['an unreadable key', () => [good.cert, 'junk'], t0, [expect.stringMatching(/^key is unreadable/)]],
  ])('%s', (_what, pair, now, problems) => {
    const [cert, key] = pair();
    expect(pairProblems(cert ?? '', key ?? '', now)).toEqual(problems);
  });
});
