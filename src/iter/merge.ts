/** Read several iterables one after another (sources are concatenated in recipe order). */
export async function* concat<T>(inputs: Iterable<AsyncIterable<T>>): AsyncGenerator<T> {
  for (const input of inputs) yield* input;
}

/** Interleave several iterables, yielding whichever produces first. */
export async function* merge<T>(inputs: AsyncIterable<T>[]): AsyncGenerator<T> {
  const iterators = inputs.map((input) => input[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<{ which: number; result: IteratorResult<T> }>>();
  const pull = (which: number) => {
    pending.set(which, iterators[which]!.next().then((result) => ({ which, result })));
  };
  iterators.forEach((_, which) => pull(which));
  try {
    while (pending.size > 0) {
      const { which, result } = await Promise.race(pending.values());
      if (result.done) {
        pending.delete(which);
      } else {
        pull(which);
        yield result.value;
      }
    }
  } finally {
    await Promise.all([...pending.keys()].map((which) => iterators[which]!.return?.()));
  }
}
