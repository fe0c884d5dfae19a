import { describe, expect, it } from 'vitest';
import { batch, unbatch, mapConcurrent, take, takeUntilAborted, concat, merge, Channel } from '../../src/iter/index.js';

async function* from<T>(items: T[], delayMs = 0): AsyncGenerator<T> {
  for (const item of items) {
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    yield item;
  }
}

async function collect<T>(iter: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of iter) out.push(x);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('batch', () => {
  it('groups items and keeps the short tail', async () => {
    expect(await collect(batch(from([1, 2, 3, 4, 5]), 2))).toEqual([[1, 2], [3, 4], [5]]);
    expect(await collect(unbatch(batch(from([1, 2, 3]), 2)))).toEqual([1, 2, 3]);
  });
  it('rejects a size below 1 with a message naming it', async () => {
    await expect(collect(batch(from([1]), 0))).rejects.toThrow(/batch size.*got 0/);
  });
});

describe('mapConcurrent', () => {
  it('keeps input order when ordered, even when later calls finish first', async () => {
    const out = await collect(mapConcurrent(from([30, 5, 20, 1]), async (ms) => (await sleep(ms), ms), { concurrency: 4 }));
    expect(out).toEqual([30, 5, 20, 1]);
  });

  it('yields in completion order when unordered', async () => {
    const out = await collect(mapConcurrent(from([40, 5, 20]), async (ms) => (await sleep(ms), ms), { concurrency: 3, ordered: false }));
    expect(out).toEqual([5, 20, 40]);
  });

  it('never has more than `concurrency` calls in flight and pulls input lazily', async () => {
    let inFlight = 0;
    let peak = 0;
    let pulled = 0;
    async function* source() {
      for (let i = 0; i < 20; i++) {
        pulled++;
        yield i;
      }
    }
    const iter = mapConcurrent(source(), async (x) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await sleep(2);
      inFlight--;
      return x * 2;
    }, { concurrency: 3 });
    const first = await iter.next();
    expect(first.value).toBe(0);
    // Only the slots that were free have pulled input: bounded memory, backpressure to the source.
    expect(pulled).toBeLessThanOrEqual(4);
    const rest = await collect({ [Symbol.asyncIterator]: () => iter });
    expect(rest).toEqual(Array.from({ length: 19 }, (_, i) => (i + 1) * 2));
    expect(peak).toBe(3);
  });

  it('propagates a rejection and stops the source', async () => {
    let closed = false;
    async function* source() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        closed = true;
      }
    }
    await expect(
      collect(mapConcurrent(source(), async (x) => {
        if (x === 3) throw new Error('boom at 3');
        return x;
      }, { concurrency: 2 })),
    ).rejects.toThrow('boom at 3');
    expect(closed).toBe(true);
  });
});

describe('take, takeUntilAborted, concat, merge, Channel', () => {
  it('take stops early', async () => {
    expect(await collect(take(from([1, 2, 3, 4]), 2))).toEqual([1, 2]);
  });

  it('takeUntilAborted stops pulling once aborted', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    for await (const x of takeUntilAborted(from([1, 2, 3, 4, 5]), controller.signal)) {
      seen.push(x);
      if (x === 2) controller.abort();
    }
    expect(seen).toEqual([1, 2]);
  });

  it('concat reads in order; merge interleaves all', async () => {
    expect(await collect(concat([from([1, 2]), from([3])]))).toEqual([1, 2, 3]);
    const merged = await collect(merge([from([1, 2, 3], 5), from([10, 20], 3)]));
    expect(merged.sort((a, b) => a - b)).toEqual([1, 2, 3, 10, 20]);
  });

  it('Channel delivers pushed items then ends on close', async () => {
    const ch = new Channel<number>();
    ch.push(1);
    setTimeout(() => {
      ch.push(2);
      ch.close();
      ch.push(3);
    }, 5);
    expect(await collect(ch)).toEqual([1, 2]);
  });
});
