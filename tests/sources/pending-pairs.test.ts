import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { OPEN, type Pair } from '../../src/core/sample.js';
import { inShard } from '../../src/core/shard.js';
import { loadPool, resolvePending, type Pending } from '../../src/sources/pending-pairs.js';
import { context } from './manifest-fixtures.js';

const pair = (key: string): Pair => ({ key, source: 's', imageRef: 'x', imageBytes: null, captions: [], boxes: [], meta: {}, fate: OPEN });

async function* numbers(n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) yield i;
}

async function run(ordered: boolean, concurrency: number, n: number) {
  let inFlight = 0;
  let most = 0;
  const out: string[] = [];
  const load = (i: number) => {
    if (i % 5 === 0) return pair(`k${i}`); // synchronous result
    inFlight++;
    most = Math.max(most, inFlight);
    return sleep((i * 7919) % 13).then(() => {
      inFlight--;
      return pair(`k${i}`);
    });
  };
  for await (const p of loadPool(numbers(n), load, concurrency, ordered)) out.push(p!.key);
  return { out, most };
}

describe('loadPool', () => {
  it('ordered: input order, at most `concurrency` in flight', async () => {
    const { out, most } = await run(true, 4, 60);
    expect(out).toEqual(Array.from({ length: 60 }, (_, i) => `k${i}`));
    expect(most).toBeLessThanOrEqual(4);
    expect(most).toBeGreaterThan(1);
  });

  it('unordered: every item once, completion order differs from input order, bounded', async () => {
    const { out, most } = await run(false, 4, 60);
    expect([...out].sort()).toEqual(Array.from({ length: 60 }, (_, i) => `k${i}`).sort());
    expect(out).not.toEqual(Array.from({ length: 60 }, (_, i) => `k${i}`));
    expect(most).toBeLessThanOrEqual(4);
  });

  it('a rejected load rejects the iteration, in both modes', async () => {
    for (const ordered of [true, false]) {
      const load = (i: number) => (i === 3 ? Promise.reject(new Error('boom')) : Promise.resolve(pair(`k${i}`)));
      await expect((async () => {
        for await (const _ of loadPool(numbers(10), load, 2, ordered)) void _;
      })()).rejects.toThrow('boom');
    }
  });
});

describe('resolvePending', () => {
  it('drops out-of-shard and done keys before loading; loads the rest', async () => {
    const loaded: string[] = [];
    async function* items(): AsyncGenerator<Pending> {
      for (let i = 0; i < 30; i++) {
        const key = `key${i}`;
        yield { key, load: async () => (loaded.push(key), pair(key)) };
      }
    }
    const out: string[] = [];
    const ctx = context('/tmp', { isDone: (keys) => new Set(keys.filter((k) => k.endsWith('1'))) }, { index: 1, count: 2 });
    for await (const p of resolvePending(items(), ctx, { concurrency: 3, ordered: true, doneBatch: 4 })) out.push(p.key);
    const expected = Array.from({ length: 30 }, (_, i) => `key${i}`).filter((k) => inShard(k, { index: 1, count: 2 }) && !k.endsWith('1'));
    expect(expected.length).toBeGreaterThan(5);
    expect(out).toEqual(expected);
    expect(loaded.sort()).toEqual([...out].sort());
  });
});
