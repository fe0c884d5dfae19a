import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { qwenImageProblem, qwenImageTokenCount, roundHalfEven, smartResize } from '../../src/core/smart-resize.js';
import { resolveVisionPixels } from '../../src/export/templates/vision-pixels.js';

describe('smart_resize (Qwen2-VL)', () => {
  it('matches the published test vectors', () => {
    expect(smartResize(480, 640)).toEqual({ height: 476, width: 644 });
    expect(qwenImageTokenCount(480, 640)).toBe(391);
    expect(smartResize(224, 224)).toEqual({ height: 224, width: 224 });
    expect(qwenImageTokenCount(224, 224)).toBe(64);
    expect(smartResize(1080, 1920)).toEqual({ height: 728, width: 1316 });
    expect(qwenImageTokenCount(1080, 1920)).toBe(1222);
  });

  it('rounds half to even like Python', () => {
    expect([0.5, 1.5, 2.5, 3.5, 2.4, 2.6, -0.5].map(roundHalfEven)).toEqual([0, 2, 2, 4, 2, 3, 0]);
    // 70 / 28 = 2.5 -> 2 (Math.round would give 3): a 70 px side becomes 56, not 84.
    expect(smartResize(70, 280).height).toBe(56);
  });

  it('keeps the area within min_pixels and max_pixels, sides multiples of the factor', () => {
    for (const [h, w] of [
      [12, 14],
      [10, 1000],
      [4000, 3000],
      [33, 33],
      [5000, 100],
    ] as const) {
      const size = smartResize(h, w);
      expect(size.height % 28).toBe(0);
      expect(size.width % 28).toBe(0);
      expect(size.height * size.width).toBeGreaterThanOrEqual(3136);
      expect(size.height * size.width).toBeLessThanOrEqual(28 * 28 * 1280);
    }
    expect(smartResize(480, 640, { maxPixels: 200_000 })).toEqual({ height: 364, width: 504 });
  });

  it('refuses an aspect ratio over 200', () => {
    expect(() => smartResize(10, 2500)).toThrow(/aspect ratio/);
  });
});

/**
 * Which images Qwen exports refuse. transformers' Qwen2-VL image processor raised "height:.. or width:..
 * must be larger than factor:28" for a side under 28 px up to v4.52 (image_processing_qwen2_vl.py, v4.50.0
 * lines 68-69); 4.57.6 (lines 54-80) and 5.18.0 (lines 63-89) drop that check and round the side to a
 * multiple of 28 first (12 px -> 0, then the min_pixels branch), while qwen-vl-utils (QwenLM/Qwen3-VL
 * commit 96588727e44c78b25ba03ea03b8e12f7e64fd0da, vision_process.py lines 56-81) takes max(28, ...):
 * computed with Python 3.11, a 1000x12 image is 28x532 (19 tokens) for transformers 4.57 and 28x1008
 * (36 tokens) for qwen-vl-utils. All of them raise for an aspect ratio over 200.
 */
describe('Qwen image checks', () => {
  it('refuse a side under 28 px and an aspect ratio over 200, nothing else', () => {
    expect(qwenImageProblem(28, 28)).toBeNull();
    expect(qwenImageProblem(5600, 28)).toBeNull(); // exactly 200
    expect(qwenImageProblem(20, 20)?.code).toBe('image_too_small');
    expect(qwenImageProblem(1000, 12)?.code).toBe('image_too_small');
    expect(qwenImageProblem(27, 4000)?.code).toBe('image_too_small');
    expect(qwenImageProblem(5601, 28)?.code).toBe('image_aspect_ratio');
    expect(qwenImageProblem(28, 5601)?.message).toMatch(/aspect ratio over 200/);
  });
});

describe('smart_resize bounds of an export', () => {
  const folder = (config?: unknown): string => {
    const dir = mkdtempSync(join(tmpdir(), 'vlc-pixels-'));
    made.push(dir);
    if (config !== undefined) writeFileSync(join(dir, 'preprocessor_config.json'), typeof config === 'string' ? config : JSON.stringify(config));
    return dir;
  };
  const made: string[] = [];
  afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('come from the options, else the model folder`s preprocessor_config.json, else the defaults', () => {
    // Qwen2-VL-7B-Instruct's own processor: max_pixels 12845056, so a 1080x1920 image keeps far more tokens.
    const qwen = folder({ min_pixels: 3136, max_pixels: 12845056, patch_size: 14, merge_size: 2 });
    const fromModel = resolveVisionPixels({}, qwen);
    expect(fromModel).toEqual({ minPixels: 3136, maxPixels: 12845056, from: 'preprocessor_config.json' });
    expect(qwenImageTokenCount(1080, 1920, fromModel)).toBe(2691);
    expect(resolveVisionPixels({}, folder({ size: { shortest_edge: 3136, longest_edge: 12845056 } }))).toMatchObject({ maxPixels: 12845056 });
    expect(resolveVisionPixels({ maxPixels: 200_000 }, qwen)).toEqual({ minPixels: 3136, maxPixels: 200_000, from: 'options' });
    expect(resolveVisionPixels({}, folder())).toEqual({ minPixels: 3136, maxPixels: 28 * 28 * 1280, from: 'defaults' });
    expect(resolveVisionPixels({}, null)).toMatchObject({ from: 'defaults' });
  });

  it('refuse a bad preprocessor_config.json, naming the file, the field and the value', () => {
    expect(() => resolveVisionPixels({}, folder({ max_pixels: 'lots' }))).toThrow(/preprocessor_config\.json: max_pixels expected a positive whole number, got "lots"/);
    expect(() => resolveVisionPixels({}, folder('{oops'))).toThrow(/preprocessor_config\.json: not valid JSON/);
    expect(() => resolveVisionPixels({ minPixels: 5000, maxPixels: 4000 }, null)).toThrow(/minPixels 5000 is larger than maxPixels 4000/);
  });
});
