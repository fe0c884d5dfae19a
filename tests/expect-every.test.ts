import { describe, expect, it } from 'vitest';
import { expectEvery } from './expect-every.js';

describe('expectEvery', () => {
  it('fails on an empty list, where a bare `every` passes', () => {
    // The pitfall itself: `every` over nothing is true, whatever the predicate.
    const vacuous = ([] as number[]).every(() => false);
    expect(vacuous).toBe(true);
    expect(() => expectEvery([], () => true)).toThrow(/at least one item/);
    expect(() => expectEvery(new Float32Array(0), () => true)).toThrow(/at least one item/);
  });

  it('fails naming the first item that does not match, and passes when all do', () => {
    expect(() => expectEvery([2, 1, 0], (n) => n > 1)).toThrow(/item 1 does not satisfy/);
    expect(() => expectEvery([1], () => false, 'custom note')).toThrow(/custom note/);
    expectEvery(new Set(['a', 'b']), (s) => s.length === 1);
    expectEvery(Float32Array.of(0, 0), (v) => v === 0);
  });
});
