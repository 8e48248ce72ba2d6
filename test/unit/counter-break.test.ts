import { counterBreak, restoreSeam } from '../harness/counter-scenario.js';

it.each([
  ['a cold run', [1, 2, 3], undefined],
  ['a restore with the seam line repeated once', [1, 2, 3, 3, 4], undefined],
  ['a restart from 1', [1, 2, 3, 1, 2], '3 is followed by 1 at line 4'],
  ['a gap', [1, 2, 4], '2 is followed by 4 at line 3'],
  ['two repeats', [1, 2, 2, 3, 3], '3 is followed by 3 at line 5'],
  ['a log that starts late', [5, 6], 'starts at 5, not 1'],
])('%s', (_name, seen, want) => {
  expect(counterBreak(seen)).toBe(want);
});

describe('restoreSeam: what the checkpoint held, from the longest pause in a timestamped log', () => {
  it('the count before the pause between the dump and the restore', () => {
    expect(restoreSeam([[1_000, 1], [2_000, 2], [3_000, 3], [9_500, 4], [10_500, 5]])).toEqual({ held: 3, pauseMs: 6_500 });
  });
  it('a cold log has no long pause: the seam is just its longest second', () => {
    expect(restoreSeam([[1_000, 1], [2_000, 2], [3_100, 3]])).toEqual({ held: 2, pauseMs: 1_100 });
  });
  it('no seam in fewer than two lines', () => {
    expect(restoreSeam([[1_000, 1]])).toBeUndefined();
  });
});
