import { describe, expect, it } from 'vitest';
import { calibrate } from '../../src/filter/calibrate.js';
import { captionIsCorrect, namedObjects } from '../../datasets/shapes/index.js';

describe('calibrate', () => {
  it('computes precision/recall per threshold and picks the most-recall cut at the target precision', () => {
    // Scores: positives high, one negative mixed in at 0.7.
    const pairs = [
      { score: 0.95, match: true },
      { score: 0.9, match: true },
      { score: 0.8, match: true },
      { score: 0.7, match: false },
      { score: 0.6, match: true },
      { score: 0.3, match: false },
      { score: 0.1, match: false },
    ];
    const result = calibrate(pairs, 0.8, 4);
    expect(result.positives).toBe(4);
    // At 0.6: kept 5 (4 true) -> precision 0.8, recall 1. Lower cuts fall under 0.8.
    expect(result.pick).toMatchObject({ threshold: 0.6, kept: 5, precision: 0.8, recall: 1 });
    expect(calibrate(pairs, 1).pick).toMatchObject({ threshold: 0.8, kept: 3, recall: 0.75 });
    const top = result.rows.at(-1)!;
    expect(top).toMatchObject({ threshold: 0.95, kept: 1, precision: 1, recall: 0.25 });
    expect(result.rows[0]).toMatchObject({ threshold: 0.1, kept: 7 });
  });

  it('handles a run-sized score list (300k) without spreading it into a call', () => {
    const pairs = Array.from({ length: 300_000 }, (_, i) => ({ score: (i % 1000) / 1000, match: i % 1000 >= 500 }));
    const result = calibrate(pairs, 0.99);
    expect(result.rows[0]!.threshold).toBe(0);
    expect(result.rows.at(-1)!.threshold).toBeCloseTo(0.999);
    expect(result.pick!.recall).toBe(1);
  });

  it('no cut reaches an impossible target; empty input is empty', () => {
    expect(calibrate([{ score: 0.5, match: false }], 0.9).pick).toBeNull();
    expect(calibrate([], 0.9)).toMatchObject({ pairs: 0, rows: [], pick: null });
  });
});

describe('shapes caption judge', () => {
  const truth = { objects: [{ shape: 'circle', color: 'red', size: 'large', box: [0, 0, 1, 1] as [number, number, number, number] }, { shape: 'square', color: 'blue', size: 'small', box: [0, 0, 1, 1] as [number, number, number, number] }] };
  it('accepts captions naming exactly the objects, in any order, with or without size', () => {
    expect(captionIsCorrect('a large red circle to the left of a small blue square', truth)).toBe(true);
    expect(captionIsCorrect('a blue square and a red circle', truth)).toBe(true);
  });
  it('rejects wrong colour, wrong shape, wrong size, missing or extra objects, boilerplate', () => {
    expect(captionIsCorrect('a large green circle to the left of a small blue square', truth)).toBe(false);
    expect(captionIsCorrect('a large red star to the left of a small blue square', truth)).toBe(false);
    expect(captionIsCorrect('a small red circle to the left of a small blue square', truth)).toBe(false);
    expect(captionIsCorrect('a large red circle', truth)).toBe(false);
    expect(captionIsCorrect('a red circle, a blue square and a green star', truth)).toBe(false);
    expect(captionIsCorrect('IMG_0042.JPG', truth)).toBe(false);
    expect(namedObjects('A Small Blue Square!')).toEqual([{ size: 'small', color: 'blue', shape: 'square' }]);
  });
});
