import { describe, expect, it } from 'vitest';

import { greedyDecode } from '../../src/captioner/decoding/greedy.js';
import { applyRepetitionPenalty, argmax, blockTokens, logSoftmax, processLogits } from '../../src/captioner/decoding/logits.js';
import { nucleus, nucleusDecode, sampleToken, softmax, warpLogits } from '../../src/captioner/decoding/nucleus.js';
import { createStream, type RandomStream } from '../../src/captioner/decoding/rng.js';
import { chain, EOS, ScriptedModel, setup, START } from './scripted-model.js';

const f64 = (values: number[]) => Float64Array.from(values);
const noWarp = { topP: 1, topK: 0, temperature: 1 };

/** A stream that returns the given uniforms in turn. */
function fixedStream(values: number[]): RandomStream {
  let i = 0;
  return { uniform: () => values[i++ % values.length]!, next32: () => 0 };
}

describe('logit processors', () => {
  it('argmax picks the largest logit, the lowest id among equals', () => {
    expect(argmax(f64([0.1, 3, -2, 3]))).toBe(1);
    expect(argmax(f64([-5, -1, -3]))).toBe(1);
  });

  it('repetition penalty divides positive and multiplies negative logits of tokens already seen, once per token', () => {
    const x = f64([2, -2, 1, 0.5, 0]);
    applyRepetitionPenalty(x, [0, 1, 1, 4, 0], 2);
    expect([...x]).toEqual([1, -4, 1, 0.5, 0]);
    const same = f64([2, -2]);
    applyRepetitionPenalty(same, [0, 1], 1);
    expect([...same]).toEqual([2, -2]);
  });

  it('minimum length blocks end-of-sequence until enough tokens were generated', () => {
    const options = { repetitionPenalty: 1, minLength: 3 };
    expect(processLogits(f64([5, 1, 1]), [9], 2, options, [0])[0]).toBe(-Infinity);
    expect(processLogits(f64([5, 1, 1]), [9], 3, options, [0])[0]).toBe(5);
    const both = f64([1, 1, 1]);
    blockTokens(both, [0, 2]);
    expect([...both]).toEqual([-Infinity, 1, -Infinity]);
  });

  it('log-softmax sums to one and keeps blocked tokens at -Infinity', () => {
    const lsm = logSoftmax(f64([1, 2, -Infinity, 0.5]));
    expect(lsm[2]).toBe(-Infinity);
    expect(lsm.reduce((s, v) => s + Math.exp(v), 0)).toBeCloseTo(1, 12);
    expect(lsm[1]! - lsm[0]!).toBeCloseTo(1, 12);
  });
});

describe('sampling warpers', () => {
  it('top-k keeps the k largest logits (ties at the k-th value too)', () => {
    expect([...warpLogits(f64([1, 4, 3, 2]), { ...noWarp, topK: 2 })]).toEqual([-Infinity, 4, 3, -Infinity]);
    expect([...warpLogits(f64([1, 4, 3, 3]), { ...noWarp, topK: 2 })]).toEqual([-Infinity, 4, 3, 3]);
    expect([...warpLogits(f64([1, 4]), { ...noWarp, topK: 0 })]).toEqual([1, 4]);
  });

  it('temperature divides the logits: below 1 sharpens, above 1 flattens', () => {
    const x = f64([2, 1, 0]);
    expect([...warpLogits(x, { ...noWarp, temperature: 0.5 })]).toEqual([4, 2, 0]);
    const p1 = softmax(warpLogits(x, noWarp))[0]!;
    expect(softmax(warpLogits(x, { ...noWarp, temperature: 0.5 }))[0]!).toBeGreaterThan(p1);
    expect(softmax(warpLogits(x, { ...noWarp, temperature: 2 }))[0]!).toBeLessThan(p1);
    expect([...x]).toEqual([2, 1, 0]); // not modified
  });

  it('top-p keeps the smallest most-likely set whose probability reaches p', () => {
    const probs = f64([0.15, 0.5, 0.05, 0.3]);
    expect(nucleus(probs, 0.5)).toEqual([1]);
    expect(nucleus(probs, 0.8)).toEqual([1, 3]);
    expect(nucleus(probs, 0.81)).toEqual([1, 3, 0]);
    expect(nucleus(probs, 0.96)).toEqual([1, 3, 0, 2]);
    expect(nucleus(probs, 1)).toEqual([1, 3, 0, 2]);
    expect(nucleus(f64([0.25, 0.5, 0.25, 0]), 1)).toEqual([1, 0, 2]); // ties by id, zero probability never
  });

  it('samples in proportion to the kept probabilities, never outside the nucleus', () => {
    const logits = f64([0.15, 0.5, 0.05, 0.3].map(Math.log));
    const stream = createStream(1, 'freq', 0);
    const counts = [0, 0, 0, 0];
    const n = 20_000;
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { ...noWarp, topP: 0.79 }, stream)]!++;
    expect(counts[0]).toBe(0);
    expect(counts[2]).toBe(0);
    expect(counts[1]! / n).toBeCloseTo(0.5 / 0.8, 1);
    expect(counts[3]! / n).toBeCloseTo(0.3 / 0.8, 1);
  });

  it('maps the uniform draw onto the kept tokens in order of probability', () => {
    const logits = f64([0.15, 0.5, 0.05, 0.3].map(Math.log));
    // Kept with topP 0.79: token 1 (0.5/0.8 = 0.625), then token 3.
    expect(sampleToken(logits, { ...noWarp, topP: 0.79 }, fixedStream([0.6]))).toBe(1);
    expect(sampleToken(logits, { ...noWarp, topP: 0.79 }, fixedStream([0.63]))).toBe(3);
    expect(sampleToken(logits, { ...noWarp, topP: 0.79 }, fixedStream([0.999]))).toBe(3);
    expect(sampleToken(logits, { ...noWarp, topK: 1 }, fixedStream([0.99]))).toBe(1);
  });
});

describe('sampling on a large vocabulary', () => {
  /** The rules written out with full sorts, to check the heap-based selection against. */
  function naiveSample(logits: Float64Array, o: { topP: number; topK: number; temperature: number }, u: number): number {
    let z = [...logits].map((v) => v / o.temperature);
    if (o.topK > 0 && o.topK < z.length) {
      const kth = [...z].sort((a, b) => b - a)[o.topK - 1]!;
      z = z.map((v) => (v >= kth ? v : -Infinity));
    }
    const max = Math.max(...z);
    const w = z.map((v) => (v === -Infinity ? 0 : Math.exp(v - max)));
    const total = w.reduce((s, v) => s + v, 0);
    const p = w.map((v) => v / total);
    let order = p.map((_, i) => i).filter((i) => p[i]! > 0).sort((a, b) => p[b]! - p[a]! || a - b);
    let mass = 0;
    if (o.topP < 1) {
      const kept: number[] = [];
      for (const i of order) {
        kept.push(i);
        mass += p[i]!;
        if (mass >= o.topP) break;
      }
      order = kept;
    } else {
      mass = p.reduce((s, v) => s + v, 0);
    }
    let acc = 0;
    for (const i of order) {
      acc += p[i]!;
      if (u * mass < acc) return i;
    }
    return order[order.length - 1]!;
  }

  it('heap-based top-k and top-p pick what full sorting picks', () => {
    const gen = createStream(99, 'vocab', 0);
    for (let trial = 0; trial < 200; trial++) {
      const vocab = 50 + Math.floor(gen.uniform() * 2000);
      const logits = Float64Array.from({ length: vocab }, () => (gen.uniform() - 0.5) * 12 + (gen.uniform() < 0.01 ? 6 : 0));
      // Some exact ties, to exercise the order among equals.
      for (let i = 0; i < 5; i++) logits[Math.floor(gen.uniform() * vocab)] = logits[0]!;
      const o = {
        topP: [1, 0.9, 0.5, 0.99][trial % 4]!,
        topK: [0, 5, 50, 1][Math.floor(trial / 4) % 4]!,
        temperature: [1, 0.7, 1.5][trial % 3]!,
      };
      const u = gen.uniform();
      expect(sampleToken(logits, o, fixedStream([u])), JSON.stringify(o)).toBe(naiveSample(logits, o, u));
    }
  });
});

describe('seeded streams', () => {
  it('match the Python reference generator of tools/make_captioner_fixtures.py', () => {
    const s = createStream(7, 'img-a', 0);
    expect([s.next32(), s.next32(), s.next32()]).toEqual([755167398, 530847202, 402624436]);
    expect(s.uniform()).toBe(0.7190322386777249);
    const t = createStream(0, 'ключ', 2);
    expect([t.uniform(), t.uniform()]).toEqual([0.45052566412342554, 0.5243896253171412]);
  });

  it('depend on seed, key and sample index only', () => {
    const draw = (seed: number, key: string, sample: number) => {
      const s = createStream(seed, key, sample);
      return [s.uniform(), s.uniform(), s.uniform()];
    };
    expect(draw(3, 'k', 1)).toEqual(draw(3, 'k', 1));
    expect(draw(3, 'k', 1)).not.toEqual(draw(4, 'k', 1));
    expect(draw(3, 'k', 1)).not.toEqual(draw(3, 'j', 1));
    expect(draw(3, 'k', 1)).not.toEqual(draw(3, 'k', 2));
    for (const u of draw(9, 'range', 0)) expect(u >= 0 && u < 1).toBe(true);
  });
});

const loop = { repetitionPenalty: 1, minLength: 0, maxLength: 10 };

describe('greedy decoding', () => {
  it('follows the argmax and stops at end-of-sequence, with the sum of log-probabilities', async () => {
    const model = new ScriptedModel(chain, 6);
    const [out] = await greedyDecode(model, setup, loop, 1);
    expect(out!.tokens).toEqual([1, 3]);
    expect(out!.finished).toBe(true);
    expect(out!.logProb).toBeCloseTo(Math.log(0.55) + Math.log(0.34) + Math.log(1), 5);
  });

  it('blocks end-of-sequence before the minimum length and stops at the maximum length', async () => {
    const table = { [START]: { 1: 0.9, [EOS]: 0.1 }, 1: { [EOS]: 0.6, 2: 0.4 }, 2: { [EOS]: 0.6, 2: 0.4 } };
    const [min] = await greedyDecode(new ScriptedModel(table, 6), setup, { ...loop, minLength: 3 }, 1);
    expect(min!.tokens).toEqual([1, 2, 2]);
    const [max] = await greedyDecode(new ScriptedModel(table, 6), setup, { ...loop, minLength: 3, maxLength: 2 }, 1);
    expect(max!.tokens).toEqual([1, 2]);
    expect(max!.finished).toBe(false);
  });

  it('the repetition penalty steers away from tokens already generated', async () => {
    const table = { [START]: { 1: 0.5, 2: 0.3, [EOS]: 0.2 }, 1: { 1: 0.4, 2: 0.35, [EOS]: 0.25 }, 2: { [EOS]: 1 } };
    const [plain] = await greedyDecode(new ScriptedModel(table, 6), setup, { ...loop, maxLength: 3 }, 1);
    expect(plain!.tokens).toEqual([1, 1, 1]);
    // log(0.4) * 1.5 < log(0.35): the repeated token loses.
    const [penalised] = await greedyDecode(new ScriptedModel(table, 6), setup, { ...loop, maxLength: 3, repetitionPenalty: 1.5 }, 1);
    expect(penalised!.tokens).toEqual([1, 2]);
  });
});

describe('nucleus decoding', () => {
  it('shares the prefix pass between an image`s samples, then decodes each sample with its own stream', async () => {
    const model = new ScriptedModel(chain, 6);
    const streams = [[createStream(1, 'a', 0), createStream(1, 'a', 1), createStream(1, 'a', 2)], [createStream(1, 'b', 0), createStream(1, 'b', 1), createStream(1, 'b', 2)]];
    const out = await nucleusDecode(model, setup, { ...loop, ...noWarp }, streams);
    expect(out).toHaveLength(6);
    expect(model.rowsPerCall[0]).toBe(2); // one row per image for the prefix
    expect(model.rowsPerCall[1]).toBeLessThanOrEqual(6);
    for (const seq of out) {
      expect(seq.finished).toBe(true);
      expect([[1, 3], [1, 4], [1], [2], [2, 1, 3], [2, 1, 4], [2, 1]]).toContainEqual(seq.tokens);
    }
    // The same streams again give the same samples.
    const again = await nucleusDecode(new ScriptedModel(chain, 6), setup, { ...loop, ...noWarp }, streams.map((s, i) => s.map((_, j) => createStream(1, i === 0 ? 'a' : 'b', j))));
    expect(again).toEqual(out);
  });
});
