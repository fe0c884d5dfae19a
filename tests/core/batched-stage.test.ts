/**
 * `runBatched`, the shape of the batched model stages (filter, captioner): order kept, batches in flight
 * bounded (and used), a failed batch retried sample by sample, closed samples passed through untouched,
 * one latency event per batch with work.
 */
import { describe, expect, it } from 'vitest';
import { runBatched, type BatchedWork } from '../../src/core/batched-stage.js';
import type { StageEvent } from '../../src/core/events.js';
import { failSample, failureOf, OPEN, type Pair } from '../../src/core/sample.js';
import { expectEvery } from '../expect-every.js';

type Item = Pick<Pair, 'key' | 'fate'> & { done?: number };

const item = (key: string, extra: Partial<Item> = {}): Item => ({ key, fate: OPEN, ...extra });
const items = (n: number) => Array.from({ length: n }, (_, i) => item(`s${i}`));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function run(input: readonly Item[], work: Partial<BatchedWork<Item>> & Pick<BatchedWork<Item>, 'process'>) {
  const events: StageEvent[] = [];
  const ctx = { signal: new AbortController().signal, emit: (event: StageEvent) => events.push(event) };
  async function* from() {
    yield* input;
  }
  const out: Item[] = [];
  const full: BatchedWork<Item> = { batchSize: 4, wants: () => true, fail: (s, e) => failSample(s, 'test', 'score_failed', String(e)), ...work };
  for await (const sample of runBatched(from(), ctx, full)) out.push(sample);
  return { out, events };
}

describe('runBatched', () => {
  it('keeps input order while later batches finish first', async () => {
    const input = items(23);
    let call = 0;
    const { out } = await run(input, {
      batchSize: 3,
      inFlight: 4,
      process: async (samples) => {
        // Each batch takes less time than the one before it.
        await sleep(40 - 4 * call++);
        return samples.map((s) => ({ ...s, done: 1 }));
      },
    });
    expect(out.map((s) => s.key)).toEqual(input.map((s) => s.key));
    expectEvery(out, (s) => s.done === 1);
  });

  it('holds at most inFlight batches in the model at once, and uses them all', async () => {
    for (const inFlight of [1, 2, 3]) {
      let now = 0;
      let most = 0;
      let pulled = 0;
      let mostAhead = 0;
      let yielded = 0;
      async function* source() {
        for (const s of items(40)) {
          pulled++;
          mostAhead = Math.max(mostAhead, pulled - yielded);
          yield s;
        }
      }
      const ctx = { signal: new AbortController().signal, emit: () => undefined };
      const work: BatchedWork<Item> = {
        batchSize: 4,
        inFlight,
        wants: () => true,
        fail: (s) => s,
        process: async (samples) => {
          most = Math.max(most, ++now);
          await sleep(10);
          now--;
          return samples;
        },
      };
      for await (const _ of runBatched(source(), ctx, work)) yielded++;
      expect(yielded).toBe(40);
      expect(most, `inFlight ${inFlight}`).toBe(inFlight);
      // Backpressure: the source is read at most the batches in flight plus the one being gathered ahead.
      expect(mostAhead, `inFlight ${inFlight}`).toBeLessThanOrEqual((inFlight + 1) * 4);
    }
  });

  it('retries a failed batch one sample at a time: the bad one fails alone with its error, the rest are done', async () => {
    const calls: string[][] = [];
    const { out } = await run(items(8), {
      process: async (samples) => {
        calls.push(samples.map((s) => s.key));
        if (samples.some((s) => s.key === 's5')) throw new Error('s5 is unreadable');
        return samples.map((s) => ({ ...s, done: 1 }));
      },
    });
    expect(calls).toEqual([['s0', 's1', 's2', 's3'], ['s4', 's5', 's6', 's7'], ['s4'], ['s5'], ['s6'], ['s7']]);
    expect(out.map((s) => s.key)).toEqual(items(8).map((s) => s.key));
    expect(failureOf(out[5]!)).toEqual({ code: 'score_failed', message: 'Error: s5 is unreadable', stage: 'test' });
    expect(out[5]!.done).toBeUndefined();
    const others = out.filter((s) => s.key !== 's5');
    expect(others).toHaveLength(7);
    expectEvery(others, (s) => s.done === 1 && failureOf(s) === null);
  });

  it("stops the run with the batch's error when every sample fails alone for a reason not its own", async () => {
    class Own extends Error {}
    const broken = run(items(6), {
      isOwnError: (e) => e instanceof Own,
      process: async (samples) => {
        throw new Error(samples.length > 1 ? 'the model is broken' : 'still broken');
      },
    });
    await expect(broken).rejects.toThrow('the model is broken');
    // One sample failing for a reason of its own is enough for the batch to be the samples' fault.
    const { out } = await run(items(4), {
      isOwnError: (e) => e instanceof Own,
      process: async (samples) => {
        if (samples.length === 1 && samples[0]!.key === 's2') throw new Own('bad image');
        throw new Error('the model is broken');
      },
    });
    expect(out.map((s) => failureOf(s)?.message)).toEqual(['Error: the model is broken', 'Error: the model is broken', 'Error: bad image', 'Error: the model is broken']);
  });

  it('without isOwnError, a batch whose samples all fail alone fails them all and goes on', async () => {
    const { out } = await run(items(5), {
      process: async () => {
        throw new Error('no');
      },
    });
    expect(out).toHaveLength(5);
    expectEvery(out, (s) => failureOf(s)?.code === 'score_failed');
  });

  it('passes closed and unwanted samples through untouched, in their places, never offering them', async () => {
    const input = [
      item('a'),
      item('failed', { fate: { kind: 'failed', code: 'image_truncated', message: 'cut', stage: 'decode' } }),
      item('dropped', { fate: { kind: 'dropped', reason: 'duplicate_image', stage: 'dedup' } }),
      item('b'),
      item('unwanted'),
      item('deferred', { fate: { kind: 'deferred', reason: 'budget_exhausted', stage: 'synth' } }),
      item('c'),
    ];
    const offered: string[] = [];
    const asked: string[] = [];
    const { out } = await run(input, {
      batchSize: 3,
      wants: (s) => {
        asked.push(s.key);
        return s.key !== 'unwanted';
      },
      process: async (samples) => {
        offered.push(...samples.map((s) => s.key));
        return samples.map((s) => ({ ...s, done: 1 }));
      },
    });
    expect(asked).toEqual(['a', 'b', 'unwanted', 'c']);
    expect(offered).toEqual(['a', 'b', 'c']);
    expect(out.map((s) => s.key)).toEqual(input.map((s) => s.key));
    for (const i of [1, 2, 4, 5]) expect(out[i]).toBe(input[i]);
    expect(out.filter((s) => s.done === 1).map((s) => s.key)).toEqual(['a', 'b', 'c']);
  });

  it('reports one batch-latency event per batch with work, retries included', async () => {
    const closed: Partial<Item> = { fate: { kind: 'failed', code: 'image_corrupt', message: 'x', stage: 'x' } };
    // Batches of 2: [s0 s1] work, [closed closed] none, [s4 bad] fails and is retried.
    const input = [item('s0'), item('s1'), item('c0', closed), item('c1', closed), item('s4'), item('bad')];
    const { events } = await run(input, {
      batchSize: 2,
      process: async (samples) => {
        await sleep(30);
        if (samples.some((s) => s.key === 'bad')) throw new Error('bad');
        return samples;
      },
    });
    const latencies = events.flatMap((e) => (e.type === 'batch-latency' ? [e.ms] : []));
    expect(events).toHaveLength(2);
    expect(latencies).toHaveLength(2);
    // Timers may fire a millisecond early.
    expect(latencies[0]).toBeGreaterThanOrEqual(29);
    // The failed batch and its two retries: three model calls.
    expect(latencies[1]).toBeGreaterThanOrEqual(89);
  });

  it('a stage that gives a result too few or too many is a bug that stops the run', async () => {
    await expect(run(items(3), { process: async (samples) => samples.slice(1) })).rejects.toThrow('a batched stage gave 2 results for 3 samples');
  });
});
