/**
 * The closed vocabulary of the shapes domain. These words are exactly what the captions and the ground
 * truth use (`shape`, `color`, `size`), so a model trained on the domain only has to learn this list.
 */

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'hexagon'] as const;
export type ShapeName = (typeof SHAPES)[number];

export const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'] as const;
export type ColorName = (typeof COLORS)[number];

export const SIZES = ['small', 'large'] as const;
export type SizeName = (typeof SIZES)[number];

/** Fill colour of each colour word, chosen far apart from each other and from the light background. */
export const COLOR_RGB: Readonly<Record<ColorName, readonly [number, number, number]>> = {
  red: [214, 39, 40],
  green: [44, 160, 44],
  blue: [31, 90, 220],
  yellow: [240, 205, 20],
  purple: [128, 60, 175],
  orange: [250, 128, 14],
};

/**
 * Object extent (the longer side of its box) as a fraction of the image side, with the jitter range in
 * pixels at 128 px scaled to the image. Small and large never come close to each other.
 */
export const SIZE_FRACTION: Readonly<Record<SizeName, { base: number; jitter: number }>> = {
  small: { base: 0.16, jitter: 0.015 },
  large: { base: 0.32, jitter: 0.025 },
};

/** Spatial relation phrases used by the captions. */
export const RELATIONS = ['to the left of', 'to the right of', 'above', 'below', 'next to'] as const;
export type Relation = (typeof RELATIONS)[number];

export function isShape(word: string): word is ShapeName {
  return (SHAPES as readonly string[]).includes(word);
}

export function isColor(word: string): word is ColorName {
  return (COLORS as readonly string[]).includes(word);
}

export function isSize(word: string): word is SizeName {
  return (SIZES as readonly string[]).includes(word);
}
