import { describe, expect, it } from 'vitest';
import { demoSynth } from '../../src/synth/demo-synth.js';
import { synthOptionsSchema } from '../../src/synth/synth-options.js';
import { timedBatches } from '../../src/synth/timed-batches.js';

async function* slow(items: number[], gapMs: number): AsyncGenerator<number> {
  for (const item of items) {
    await new Promise((resolve) => setTimeout(resolve, gapMs));
    yield item;
  }
}

describe('timedBatches', () => {
  it('fills groups when items come fast, and lets a partial group go after the wait', async () => {
    const fast: number[][] = [];
    for await (const group of timedBatches(slow([1, 2, 3, 4, 5], 0), 2, 10_000)) fast.push(group);
    expect(fast).toEqual([[1, 2], [3, 4], [5]]);
    const timed: number[][] = [];
    for await (const group of timedBatches(slow([1, 2, 3], 60), 10, 20)) timed.push(group);
    expect(timed.flat()).toEqual([1, 2, 3]);
    expect(timed.length).toBe(3);
  });

  it('returns the source when the consumer stops early', async () => {
    let closed = false;
    async function* source() {
      try {
        yield* [1, 2, 3, 4];
      } finally {
        closed = true;
      }
    }
    for await (const group of timedBatches(source(), 2, 1000)) {
      expect(group).toEqual([1, 2]);
      break;
    }
    expect(closed).toBe(true);
  });
});

describe('demo synthesis settings', () => {
  it('skips LLM tasks without an endpoint and says how to enable them', () => {
    const off = demoSynth({});
    expect(synthOptionsSchema.parse(off.synth).tasks).toEqual(['stage1', 'grounding']);
    expect(off.note).toMatch(/VLCURATE_LLM_BASE_URL/);
    const on = demoSynth({ VLCURATE_LLM_BASE_URL: 'http://127.0.0.1:8000/v1', VLCURATE_LLM_MODEL: 'qwen', VLCURATE_LLM_API_KEY_ENV: 'MY_KEY' });
    const parsed = synthOptionsSchema.parse(on.synth);
    expect(parsed.tasks).toContain('conversation');
    expect(parsed.llm).toMatchObject({ baseURL: 'http://127.0.0.1:8000/v1', model: 'qwen', apiKeyEnv: 'MY_KEY' });
  });
});
