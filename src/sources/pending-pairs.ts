/**
 * The read loop the manifest, folder and LLaVA sources share. Each input row becomes a `Pending`: its key
 * (known before any image is read) and either a finished pair (a row that failed) or a `load` that reads
 * or downloads the image. Here:
 *
 * 1. rows whose key is not in this process's shard (`--shard I/N`) are dropped before anything is read;
 * 2. keys an earlier run finished (`ctx.isDone`, asked in batches) are dropped likewise;
 * 3. the rest load with bounded concurrency, in input order or as they complete;
 * 4. when `ctx.signal` aborts (or the consumer stops early), reading stops and downloads in flight are
 *    aborted; their pairs are not yielded (they were not finished, so the next run does them).
 */
import { setMaxListeners } from 'node:events';
import type { Pair } from '../core/sample.js';
import { inShard } from '../core/shard.js';
import type { SourceContext } from './source.js';

export type Pending = { key: string; pair: Pair } | { key: string; load: (signal: AbortSignal) => Promise<Pair | null> | Pair };

export interface ResolveOptions {
  /** Loads in flight at once. */
  concurrency: number;
  /** Yield in input order (true) or as loads complete. */
  ordered: boolean;
  /** Keys asked of `ctx.isDone` at once. Default 256. */
  doneBatch?: number;
}

export async function* resolvePending(items: AsyncIterable<Pending>, ctx: SourceContext, options: ResolveOptions): AsyncGenerator<Pair> {
  const controller = new AbortController();
  // Every load in flight listens on it (request, queue slots): far more than the default warning level of 10.
  setMaxListeners(0, controller.signal);
  const onAbort = () => controller.abort();
  if (ctx.signal.aborted) return;
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const signal = controller.signal;
  const doneBatch = options.doneBatch ?? 256;

  async function* wanted(): AsyncGenerator<Pending> {
    let batch: Pending[] = [];
    const flush = function* (): Generator<Pending> {
      const done = ctx.isDone && batch.length > 0 ? ctx.isDone(batch.map((item) => item.key)) : null;
      for (const item of batch) if (done === null || !done.has(item.key)) yield item;
      batch = [];
    };
    for await (const item of items) {
      if (signal.aborted) return;
      if (!inShard(item.key, ctx.shard)) continue;
      if (ctx.isDone === undefined) {
        yield item;
        continue;
      }
      batch.push(item);
      if (batch.length >= doneBatch) yield* flush();
    }
    if (!signal.aborted) yield* flush();
  }

  try {
    const loads = loadPool(wanted(), (item) => ('pair' in item ? item.pair : item.load(signal)), options.concurrency, options.ordered);
    for await (const pair of loads) {
      if (signal.aborted) return;
      if (pair !== null) yield pair;
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    controller.abort();
  }
}

type Loaded = Pair | null;

/**
 * At most `concurrency` loads in flight (results waiting to be yielded count too, so memory stays
 * bounded), yielded in input order or as they finish. Like `mapConcurrent`, but O(1) per item in both
 * modes (no `Promise.race` over the window) and without a promise for loads that finish synchronously
 * (rows that fail before any I/O): a manifest pushes a million rows through here.
 */
export async function* loadPool<T>(
  input: AsyncIterable<T>,
  load: (item: T) => Promise<Loaded> | Loaded,
  concurrency: number,
  ordered: boolean,
): AsyncGenerator<Loaded> {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`Expected concurrency to be an integer from 1 and up, got ${concurrency}`);
  }
  const iterator = input[Symbol.asyncIterator]();
  let exhausted = false;
  try {
    if (ordered) {
      const window: (Promise<Loaded> | Loaded)[] = [];
      let head = 0;
      while (true) {
        while (!exhausted && window.length - head < concurrency) {
          const next = await iterator.next();
          if (next.done) exhausted = true;
          else {
            const result = load(next.value);
            if (result instanceof Promise) result.catch(() => undefined); // re-raised when awaited below
            window.push(result);
          }
        }
        if (head === window.length) return;
        const result = window[head]!;
        window[head++] = null;
        if (head > 1024) {
          window.splice(0, head);
          head = 0;
        }
        yield result instanceof Promise ? await result : result;
      }
    }
    const ready: Loaded[] = [];
    let readHead = 0;
    let inFlight = 0;
    let failure: { error: unknown } | null = null;
    let wake: (() => void) | null = null;
    const settle = () => {
      const resolve = wake;
      wake = null;
      resolve?.();
    };
    while (true) {
      while (!exhausted && failure === null && inFlight + ready.length - readHead < concurrency) {
        const next = await iterator.next();
        if (next.done) {
          exhausted = true;
          break;
        }
        const result = load(next.value);
        if (!(result instanceof Promise)) {
          ready.push(result);
          continue;
        }
        inFlight++;
        result.then(
          (value) => {
            inFlight--;
            ready.push(value);
            settle();
          },
          (error: unknown) => {
            inFlight--;
            failure ??= { error };
            settle();
          },
        );
      }
      if (failure !== null) throw (failure as { error: unknown }).error;
      if (readHead < ready.length) {
        const value = ready[readHead]!;
        ready[readHead++] = null;
        if (readHead > 1024) {
          ready.splice(0, readHead);
          readHead = 0;
        }
        yield value;
        continue;
      }
      if (inFlight === 0 && exhausted) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    if (!exhausted) await iterator.return?.();
  }
}
