/**
 * Noisy "web" captions. A fixed number of images, round(noise * count), get one of five kinds of noise;
 * the rest get one of their own ground-truth captions as the web caption.
 */
import { relationCount, relationHolds, renderCaption, type CaptionPlan } from './captions.js';
import type { Rng } from './rng.js';
import type { SceneObject } from './scene.js';
import { COLORS, RELATIONS, SHAPES } from './vocabulary.js';

export const NOISE_KINDS = ['mismatch', 'swap', 'relation', 'boilerplate', 'empty'] as const;
export type NoiseKind = (typeof NOISE_KINDS)[number];

/** Share of each kind among the noisy images, in percent. */
export const NOISE_SHARES: Readonly<Record<NoiseKind, number>> = {
  mismatch: 30,
  swap: 25,
  relation: 15,
  boilerplate: 15,
  empty: 15,
};

/** Alt-text that says nothing about the picture. `#` stands for a random digit. */
export const BOILERPLATE = [
  'IMG_####.JPG',
  'DSC#####.jpg',
  'image',
  'photo',
  'stock photo',
  'click to buy',
  'click here to enlarge',
  'untitled',
  'thumbnail',
  'product image # of 5',
  'free shipping on all orders',
  'download high resolution image',
  'Copyright (c) all rights reserved',
  'see more at our online store',
  'placeholder.png',
  'view full size',
  'screenshot_####.png',
  'Best price guaranteed!',
] as const;

/**
 * Split `noisy` images among the kinds by their shares (largest remainder, ties in kind order), so the
 * counts always add up to `noisy`.
 */
export function apportionNoise(noisy: number): Record<NoiseKind, number> {
  const exact = NOISE_KINDS.map((kind) => (noisy * NOISE_SHARES[kind]) / 100);
  const counts = exact.map(Math.floor);
  let left = noisy - counts.reduce((s, c) => s + c, 0);
  const byRemainder = NOISE_KINDS.map((_, i) => i).sort((a, b) => exact[b]! - counts[b]! - (exact[a]! - counts[a]!) || a - b);
  for (const i of byRemainder) {
    if (left <= 0) break;
    counts[i]! += 1;
    left -= 1;
  }
  return Object.fromEntries(NOISE_KINDS.map((kind, i) => [kind, counts[i]!])) as Record<NoiseKind, number>;
}

/**
 * Decide which images are noisy and how: a map from image index to kind, exactly `noisy` entries. A
 * `relation` swap needs a scene with a relation (two or more objects, `hasRelation`): such a kind drawn for
 * a one-object scene trades kinds with a noisy many-object scene of another kind, and where none is left
 * (tiny datasets) becomes a `swap`.
 */
export function assignNoise(
  rng: Rng,
  count: number,
  noisy: number,
  hasRelation: (index: number) => boolean = () => true,
): Map<number, NoiseKind> {
  const chosen = rng.shuffle(Array.from({ length: count }, (_, i) => i)).slice(0, noisy);
  const counts = apportionNoise(noisy);
  const kinds = rng.shuffle(NOISE_KINDS.flatMap((kind) => Array<NoiseKind>(counts[kind]).fill(kind)));
  for (let i = 0; i < chosen.length; i++) {
    if (kinds[i] !== 'relation' || hasRelation(chosen[i]!)) continue;
    const partner = chosen.findIndex((index, j) => kinds[j] !== 'relation' && hasRelation(index));
    if (partner >= 0) [kinds[i], kinds[partner]] = [kinds[partner]!, kinds[i]!];
    else kinds[i] = 'swap';
  }
  return new Map(chosen.map((index, i) => [index, kinds[i]!]));
}

export function boilerplate(rng: Rng): string {
  return rng.pick(BOILERPLATE).replace(/#/g, () => String(rng.int(0, 9)));
}

/** "color shape" pairs of a scene. */
function pairs(objects: readonly SceneObject[]): Set<string> {
  return new Set(objects.map((o) => `${o.color} ${o.shape}`));
}

/** True when two scenes share no (colour, shape) pair, i.e. a caption of one names none of the other's objects. */
export function namesDifferentObjects(a: readonly SceneObject[], b: readonly SceneObject[]): boolean {
  const own = pairs(a);
  return b.every((o) => !own.has(`${o.color} ${o.shape}`));
}

/**
 * Index of another scene whose objects share nothing with scene `index`, searched from a random start;
 * null when no such scene exists (tiny datasets).
 */
export function mismatchPartner(
  rng: Rng,
  index: number,
  scenes: readonly { objects: readonly SceneObject[] }[],
): number | null {
  const start = rng.int(0, scenes.length - 1);
  for (let t = 0; t < scenes.length; t++) {
    const j = (start + t) % scenes.length;
    if (j !== index && namesDifferentObjects(scenes[index]!.objects, scenes[j]!.objects)) return j;
  }
  return null;
}

/**
 * One ground-truth caption with a single attribute of one object replaced: a wrong colour or a wrong
 * shape, chosen so that the altered object (its colour and shape) appears nowhere in the scene.
 */
export function swapCaption(rng: Rng, objects: readonly SceneObject[], plans: readonly CaptionPlan[]): string {
  const own = pairs(objects);
  const plan = rng.pick(plans);
  const k = rng.int(0, objects.length - 1);
  const target = objects[k]!;
  const swapColor = rng.next() < 0.5;
  const options = swapColor
    ? COLORS.filter((c) => !own.has(`${c} ${target.shape}`)).map((c) => ({ ...target, color: c }))
    : SHAPES.filter((s) => !own.has(`${target.color} ${s}`)).map((s) => ({ ...target, shape: s }));
  // With at most three objects there are always at least three other colours and two other shapes.
  const replacement = rng.pick(options);
  const words = objects.map((o, i) => (i === k ? replacement : o));
  return renderCaption(plan, objects, words);
}

/**
 * One ground-truth caption that states a relation, with one of its relations replaced by a false one (by
 * the generator's rule, e.g. "above" for side-by-side objects, or "to the left of" for an object on the
 * right): the objects are all right, only the relation is wrong. `plans` must include a relational one.
 */
export function relationSwapCaption(rng: Rng, objects: readonly SceneObject[], plans: readonly CaptionPlan[]): string {
  const relational = plans.filter((p) => relationCount(p, objects) > 0);
  if (relational.length === 0) throw new RangeError('relationSwapCaption: the scene has no caption that states a relation');
  const plan = rng.pick(relational);
  const wrongAt = rng.int(0, relationCount(plan, objects) - 1);
  return renderCaption(plan, objects, objects, (truth, a, b, call) =>
    call === wrongAt ? rng.pick(RELATIONS.filter((r) => !relationHolds(r, a, b))) : truth,
  );
}
