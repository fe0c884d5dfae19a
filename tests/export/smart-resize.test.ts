import { describe, expect, it } from 'vitest';
import { qwenImageTokenCount, roundHalfEven, smartResize } from '../../src/export/templates/smart-resize.js';

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
