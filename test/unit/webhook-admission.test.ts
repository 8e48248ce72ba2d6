import { ADMISSION_API_VERSION, allowed, patched, rejected, review, reviewTemplate, tooManyRequests, type Answer } from '../../webhook/admission.js';

// review() writes answers field by field; it must write what JSON.stringify of the whole
// AdmissionReview writes, for every answer the constructors make.
describe('review: an AdmissionReview as JSON.stringify writes it', () => {
  const ops = [{ op: 'add' as const, path: '/metadata/annotations', value: { 'a/b': 'ü "q"' } }];
  it.each<[string, Answer]>([
    ['allowed', allowed()],
    ['allowed with warnings', allowed(['one', 'two "quoted"\n'])],
    ['patched', patched(JSON.stringify(ops), ['restored'])],
    ['patched without warnings', patched(JSON.stringify(ops), [])],
    ['nothing to patch', patched('[]', ['w'])],
    ['rejected', rejected(400, 'bad "body"')],
    ['too many requests', tooManyRequests('later')],
  ])('%s', (_name, answer) => {
    for (const uid of ['6b779db3-0c5f-4495-8704-bde4b9a0918d', '', 'odd "uid"\u2028']) {
      const expected = JSON.stringify({ apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response: { uid, ...answer } });
      expect(review(uid, answer)).toBe(expected);
      expect(reviewTemplate(answer)(uid)).toBe(expected);
    }
  });
});
