import { counterBreak } from '../harness/counter-scenario.js';

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
