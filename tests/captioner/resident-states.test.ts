import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import { OnnxSession } from '../../src/backends/onnx-session.js';
import type { TensorData } from '../../src/backends/onnx-tensor.js';
import { OnnxCaptioner } from '../../src/captioner/onnx-captioner.js';
import { LAYOUT_DIRS, readImage } from './fixtures.js';

// Issue 15 item 3: the encoder states, encoder_attention_mask and the key/value cache stay in the
// decoder's worker for the whole batch instead of being copied to it (and back) at every decoding step. The
// sessions count the bytes they send per input name, so the tests can see what crossed.
const images = ['square-a.png', 'square-b.png', 'rotated.png'].map(readImage);
const layouts = Object.keys(LAYOUT_DIRS) as Array<keyof typeof LAYOUT_DIRS>;

/** Bytes sent per input name while `f` runs. */
async function sentDuring(c: OnnxCaptioner, f: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = c.decoderTraffic.sentByInput;
  await f();
  const after = c.decoderTraffic.sentByInput;
  return Object.fromEntries(Object.entries(after).map(([name, bytes]) => [name, bytes - (before[name] ?? 0)]));
}

describe.each(layouts)('%s layout: encoder states cross to the decoder worker once per batch', (layout) => {
  let captioner: OnnxCaptioner;
  beforeAll(async () => {
    captioner = await OnnxCaptioner.load(LAYOUT_DIRS[layout]);
  });
  afterAll(async () => {
    await captioner.close();
  });

  it('sends the same encoder bytes for 5 forced steps as for 20 (before: 4x as many)', async () => {
    const short = await sentDuring(captioner, () => captioner.caption(images.slice(0, 1), { strategy: 'greedy', minLength: 5, maxLength: 5 }));
    const long = await sentDuring(captioner, () => captioner.caption(images.slice(0, 1), { strategy: 'greedy', minLength: 20, maxLength: 20 }));
    expect(short.encoder_hidden_states).toBeGreaterThan(0);
    expect(long.encoder_hidden_states).toBe(short.encoder_hidden_states);
    expect(long.encoder_attention_mask ?? 0).toBe(short.encoder_attention_mask ?? 0);
    // The token ids do grow with the steps: the counter sees every step.
    expect(long.input_ids).toBeGreaterThan(short.input_ids!);
  });

  it('the key/value cache stays in the worker: its bytes sent do not grow with the steps, bytes received grow linearly (logits only)', async () => {
    const one = { strategy: 'greedy' as const };
    const received = async (n: number): Promise<{ received: number; past: number }> => {
      const before = captioner.decoderTraffic;
      const sent = await sentDuring(captioner, () => captioner.caption(images.slice(0, 1), { ...one, minLength: n, maxLength: n }));
      const past = Object.entries(sent).filter(([name]) => name.startsWith('past_key_values.')).reduce((a, [, b]) => a + b, 0);
      return { received: captioner.decoderTraffic.receivedBytes - before.receivedBytes, past };
    };
    const [r5, r10, r20] = [await received(5), await received(10), await received(20)];
    expect(r20.past).toBe(r5.past);
    if (layout !== 'no-cache') {
      // Before, the cache came back at every step: received bytes grew with the square of the length.
      expect(r20.received - r5.received).toBe(3 * (r10.received - r5.received));
    }
  });

  it('K = 5 captions of 3 images send the encoder bytes of 3 images, not 15', async () => {
    const one = await sentDuring(captioner, () => captioner.caption(images.slice(0, 1), { strategy: 'greedy', minLength: 3, maxLength: 3 }));
    const many = await sentDuring(captioner, () => captioner.caption(images, { strategy: 'nucleus', k: 5, seed: 3, keys: ['a', 'b', 'c'], minLength: 8, maxLength: 8 }));
    expect(many.encoder_hidden_states).toBe(3 * one.encoder_hidden_states!);
  });

  it('holds no resident tensors after many captions, beams and samples included', async () => {
    for (let i = 0; i < 6; i++) {
      await captioner.caption(images, { strategy: 'beam', numBeams: 3, k: 2, minLength: 0, maxLength: 8 });
      await captioner.caption(images, { strategy: 'nucleus', k: 4, seed: i, keys: ['a', 'b', 'c'], maxLength: 8, minLength: 0 });
    }
    expect(await captioner.residentSets()).toBe(0);
  });
});

describe('a failure mid-decode releases the resident tensors', () => {
  let captioner: OnnxCaptioner;
  beforeAll(async () => {
    captioner = await OnnxCaptioner.load(LAYOUT_DIRS.merged);
  });
  afterAll(async () => {
    await captioner.close();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('the worker rejects step 3 (token id out of the vocabulary): caption() fails, 0 sets left, the next caption works', async () => {
    const run = OnnxSession.prototype.run;
    let decoderRuns = 0;
    vi.spyOn(OnnxSession.prototype, 'run').mockImplementation(function (this: OnnxSession, feeds, options) {
      if (feeds.input_ids !== undefined && ++decoderRuns === 3) {
        const ids = feeds.input_ids as TensorData & { type: 'int64' };
        feeds = { ...feeds, input_ids: { ...ids, data: ids.data.map(() => 1_000_000n) } };
      }
      return run.call(this, feeds, options);
    });
    await expect(captioner.caption(images, { strategy: 'greedy', minLength: 6, maxLength: 6 })).rejects.toThrow(/failed to run/);
    expect(decoderRuns).toBe(3);
    expect(await captioner.residentSets()).toBe(0);
    vi.restoreAllMocks();
    const again = await captioner.caption(images, { strategy: 'greedy', minLength: 6, maxLength: 6 });
    expect(again).toHaveLength(3);
    expect(await captioner.residentSets()).toBe(0);
  });

  it('a run naming a released set is refused before it reaches the worker', async () => {
    const before = await captioner.residentSets();
    expect(before).toBe(0);
    // Reach a decoder session through the spy: the first decoder run shows it.
    let decoder: OnnxSession | undefined;
    const run = OnnxSession.prototype.run;
    vi.spyOn(OnnxSession.prototype, 'run').mockImplementation(function (this: OnnxSession, feeds, options) {
      if (feeds.input_ids !== undefined) decoder ??= this;
      return run.call(this, feeds, options);
    });
    await captioner.caption(images.slice(0, 1), { strategy: 'greedy', minLength: 1, maxLength: 1 });
    const set = decoder!.resident();
    set.release();
    await expect(decoder!.run({}, { resident: set })).rejects.toThrow(/released/);
    expect(await captioner.residentSets()).toBe(0);
  });
});
