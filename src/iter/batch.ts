/** Group items into arrays of `size` (the last one may be shorter). */
export async function* batch<T>(input: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`Expected batch size to be an integer from 1 and up, got ${size}`);
  let current: T[] = [];
  for await (const item of input) {
    current.push(item);
    if (current.length >= size) {
      yield current;
      current = [];
    }
  }
  if (current.length > 0) yield current;
}

/** Flatten arrays back into single items. */
export async function* unbatch<T>(input: AsyncIterable<readonly T[]>): AsyncGenerator<T> {
  for await (const items of input) yield* items;
}
