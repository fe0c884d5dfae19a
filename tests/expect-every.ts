import { inspect } from 'node:util';
import { expect } from 'vitest';

/**
 * Asserts that `items` holds at least one item and that every item satisfies `predicate`.
 * A bare assertion that `xs.every(p)` is true passes on an empty list, so it cannot catch a
 * stage that silently produced nothing; this one fails there, and names the first bad item.
 */
export function expectEvery<T>(
  items: Iterable<T> | ArrayLike<T>,
  predicate: (item: T, index: number) => unknown,
  message?: string,
): void {
  const list = Array.from(items);
  expect(list.length, message ?? 'expected at least one item, got an empty list').toBeGreaterThan(0);
  const bad = list.findIndex((item, index) => !predicate(item, index));
  const shown = bad < 0 ? '' : inspect(list[bad], { depth: 3, maxStringLength: 300 });
  expect(bad, message ?? `item ${bad} does not satisfy the predicate: ${shown}`).toBe(-1);
}
