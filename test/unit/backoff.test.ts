import { backoffDelay } from '../../runtime/backoff.js';

const first = (n: number, baseMs: number, maxMs: number): number[] => Array.from({ length: n }, (_, i) => backoffDelay(i + 1, { baseMs, maxMs }));

describe('backoffDelay', () => {
  it.each([
    { name: 'no failure yet', failures: 0, want: 0 },
    { name: 'negative counts as none', failures: -3, want: 0 },
    { name: 'first failure waits the base', failures: 1, want: 100 },
    { name: 'then doubles', failures: 4, want: 800 },
    { name: 'last step under the cap', failures: 5, want: 1600 },
    { name: 'capped', failures: 6, want: 2000 },
    { name: 'a long outage stays at the cap', failures: 100_000, want: 2000 },
  ])('$name: $failures → $want', ({ failures, want }) => {
    expect(backoffDelay(failures, { baseMs: 100, maxMs: 2000 })).toBe(want);
  });

  it('never yields NaN or Infinity, even with a zero base or no cap', () => {
    expect(backoffDelay(5000, { baseMs: 0, maxMs: 1000 })).toBe(0);
    expect(backoffDelay(5000, { baseMs: 1, maxMs: Infinity })).toBe(2 ** 30);
  });

  // The sequences each caller had written by hand before they shared this helper.
  it.each([
    { site: 'registry requests', base: 500, max: 10_000, want: [500, 1000, 2000, 4000, 8000, 10_000] },
    { site: 'pod relist (agent)', base: 500, max: 30_000, want: [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000] },
    { site: 'informer watch', base: 200, max: 10_000, want: [200, 400, 800, 1600, 3200, 6400, 10_000] },
    { site: 'certificate sync, 30 s interval', base: 1000, max: 30_000, want: [1000, 2000, 4000, 8000, 16_000, 30_000] },
    { site: 'certificate sync, interval under 1 s', base: 500, max: 500, want: [500, 500] },
    { site: 'controller checkpoints (flag defaults)', base: 10_000, max: 600_000, want: [10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 600_000] },
  ])('$site', ({ base, max, want }) => {
    expect(first(want.length, base, max)).toEqual(want);
  });
});
