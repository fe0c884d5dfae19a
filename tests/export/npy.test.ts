import { describe, expect, it } from 'vitest';
import { int32Npy } from '../../src/export/npy.js';
import { lengthStats } from '../../src/export/token-stats.js';
import { parseNpy } from './npy.js';

describe('.npy v1.0 int32 writer', () => {
  it('writes what an independent parser reads back, header padded to a multiple of 64', () => {
    for (const values of [[], [7], [1, -100, -200, 2147483647, -2147483648], Array.from({ length: 1000 }, (_, i) => i * 3 - 500)]) {
      const bytes = int32Npy(Int32Array.from(values));
      const parsed = parseNpy(bytes);
      expect(parsed.major).toBe(1);
      expect(parsed.minor).toBe(0);
      expect(parsed.descr).toBe('<i4');
      expect(parsed.fortranOrder).toBe(false);
      expect(parsed.shape).toEqual([values.length]);
      expect(parsed.values).toEqual(values);
      expect(parsed.dataOffset % 64).toBe(0);
      expect(parsed.header.endsWith('\n')).toBe(true);
      expect(parsed.header).toMatch(/^\{'descr': '<i4', 'fortran_order': False, 'shape': \(\d+,\), \} *\n$/);
    }
  });
});

describe('length statistics', () => {
  it('gives nearest-rank quantiles, power-of-two buckets and the over-length count', () => {
    const lengths = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
    const stats = lengthStats(lengths, 90)!;
    expect(stats).toMatchObject({ count: 100, min: 1, p50: 50, p90: 90, p99: 99, max: 100, mean: 50.5, maxLength: 90, overMaxLength: 10 });
    expect(stats.histogram).toEqual([
      { from: 0, to: 64, count: 64 },
      { from: 65, to: 128, count: 36 },
    ]);
    expect(lengthStats([])).toBeNull();
    expect(lengthStats([700, 700, 3000])!.histogram.map((b) => b.count)).toEqual([0, 0, 0, 0, 2, 0, 1]);
  });
});
