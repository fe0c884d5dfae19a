export interface MapConcurrentOptions {
  /** Most calls of `fn` in flight at once. */
  concurrency: number;
  /** Yield results in input order (default) or as soon as each finishes. */
  ordered?: boolean;
}

/**
 * Map with at most `concurrency` calls in flight. Pulls input only when a slot is free, so memory stays
 * bounded and backpressure reaches the source. A rejected call rejects the whole iteration: per-sample
 * failures should be caught inside `fn` and returned as data.
 */
export async function* mapConcurrent<I, O>(
  input: AsyncIterable<I>,
  fn: (item: I, index: number) => Promise<O>,
  options: MapConcurrentOptions,
): AsyncGenerator<O> {
  const { concurrency, ordered = true } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`Expected concurrency to be an integer from 1 and up, got ${concurrency}`);
  }
  const iterator = input[Symbol.asyncIterator]();
  // Each slot settles to its own index so unordered mode can tell which finished.
  type Slot = { index: number; promise: Promise<{ index: number; value: O }> };
  const inFlight: Slot[] = [];
  let nextIndex = 0;
  let done = false;
  let pulling: Promise<IteratorResult<I>> | null = null;

  const fill = async (): Promise<void> => {
    while (!done && inFlight.length < concurrency) {
      pulling ??= iterator.next();
      const result = await pulling;
      pulling = null;
      if (result.done) {
        done = true;
        break;
      }
      const index = nextIndex++;
      const promise = fn(result.value, index).then((value) => ({ index, value }));
      // Avoid unhandled-rejection noise while the slot waits its turn; the rejection is re-raised on await.
      promise.catch(() => undefined);
      inFlight.push({ index, promise });
    }
  };

  try {
    await fill();
    while (inFlight.length > 0) {
      let settled: { index: number; value: O };
      if (ordered) {
        settled = await inFlight[0]!.promise;
        inFlight.shift();
      } else {
        settled = await Promise.race(inFlight.map((slot) => slot.promise));
        inFlight.splice(inFlight.findIndex((slot) => slot.index === settled.index), 1);
      }
      yield settled.value;
      await fill();
    }
  } finally {
    if (!done) await iterator.return?.();
  }
}
