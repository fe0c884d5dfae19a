/**
 * Scene layout: which objects an image holds and where. Everything random is decided here, in order,
 * from one RNG; rendering is then a pure function of the scene and can run concurrently.
 */
import { boxSize } from './geometry.js';
import type { Rng } from './rng.js';
import {
  COLORS,
  SHAPES,
  SIZES,
  SIZE_FRACTION,
  type ColorName,
  type ShapeName,
  type SizeName,
} from './vocabulary.js';

/** Pixel box `[x1, y1, x2, y2]`, x2 = x1 + width (exclusive, as in COCO). */
export type PixelBox = [number, number, number, number];

export interface SceneObject {
  shape: ShapeName;
  color: ColorName;
  size: SizeName;
  box: PixelBox;
}

export interface Scene {
  width: number;
  height: number;
  /** Background RGB: a light neutral grey with a slight per-image tint. */
  background: [number, number, number];
  objects: SceneObject[];
}

/** Most objects in one image. */
export const MAX_OBJECTS = 3;
/** Empty pixels kept between an object and the image border, as a fraction of the image side. */
const BORDER_FRACTION = 0.03;
/** Empty pixels kept between two objects' boxes, as a fraction of the image side. */
const GAP_FRACTION = 0.05;
const PLACEMENT_TRIES = 200;

function extentFor(rng: Rng, size: SizeName, imageSize: number): number {
  const { base, jitter } = SIZE_FRACTION[size];
  const spread = Math.round(jitter * imageSize);
  return Math.max(4, Math.round(base * imageSize) + rng.int(-spread, spread));
}

function boxesApart(a: PixelBox, b: PixelBox, gap: number): boolean {
  return a[2] + gap <= b[0] || b[2] + gap <= a[0] || a[3] + gap <= b[1] || b[3] + gap <= a[1];
}

/** Try to place every object; null when the drawn sizes do not fit (the caller draws a new scene). */
function place(
  rng: Rng,
  wanted: { shape: ShapeName; color: ColorName; size: SizeName; w: number; h: number }[],
  imageSize: number,
): SceneObject[] | null {
  const border = Math.max(2, Math.round(BORDER_FRACTION * imageSize));
  const gap = Math.max(2, Math.round(GAP_FRACTION * imageSize));
  const placed: SceneObject[] = [];
  for (const item of wanted) {
    let found: PixelBox | null = null;
    for (let t = 0; t < PLACEMENT_TRIES && !found; t++) {
      const x1 = rng.int(border, imageSize - border - item.w);
      const y1 = rng.int(border, imageSize - border - item.h);
      const box: PixelBox = [x1, y1, x1 + item.w, y1 + item.h];
      if (placed.every((p) => boxesApart(p.box, box, gap))) found = box;
    }
    if (!found) return null;
    placed.push({ shape: item.shape, color: item.color, size: item.size, box: found });
  }
  return placed;
}

/**
 * Draw one scene: 1 to 3 objects, each a distinct (colour, shape) pair so every caption names each object
 * unambiguously, placed without overlap and with a gap between boxes.
 */
export function planScene(rng: Rng, imageSize: number): Scene {
  const grey = rng.int(226, 244);
  const background: [number, number, number] = [
    grey + rng.int(-3, 3),
    grey + rng.int(-3, 3),
    grey + rng.int(-3, 3),
  ];
  for (;;) {
    const count = rng.int(1, MAX_OBJECTS);
    const used = new Set<string>();
    const wanted: { shape: ShapeName; color: ColorName; size: SizeName; w: number; h: number }[] = [];
    while (wanted.length < count) {
      const shape = rng.pick(SHAPES);
      const color = rng.pick(COLORS);
      if (used.has(`${color} ${shape}`)) continue;
      used.add(`${color} ${shape}`);
      const size = rng.pick(SIZES);
      const { w, h } = boxSize(shape, extentFor(rng, size, imageSize));
      wanted.push({ shape, color, size, w, h });
    }
    const objects = place(rng, wanted, imageSize);
    if (objects) return { width: imageSize, height: imageSize, background, objects };
  }
}

/** Box centre, for spatial relations. */
export function centre(box: PixelBox): [number, number] {
  return [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2];
}
