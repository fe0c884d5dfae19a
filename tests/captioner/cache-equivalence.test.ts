import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OnnxCaptioner, type CaptionOptions } from '../../src/captioner/onnx-captioner.js';
import { LAYOUT_DIRS, readImage } from './fixtures.js';

// The three fixture folders hold the same weights: the merged graph (If on use_cache_branch), the
// decoder + decoder-with-past pair, and the decoder alone (no cache, whole sequence every step).
const images = ['square-a.png', 'square-b.png', 'rotated.png'].map(readImage);

const configs: Array<[string, CaptionOptions]> = [
  ['greedy, long', { strategy: 'greedy', minLength: 0, maxLength: 25 }],
  ['greedy, prompt and penalty', { strategy: 'greedy', prompt: 'a photo of', minLength: 5, maxLength: 20, repetitionPenalty: 1.4 }],
  ['beam, 4 beams', { strategy: 'beam', numBeams: 4, k: 4, minLength: 0, maxLength: 20 }],
  ['beam, early stopping, length penalty', { strategy: 'beam', numBeams: 3, k: 2, minLength: 2, maxLength: 16, earlyStopping: true, lengthPenalty: 0.3 }],
  ['nucleus, 5 samples', { strategy: 'nucleus', k: 5, seed: 11, minLength: 0, maxLength: 24, topP: 0.95, temperature: 1.3 }],
  ['nucleus, top-k and prompt', { strategy: 'nucleus', k: 4, seed: 12, minLength: 4, maxLength: 18, topK: 8, prompt: 'a picture of ' }],
];

describe('cached decoding gives exactly the tokens of uncached decoding', () => {
  const captioners: Partial<Record<keyof typeof LAYOUT_DIRS, OnnxCaptioner>> = {};
  beforeAll(async () => {
    for (const [layout, dir] of Object.entries(LAYOUT_DIRS)) {
      captioners[layout as keyof typeof LAYOUT_DIRS] = await OnnxCaptioner.load(dir);
    }
  });
  afterAll(async () => {
    await Promise.all(Object.values(captioners).map((c) => c.close()));
  });

  for (const [name, options] of configs) {
    it(name, async () => {
      const opts = { ...options, keys: ['a', 'b', 'c'] };
      const [merged, pair, noCache] = await Promise.all([
        captioners.merged!.caption(images, opts),
        captioners.pair!.caption(images, opts),
        captioners['no-cache']!.caption(images, opts),
      ]);
      const ids = (out: typeof merged) => out.map((per) => per.map((c) => c.tokenIds));
      expect(ids(pair)).toEqual(ids(noCache));
      expect(ids(merged)).toEqual(ids(noCache));
      expect(merged.map((per) => per.length)).toEqual([0, 1, 2].map(() => options.k ?? 1));
      // Not all the same caption: the comparison means something.
      expect(new Set(merged.flat().map((c) => c.text)).size).toBeGreaterThan(1);
      merged.flat().forEach((c, i) => expect(c.logProb).toBeCloseTo(noCache.flat()[i]!.logProb, 4));
    });
  }
});
