import { COLORS, SHAPES, SIZES } from './vocabulary.js';

export interface NamedObject {
  size: string | null;
  color: string;
  shape: string;
}

const SIZE_SET = new Set<string>(SIZES);
const COLOR_SET = new Set<string>(COLORS);
const SHAPE_SET = new Set<string>(SHAPES);

/**
 * The objects a caption names, read as `[size] color shape` word runs (the shapes vocabulary is closed,
 * so this is exact for the domain's captions and strict for anything else).
 */
export function namedObjects(caption: string): NamedObject[] {
  const words = caption.toLowerCase().match(/[a-z]+/g) ?? [];
  const found: NamedObject[] = [];
  for (let i = 0; i < words.length; i++) {
    if (!COLOR_SET.has(words[i]!) || !SHAPE_SET.has(words[i + 1] ?? '')) continue;
    const before = words[i - 1] ?? '';
    found.push({ size: SIZE_SET.has(before) ? before : null, color: words[i]!, shape: words[i + 1]! });
  }
  return found;
}

/**
 * Is the caption a correct description of the scene? It must name every object exactly once with the
 * right colour and shape, name nothing else, and any size it gives must be right. Spatial relations are
 * judged apart, by `relationsAreCorrect` (relation-judge.ts).
 */
export function captionIsCorrect(caption: string, truth: { objects: readonly { shape: string; color: string; size: string }[] }): boolean {
  const named = namedObjects(caption);
  if (named.length !== truth.objects.length) return false;
  const remaining = [...truth.objects];
  for (const n of named) {
    const at = remaining.findIndex((o) => o.color === n.color && o.shape === n.shape && (n.size === null || o.size === n.size));
    if (at < 0) return false;
    remaining.splice(at, 1);
  }
  return remaining.length === 0;
}
