/**
 * Shape outlines. Every shape is described inside the unit square so that it touches all four sides;
 * mapping it onto an integer pixel box therefore makes that box the tight box of the drawn shape.
 */
import type { ShapeName } from './vocabulary.js';

type Point = readonly [number, number];

/** Fit points into the unit square, touching all four sides. */
function normalise(points: readonly Point[]): Point[] {
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const minX = Math.min(...xs);
  const minY = Math.min(...ys);
  const w = Math.max(...xs) - minX;
  const h = Math.max(...ys) - minY;
  return points.map(([x, y]) => [(x - minX) / w, (y - minY) / h] as const);
}

function rawAspect(points: readonly Point[]): number {
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  return (Math.max(...xs) - Math.min(...xs)) / (Math.max(...ys) - Math.min(...ys));
}

function regularPolygon(sides: number, startDegrees: number): Point[] {
  const out: Point[] = [];
  for (let k = 0; k < sides; k++) {
    const a = ((startDegrees + (360 * k) / sides) * Math.PI) / 180;
    out.push([Math.cos(a), Math.sin(a)]);
  }
  return out;
}

function starPoints(tips: number, innerRatio: number): Point[] {
  const out: Point[] = [];
  for (let k = 0; k < tips * 2; k++) {
    const radius = k % 2 === 0 ? 1 : innerRatio;
    const a = ((-90 + (180 * k) / tips) * Math.PI) / 180;
    out.push([radius * Math.cos(a), radius * Math.sin(a)]);
  }
  return out;
}

// Apex up, base down.
const TRIANGLE_RAW: Point[] = regularPolygon(3, -90);
// Five tips, one pointing up; a fairly full inner radius keeps the star readable at small sizes.
const STAR_RAW: Point[] = starPoints(5, 0.47);
// Flat top and bottom.
const HEXAGON_RAW: Point[] = regularPolygon(6, 0);

/** Polygon outlines in the unit square; null for the circle and square, which SVG draws natively. */
export const UNIT_OUTLINES: Readonly<Record<ShapeName, readonly Point[] | null>> = {
  circle: null,
  square: null,
  triangle: normalise(TRIANGLE_RAW),
  star: normalise(STAR_RAW),
  hexagon: normalise(HEXAGON_RAW),
};

/** Width / height of each shape's box, so shapes keep their natural proportions. */
export const ASPECT: Readonly<Record<ShapeName, number>> = {
  circle: 1,
  square: 1,
  triangle: rawAspect(TRIANGLE_RAW),
  star: rawAspect(STAR_RAW),
  hexagon: rawAspect(HEXAGON_RAW),
};

/** Box width and height in whole pixels for a shape whose longer side is `extent` pixels. */
export function boxSize(shape: ShapeName, extent: number): { w: number; h: number } {
  const aspect = ASPECT[shape];
  if (aspect >= 1) return { w: extent, h: Math.max(1, Math.round(extent / aspect)) };
  return { w: Math.max(1, Math.round(extent * aspect)), h: extent };
}

/** Outline in pixel coordinates for a box `[x1, y1, x2, y2]`; a circle gets a 32-gon approximation. */
export function outline(shape: ShapeName, box: readonly [number, number, number, number]): Point[] {
  const [x1, y1, x2, y2] = box;
  const w = x2 - x1;
  const h = y2 - y1;
  let unit: readonly Point[];
  if (shape === 'circle') {
    unit = regularPolygon(32, 0).map(([x, y]) => [(x + 1) / 2, (y + 1) / 2] as const);
  } else if (shape === 'square') {
    unit = [
      [0, 0],
      [1, 0],
      [1, 1],
      [0, 1],
    ];
  } else {
    unit = UNIT_OUTLINES[shape]!;
  }
  return unit.map(([x, y]) => [x1 + x * w, y1 + y * h] as const);
}

/** Area in square pixels of the drawn shape (exact for the circle, shoelace formula for polygons). */
export function shapeArea(shape: ShapeName, box: readonly [number, number, number, number]): number {
  const w = box[2] - box[0];
  const h = box[3] - box[1];
  if (shape === 'circle') return (Math.PI * w * h) / 4;
  if (shape === 'square') return w * h;
  const points = outline(shape, box);
  let twice = 0;
  for (let i = 0; i < points.length; i++) {
    const [ax, ay] = points[i]!;
    const [bx, by] = points[(i + 1) % points.length]!;
    twice += ax * by - bx * ay;
  }
  return Math.abs(twice) / 2;
}

/** Round to at most `digits` decimals, as a plain number. */
export function roundTo(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
