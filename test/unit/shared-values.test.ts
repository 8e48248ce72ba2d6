/** kube/shared-values.ts: one frozen copy per value, bounded. */
import { SharedValues, sharedKey } from '../../kube/shared-values.js';

describe('SharedValues', () => {
  it('hands out the first copy of a value for its key, frozen all the way down', () => {
    const pool = new SharedValues();
    const first = pool.get('k', () => ({ labels: { app: 'web' } }));
    expect(pool.get('k', () => ({ labels: { app: 'other' } }))).toBe(first);
    expect(Object.isFrozen(first) && Object.isFrozen(first.labels)).toBe(true);
    expect(pool.list('flags', ['fpu', 'sse2'])).toBe(pool.list('flags', ['fpu', 'sse2']));
    expect(pool.list('flags', ['fpu'])).not.toBe(pool.list('other', ['fpu']));
  });

  it('keys lists so that no two differ only in where one part ends', () => {
    expect(sharedKey('l', ['a', 'b'])).not.toBe(sharedKey('l', ['a\u0000b']) + '\u0000');
    expect(sharedKey('l', ['ab'])).not.toBe(sharedKey('l', ['a', 'b']));
  });

  it('is bounded: full, it starts again, and values handed out stay as they were', () => {
    const pool = new SharedValues(2);
    const first = pool.get('a', () => ['a']);
    pool.get('b', () => ['b']);
    expect(pool.get('a', () => ['a2'])).toBe(first);
    pool.get('c', () => ['c']); // full: starts again
    expect(pool.get('a', () => ['a3'])).toEqual(['a3']);
    expect(first).toEqual(['a']);
  });
});
