/**
 * Ground-truth captions in COCO style. Each image gets five captions from different templates; every
 * caption names every object as "<size> <color> <shape>", and scenes with several objects get spatial
 * relations computed from the box centres. No template names an object twice (later mentions say "it"),
 * so changing one object's words changes exactly one word of a caption, which the swap noise relies on.
 */
import type { Rng } from './rng.js';
import { centre, type SceneObject } from './scene.js';
import type { Relation } from './vocabulary.js';

/** Ground-truth captions per image. */
export const CAPTIONS_PER_IMAGE = 5;

interface Words {
  /** "a large red circle": the object at position `i` of the caption's object order. */
  a(i: number): string;
  /** "large red circle". */
  bare(i: number): string;
  /** Relation of the object at position `i` to the one at position `j`. */
  rel(i: number, j: number): Relation;
}

type Template = (w: Words) => string;

interface TemplateSet {
  /** Templates that carry a spatial relation: every one of them is used. */
  relational: Template[];
  /** The rest fill the five slots, drawn at random. */
  plain: Template[];
}

const TEMPLATES: readonly TemplateSet[] = [
  // one object
  {
    relational: [],
    plain: [
      (w) => w.a(0),
      (w) => `${w.a(0)} on a plain background`,
      (w) => `a picture of ${w.a(0)}`,
      (w) => `an image of ${w.a(0)}`,
      (w) => `there is ${w.a(0)} in the picture`,
      (w) => `a single ${w.bare(0)}`,
      (w) => `a photo of ${w.a(0)}`,
    ],
  },
  // two objects
  {
    relational: [
      (w) => `${w.a(0)} ${w.rel(0, 1)} ${w.a(1)}`,
      (w) => `there is ${w.a(0)} ${w.rel(0, 1)} ${w.a(1)}`,
      (w) => `${w.a(0)} with ${w.a(1)} ${w.rel(1, 0)} it`,
    ],
    plain: [
      (w) => `a picture of ${w.a(0)} and ${w.a(1)}`,
      (w) => `an image of ${w.a(0)} and ${w.a(1)}`,
      (w) => `${w.a(0)} and ${w.a(1)} on a plain background`,
    ],
  },
  // three objects
  {
    relational: [
      (w) => `${w.a(0)} ${w.rel(0, 1)} ${w.a(1)} and ${w.a(2)} ${w.rel(2, 1)} it`,
      (w) => `${w.a(0)} with ${w.a(1)} ${w.rel(1, 0)} it and ${w.a(2)} ${w.rel(2, 0)} it`,
    ],
    plain: [
      (w) => `${w.a(0)}, ${w.a(1)} and ${w.a(2)}`,
      (w) => `a picture of ${w.a(0)}, ${w.a(1)} and ${w.a(2)}`,
      (w) => `an image of ${w.a(0)}, ${w.a(1)} and ${w.a(2)}`,
      (w) => `${w.a(0)}, ${w.a(1)} and ${w.a(2)} on a plain background`,
    ],
  },
];

/**
 * How one caption was made: its template, the order in which it names the objects, and whether a
 * side-by-side relation is phrased "next to". Rendering a plan again with altered object words yields the
 * same sentence with only those words changed.
 */
export interface CaptionPlan {
  template: Template;
  order: number[];
  nextTo: boolean;
}

/** Where `a` lies relative to `b`, from box centres; the dominant axis decides. */
export function relationOf(a: Pick<SceneObject, 'box'>, b: Pick<SceneObject, 'box'>, nextTo: boolean): Relation {
  const [ax, ay] = centre(a.box);
  const [bx, by] = centre(b.box);
  const dx = ax - bx;
  const dy = ay - by;
  if (Math.abs(dx) >= Math.abs(dy)) {
    if (nextTo) return 'next to';
    return dx < 0 ? 'to the left of' : 'to the right of';
  }
  return dy < 0 ? 'above' : 'below';
}

/** Does `a` stand in relation `relation` to `b`? The generator's own rule: "next to" for side by side. */
export function relationHolds(relation: Relation, a: Pick<SceneObject, 'box'>, b: Pick<SceneObject, 'box'>): boolean {
  return relationOf(a, b, relation === 'next to') === relation;
}

/** "large red circle". */
export function objectWords(o: Pick<SceneObject, 'size' | 'color' | 'shape'>): string {
  return `${o.size} ${o.color} ${o.shape}`;
}

/**
 * Which relation phrase the `call`-th relation of a caption gets (0-based, in template order), given the true
 * one and the two objects; the default keeps the truth.
 */
export type RelationChoice = (truth: Relation, a: SceneObject, b: SceneObject, call: number) => Relation;

/**
 * Render a plan. `words` may differ from `objects` in colour or shape words (a swap); geometry, and so
 * every relation, comes from `objects` unless `relation` says otherwise (a relation swap).
 */
export function renderCaption(
  plan: CaptionPlan,
  objects: readonly SceneObject[],
  words: readonly Pick<SceneObject, 'size' | 'color' | 'shape'>[] = objects,
  relation: RelationChoice = (truth) => truth,
): string {
  const at = (i: number): number => plan.order[i]!;
  let calls = 0;
  return plan.template({
    a: (i) => `a ${objectWords(words[at(i)]!)}`,
    bare: (i) => objectWords(words[at(i)]!),
    rel: (i, j) => {
      const a = objects[at(i)]!;
      const b = objects[at(j)]!;
      return relation(relationOf(a, b, plan.nextTo), a, b, calls++);
    },
  });
}

/** How many spatial relations a plan's caption states. */
export function relationCount(plan: CaptionPlan, objects: readonly SceneObject[]): number {
  let n = 0;
  renderCaption(plan, objects, objects, (truth) => {
    n++;
    return truth;
  });
  return n;
}

/** Choose five caption plans for a scene: all relational templates plus random plain ones. */
export function planCaptions(rng: Rng, objects: readonly SceneObject[]): CaptionPlan[] {
  const set = TEMPLATES[objects.length - 1];
  if (!set) throw new RangeError(`planCaptions: expected 1 to ${TEMPLATES.length} objects, got ${objects.length}`);
  const fill = CAPTIONS_PER_IMAGE - set.relational.length;
  const templates = rng.shuffle([...set.relational, ...rng.shuffle(set.plain).slice(0, fill)]);
  const indices = objects.map((_, i) => i);
  return templates.map((template) => ({
    template,
    order: rng.shuffle(indices),
    nextTo: rng.next() < 0.25,
  }));
}
