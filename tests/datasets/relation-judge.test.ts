/**
 * The demo's relation judge (datasets/shapes/relation-judge.ts): spatial relations a caption states,
 * checked against the boxes by the generator's rule (dominant axis between box centres; "next to" only
 * side by side).
 */
import { describe, expect, it } from 'vitest';
import { planDataset, relationsAreCorrect, statedRelations } from '../../datasets/shapes/index.js';
import { expectEvery } from '../expect-every.js';

type Box = [number, number, number, number];
const obj = (size: 'small' | 'large', color: 'red' | 'blue' | 'green', shape: 'circle' | 'square' | 'star', box: Box) => ({
  size,
  color,
  shape,
  box,
});

// Red circle on the left, blue square on the right (same height), green star below the square.
const scene = {
  objects: [
    obj('large', 'red', 'circle', [10, 40, 50, 80]),
    obj('small', 'blue', 'square', [80, 50, 100, 70]),
    obj('small', 'green', 'star', [80, 100, 100, 120]),
  ],
};
const pair = { objects: scene.objects.slice(0, 2) };

describe('relation judge', () => {
  it('checks "A <relation> B" by the dominant axis between box centres', () => {
    expect(relationsAreCorrect('a large red circle to the left of a small blue square', pair)).toBe(true);
    expect(relationsAreCorrect('a large red circle next to a small blue square', pair)).toBe(true);
    expect(relationsAreCorrect('there is a small blue square to the right of a large red circle', pair)).toBe(true);
    expect(relationsAreCorrect('a large red circle to the right of a small blue square', pair)).toBe(false);
    expect(relationsAreCorrect('a large red circle above a small blue square', pair)).toBe(false);
    expect(relationsAreCorrect('a large red circle below a small blue square', pair)).toBe(false);
  });

  it('resolves "it" to the object a "with" clause hangs on, else to the previous relation\'s object', () => {
    expect(relationsAreCorrect('a small blue square with a large red circle to the left of it', pair)).toBe(true);
    expect(relationsAreCorrect('a small blue square with a large red circle to the right of it', pair)).toBe(false);
    // Star below the square, not below the circle (the circle is far left: horizontal dominates).
    expect(relationsAreCorrect('a large red circle to the left of a small blue square and a small green star below it', scene)).toBe(true);
    expect(statedRelations('a large red circle to the left of a small blue square and a small green star above it', scene)).toEqual([true, false]);
    expect(statedRelations('a small blue square with a large red circle to the left of it and a small green star below it', scene)).toEqual([
      true,
      true,
    ]);
    expect(statedRelations('a small blue square with a large red circle to the left of it and a small green star above it', scene)).toEqual([
      true,
      false,
    ]);
  });

  it('is null without a relation, and false when the objects are wrong or cannot be resolved', () => {
    expect(relationsAreCorrect('a large red circle and a small blue square', pair)).toBeNull();
    expect(relationsAreCorrect('', pair)).toBeNull();
    // Right relation between the boxes, but a colour that is not in the scene.
    expect(relationsAreCorrect('a large red circle to the left of a small green square', pair)).toBe(false);
    // Right relation, but the caption leaves out an object of the scene.
    expect(relationsAreCorrect('a large red circle to the left of a small blue square', scene)).toBe(false);
    expect(relationsAreCorrect('a large red circle to the left of it', pair)).toBe(false);
    expect(relationsAreCorrect('to the left of a small blue square', pair)).toBe(false);
  });

  it('judges every ground-truth caption that states a relation correct (400 generated scenes)', () => {
    const plan = planDataset({ count: 400, noise: 0, seed: 9, imageSize: 128 });
    const truth = (i: (typeof plan)[number]) => ({ objects: i.scene.objects });
    const stated = plan.flatMap((i) => i.captions.map((c) => relationsAreCorrect(c, truth(i))).filter((r) => r !== null));
    expect(stated.length).toBeGreaterThan(500);
    expectEvery(stated, (r) => r === true);
    // Scenes of one object never get a relation caption.
    const single = plan.filter((i) => i.scene.objects.length === 1);
    expect(single.length).toBeGreaterThan(50);
    expectEvery(single.flatMap((i) => i.captions), (c) => statedRelations(c, { objects: [] }).length === 0);
  });
});
