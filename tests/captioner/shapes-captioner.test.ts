/**
 * The shapes demo captioner (models/shapes-captioner, trained by tools/train_shapes.py in the optimum
 * layout): cached decoding through the merged graph and through the decoder pair gives exactly the
 * tokens of uncached decoding, and greedy captions name what is in the committed sample images.
 * Skipped while the model folder does not exist.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OnnxCaptioner, type CaptionOptions } from '../../src/captioner/onnx-captioner.js';

const root = path.resolve(import.meta.dirname, '../..');
const modelDir = path.join(root, 'models', 'shapes-captioner');
const sample = path.join(root, 'datasets', 'shapes-sample');

interface Truth {
  key: string;
  objects: Array<{ shape: string; color: string }>;
}

describe('shapes demo captioner', () => {
  const truth = readFileSync(path.join(sample, 'ground_truth.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Truth);
  const images = truth.map((t) => readFileSync(path.join(sample, 'coco', 'images', `${t.key}.jpg`)));
  const keys = truth.map((t) => t.key);
  const captioners: Partial<Record<'merged' | 'pair' | 'no-cache', OnnxCaptioner>> = {};
  beforeAll(async () => {
    captioners.merged = await OnnxCaptioner.load(modelDir);
    const hasPair = existsSync(path.join(modelDir, 'onnx', 'decoder_with_past_model.onnx'));
    if (hasPair) captioners.pair = await OnnxCaptioner.load(modelDir, { layout: 'pair' });
    if (existsSync(path.join(modelDir, 'onnx', 'decoder_model.onnx'))) captioners['no-cache'] = await OnnxCaptioner.load(modelDir, { layout: 'no-cache' });
  });
  afterAll(async () => {
    await Promise.all(Object.values(captioners).map((c) => c.close()));
  });

  const configs: Array<[string, CaptionOptions]> = [
    ['greedy', { strategy: 'greedy', minLength: 0, maxLength: 20 }],
    ['beam', { strategy: 'beam', numBeams: 3, k: 3, minLength: 0, maxLength: 20 }],
    ['nucleus', { strategy: 'nucleus', k: 3, seed: 3, minLength: 0, maxLength: 20 }],
    ['nucleus with a prompt', { strategy: 'nucleus', k: 2, seed: 4, minLength: 2, maxLength: 20, prompt: 'a picture of ', topK: 10, temperature: 1.2 }],
  ];
  for (const [name, options] of configs) {
    it(`${name}: the same tokens with and without the cache`, async () => {
      const merged = await captioners.merged!.caption(images, { ...options, keys });
      const ids = (out: typeof merged) => out.map((per) => per.map((c) => c.tokenIds));
      for (const layout of ['pair', 'no-cache'] as const) {
        const c = captioners[layout];
        if (c === undefined) continue;
        expect(ids(await c.caption(images, { ...options, keys })), layout).toEqual(ids(merged));
      }
    });
  }

  it('greedy captions name a colour and shape of the image', async () => {
    expect(captioners.merged!.layout).toBe('merged');
    const out = await captioners.merged!.caption(images, { strategy: 'greedy', minLength: 0, maxLength: 20 });
    const named = out.filter((per, i) => truth[i]!.objects.some((o) => per[0]!.text.includes(`${o.color} ${o.shape}`)));
    expect(named.length / out.length).toBeGreaterThanOrEqual(0.5);
  });
});
