/** The first `count` items. */
export async function* take<T>(input: AsyncIterable<T>, count: number): AsyncGenerator<T> {
  if (count <= 0) return;
  let seen = 0;
  for await (const item of input) {
    yield item;
    if (++seen >= count) return;
  }
}

/**
 * Stop pulling new items once `signal` aborts. Items already yielded keep flowing through later stages,
 * so in-flight work finishes and gets committed.
 */
export async function* takeUntilAborted<T>(input: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  if (signal.aborted) return;
  for await (const item of input) {
    yield item;
    if (signal.aborted) return;
  }
}
