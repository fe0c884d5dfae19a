import { describe, expect, it } from 'vitest';

import { beamSearch, type BeamOptions } from '../../src/captioner/decoding/beam-search.js';
import { greedyDecode } from '../../src/captioner/decoding/greedy.js';
import { chain, EOS, ScriptedModel, setup, START } from './scripted-model.js';

const base: BeamOptions = { numBeams: 2, lengthPenalty: 1, earlyStopping: false, repetitionPenalty: 1, minLength: 0, maxLength: 10, k: 1 };

describe('beam search', () => {
  it('finds a more likely caption than greedy decoding', async () => {
    const [greedy] = await greedyDecode(new ScriptedModel(chain, 6), setup, base, 1);
    const [[best]] = (await beamSearch(new ScriptedModel(chain, 6), setup, base, 1)) as [[{ tokens: number[]; logProb: number; finished: boolean }]];
    expect(greedy!.tokens).toEqual([1, 3]);
    expect(best.tokens).toEqual([2]);
    expect(best.finished).toBe(true);
    expect(best.logProb).toBeCloseTo(Math.log(0.45) + Math.log(0.95), 5);
    expect(best.logProb).toBeGreaterThan(greedy!.logProb);
  });

  it('returns k hypotheses, best first by length-penalised score', async () => {
    const [hyps] = await beamSearch(new ScriptedModel(chain, 6), setup, { ...base, numBeams: 3, k: 3 }, 1);
    // Hypotheses at step 1: [2] and [1] (and a junk one from the dead third beam); at step 2 [1 3] and
    // [1 4] end and push out [1] and the junk one.
    expect(hyps!.map((h) => h.tokens)).toEqual([[2], [1, 3], [1, 4]]);
    const scores = hyps!.map((h) => h.logProb / (h.tokens.length + 1));
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
  });

  it('a large length penalty favours longer captions', async () => {
    const [hyps] = await beamSearch(new ScriptedModel(chain, 6), setup, { ...base, lengthPenalty: 4, k: 2 }, 1);
    // log(0.55 * 0.34) / 3^4 = -0.0207 and log(0.55 * 0.33) / 3^4 = -0.0211 beat log(0.45 * 0.95) / 2^4 = -0.0531.
    expect(hyps!.map((h) => h.tokens)).toEqual([[1, 3], [1, 4]]);
  });

  it('early stopping ends an image as soon as numBeams captions are finished', async () => {
    // [2] ends at step 1 and [1 3] at step 2; the running beam [1 3 3] still scores better at length 3
    // with lengthPenalty 3, so without early stopping the search goes on.
    const longer = { [START]: { 1: 0.6, 2: 0.4 }, 1: { 3: 0.8, 4: 0.2 }, 2: { [EOS]: 0.9, 1: 0.1 }, 3: { 3: 0.7, [EOS]: 0.3 }, 4: { [EOS]: 1 } };
    const lazy = new ScriptedModel(longer, 6);
    const eager = new ScriptedModel(longer, 6);
    await beamSearch(lazy, setup, { ...base, lengthPenalty: 3 }, 1);
    await beamSearch(eager, setup, { ...base, lengthPenalty: 3, earlyStopping: true }, 1);
    expect(eager.calls).toBeLessThan(lazy.calls);
    expect(eager.calls).toBe(3);
  });

  it('stops at the maximum length with unfinished beams as hypotheses', async () => {
    const loop = { [START]: { 1: 0.6, 2: 0.4 }, 1: { 1: 0.7, 2: 0.3 }, 2: { 2: 0.8, 1: 0.2 } };
    const [hyps] = await beamSearch(new ScriptedModel(loop, 6), setup, { ...base, maxLength: 3, k: 2 }, 1);
    expect(hyps).toHaveLength(2);
    for (const h of hyps!) {
      expect(h.finished).toBe(false);
      expect(h.tokens).toHaveLength(3);
    }
    expect(hyps![0]!.tokens).toEqual([1, 1, 1]);
  });

  it('blocks end-of-sequence before the minimum length', async () => {
    const [hyps] = await beamSearch(new ScriptedModel(chain, 6), setup, { ...base, minLength: 2, k: 2 }, 1);
    for (const h of hyps!) expect(h.tokens.length).toBeGreaterThanOrEqual(2);
    expect(hyps![0]!.tokens).toEqual([1, 3]);
  });

  it('searches several images in one batch, reordering the cache rows, and drops finished images', async () => {
    const model = new ScriptedModel(chain, 6);
    const out = await beamSearch(model, setup, { ...base, numBeams: 3, k: 3 }, 3);
    const alone = await beamSearch(new ScriptedModel(chain, 6), setup, { ...base, numBeams: 3, k: 3 }, 1);
    expect(out).toEqual([alone[0], alone[0], alone[0]]);
    expect(model.rowsPerCall[0]).toBe(3); // one prefix row per image
    expect(model.rowsPerCall[1]).toBe(9); // then numBeams rows per image
  });
});
