/**
 * COCO-format annotation files for the shapes dataset: `captions.json` (the five ground-truth captions per
 * image) and `instances.json` (one box per object; category "<color> <shape>", supercategory the shape).
 */
import { outline, roundTo, shapeArea } from './geometry.js';
import type { SceneObject } from './scene.js';
import { COLORS, SHAPES, type ColorName, type ShapeName } from './vocabulary.js';

export interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory: string;
}

export interface CocoCaptionAnnotation {
  id: number;
  image_id: number;
  caption: string;
}

export interface CocoInstanceAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  /** `[x, y, width, height]` in pixels. */
  bbox: [number, number, number, number];
  /** Area of the drawn shape in square pixels (not of the box), as COCO defines it. */
  area: number;
  /** One polygon outlining the shape (a circle as a 32-gon). */
  segmentation: number[][];
  iscrowd: 0;
}

/** Every colour × shape pair, ids from 1 in shape-major order. */
export const CATEGORIES: readonly CocoCategory[] = SHAPES.flatMap((shape, s) =>
  COLORS.map((color, c) => ({ id: s * COLORS.length + c + 1, name: `${color} ${shape}`, supercategory: shape })),
);

export function categoryId(color: ColorName, shape: ShapeName): number {
  return SHAPES.indexOf(shape) * COLORS.length + COLORS.indexOf(color) + 1;
}

/** Collects images and annotations as the generator goes, then serialises both files. */
export class CocoBuilder {
  private readonly images: CocoImage[] = [];
  private readonly captions: CocoCaptionAnnotation[] = [];
  private readonly instances: CocoInstanceAnnotation[] = [];

  constructor(private readonly info: Record<string, unknown>) {}

  add(image: CocoImage, captions: readonly string[], objects: readonly SceneObject[]): void {
    this.images.push(image);
    for (const caption of captions) {
      this.captions.push({ id: this.captions.length + 1, image_id: image.id, caption });
    }
    for (const o of objects) {
      const [x1, y1, x2, y2] = o.box;
      this.instances.push({
        id: this.instances.length + 1,
        image_id: image.id,
        category_id: categoryId(o.color, o.shape),
        bbox: [x1, y1, x2 - x1, y2 - y1],
        area: roundTo(shapeArea(o.shape, o.box), 2),
        segmentation: [outline(o.shape, o.box).flatMap(([x, y]) => [roundTo(x, 2), roundTo(y, 2)])],
        iscrowd: 0,
      });
    }
  }

  captionsJson(): string {
    return JSON.stringify({ info: this.info, images: this.images, annotations: this.captions }) + '\n';
  }

  instancesJson(): string {
    return JSON.stringify({ info: this.info, images: this.images, annotations: this.instances, categories: CATEGORIES }) + '\n';
  }
}
