import { describe, expect, it } from 'vitest';

import { resolveDecoding } from '../../src/captioner/decoding/options.js';
import { decodingFromRecipe, onnxCaptionerOptionsSchema } from '../../src/captioner/onnx-captioner.js';

describe('captioner options', () => {
  it('defaults to BLIP`s CapFilt captioner settings', () => {
    expect(resolveDecoding()).toEqual({
      k: 1,
      strategy: 'nucleus',
      topP: 0.9,
      topK: 0,
      temperature: 1,
      repetitionPenalty: 1.1,
      minLength: 10,
      maxLength: 30,
      numBeams: 3,
      lengthPenalty: 1,
      earlyStopping: false,
      prompt: undefined,
      seed: 0,
    });
    expect(resolveDecoding({ strategy: 'beam' }).repetitionPenalty).toBe(1);
    expect(resolveDecoding({ strategy: 'greedy' }).repetitionPenalty).toBe(1);
    expect(resolveDecoding({ strategy: 'greedy', repetitionPenalty: 1.3 }).repetitionPenalty).toBe(1.3);
  });

  it('the recipe section fills defaults, checks fields against each other and maps samples to k', () => {
    const parsed = onnxCaptionerOptionsSchema.parse({ type: 'onnx', model: 'models/shapes-captioner', samples: 3, prompt: 'a picture of ' });
    expect(parsed).toMatchObject({ variant: 'fp32', samples: 3, batchSize: 8, strategy: 'nucleus', topP: 0.9, minLength: 10, maxLength: 30 });
    expect(decodingFromRecipe(parsed)).toMatchObject({ k: 3, prompt: 'a picture of ', strategy: 'nucleus' });
    expect(decodingFromRecipe(parsed)).not.toHaveProperty('model');

    const bad = onnxCaptionerOptionsSchema.safeParse({ type: 'onnx', model: 'm', samples: 3, strategy: 'greedy', minLength: 40 });
    expect(bad.success).toBe(false);
    const issues = bad.error!.issues.map((i) => [i.path.join('.'), i.message]);
    expect(issues).toContainEqual(['minLength', 'expected at most `maxLength` (30), got 40']);
    expect(issues.find(([p]) => p === 'samples')?.[1]).toMatch(/^expected 1 with strategy "greedy"/);
    expect(onnxCaptionerOptionsSchema.safeParse({ type: 'onnx', model: 'm', topP: 0 }).error?.issues[0]?.message).toBe(
      'expected a number greater than 0 and at most 1',
    );
    expect(onnxCaptionerOptionsSchema.safeParse({ type: 'onnx', model: 'm', sample: 2 }).success).toBe(false); // typo caught
  });
});
