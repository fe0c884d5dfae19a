/**
 * Group items into arrays of up to `size`, but never hold an item longer than `maxWaitMs`: a partial
 * group goes out when its first item has waited that long. For committing slow results (LLM answers)
 * promptly while still batching fast ones (template samples).
 */
export async function* timedBatches<T>(input: AsyncIterable<T>, size: number, maxWaitMs: number): AsyncGenerator<T[]> {
  const iterator = input[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<T>> | null = null;
  let group: T[] = [];
  let deadline = 0;
  let finished = false;
  try {
    for (;;) {
      pending ??= iterator.next();
      let result: IteratorResult<T> | 'timeout';
      if (group.length === 0) {
        result = await pending;
      } else {
        const wait = deadline - Date.now();
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), Math.max(0, wait))));
        try {
          result = await Promise.race([pending, timeout]);
        } finally {
          clearTimeout(timer);
        }
      }
      if (result === 'timeout') {
        yield group;
        group = [];
        continue;
      }
      pending = null;
      if (result.done) {
        finished = true;
        break;
      }
      if (group.length === 0) deadline = Date.now() + maxWaitMs;
      group.push(result.value);
      if (group.length >= size) {
        yield group;
        group = [];
      }
    }
    if (group.length > 0) yield group;
  } finally {
    // Stopped early by the consumer: let the source clean up (without waiting on a pull still in progress).
    if (!finished) {
      if (pending === null) await iterator.return?.();
      else void iterator.return?.();
    }
  }
}
