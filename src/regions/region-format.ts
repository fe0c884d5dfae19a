/**
 * Region formats for grounding and referring samples, one set of conversions that synthesis (which writes a
 * format directly) and the exports (which render stored placeholders, `render-regions.ts`) both use:
 *
 * | format        | group of `label` (one or more boxes)                                    | bare box |
 * |---------------|-------------------------------------------------------------------------|----------|
 * | `llava`       | `[0.12, 0.34, 0.56, 0.78], [...]` (fractions as Python's `round(x, 2)` writes them; the question names the label) | `[0.12, 0.4, 0.56, 1.0]` |
 * | `qwen2vl`     | `<\|object_ref_start\|>label<\|object_ref_end\|><\|box_start\|>(x1,y1),(x2,y2)<\|box_end\|>...` ([0, 1000]) | `<\|box_start\|>(x1,y1),(x2,y2)<\|box_end\|>` |
 * | `qwenvl`      | `<ref>label</ref><box>(x1,y1),(x2,y2)</box>...` ([0, 1000))             | `<box>(x1,y1),(x2,y2)</box>` |
 * | `qwen25vl`    | `[{"bbox_2d": [x1, y1, x2, y2], "label": "label"}, ...]` (pixels of the smart-resized image) | `[x1, y1, x2, y2]` |
 * | `placeholder` | `<region box="x1,y1,x2,y2">label</region>, ...` (pixels)               | `<region box="x1,y1,x2,y2"/>` |
 *
 * `placeholder` is the canonical form synthesis stores (`synth.regionFormat: placeholder`, the default):
 * corners in pixels of the EXIF-oriented image, so one run serves LLaVA and Qwen exports alike; an export
 * renders it in one of the model formats ({@link MODEL_REGION_FORMATS}).
 *
 * `llava` measures against the image padded to a centred square by default (`padToSquare`, LLaVA-1.5's
 * `image_aspect_ratio: pad`): see {@link llavaBox}.
 *
 * The Qwen2-VL and Qwen2.5-VL numbers are those of Qwen's own conversion notebook
 * (`qwen-vl-finetune/tools/process_bbox.ipynb`): `convert_to_qwen2vl_format` writes `round(x / w * 1000)`
 * clamped to [0, 1000], `convert_to_qwen25vl_format` writes `round(x * (resized_w / w))` clamped to
 * [0, resized_w - 1], both with Python's `round` (half to even, on the binary value). Qwen-VL (`qwenvl`)
 * keeps its [0, 1000) grid, `floor(x / w * 1000)` at most 999.
 */
import type { FailureCode } from '../core/failure-codes.js';
import { VlcurateError } from '../core/errors.js';
import { formatPythonRound, pythonRound } from '../core/python-float.js';
import type { BoxXYXY } from '../core/sample.js';
import { roundHalfEven, smartResize, type SmartResizeOptions } from '../core/smart-resize.js';

export const REGION_FORMATS = ['llava', 'qwen2vl', 'qwenvl', 'qwen25vl', 'placeholder'] as const;
export type RegionFormat = (typeof REGION_FORMATS)[number];
/** The formats a model trains on: every format but the canonical `placeholder` (what exports render to). */
export const MODEL_REGION_FORMATS = ['llava', 'qwen2vl', 'qwenvl', 'qwen25vl'] as const satisfies readonly RegionFormat[];
export type ModelRegionFormat = (typeof MODEL_REGION_FORMATS)[number];

type Corners = readonly [number, number, number, number];

export class RegionError extends VlcurateError {
  declare readonly code: FailureCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super('region_invalid', message, options);
  }
}

/** The image a region is measured in, and how its format reads it. */
export interface RegionFrame {
  width: number;
  height: number;
  /** `llava` only: normalise against the image padded to a square (default true). */
  padToSquare?: boolean;
  /** `qwen25vl` only: the resize settings (coordinates are in the resized image). */
  resize?: SmartResizeOptions;
}

/**
 * Qwen-VL's [0, 1000) grid: floor(v / size * 1000), at most 999. Multiplying first, and a hair of tolerance,
 * keep an exact tenth an exact tenth: 12.6 of 126 px is 100, where (12.6 / 126) * 1000 gives 99.99999.
 */
export function qwenGrid(v: number, size: number): number {
  return Math.min(999, Math.max(0, Math.floor((v * 1000) / size + 1e-9)));
}

/**
 * Qwen2-VL's grid, as `convert_to_qwen2vl_format` computes it: `round(v / size * 1000)` in this order of
 * operations (the same double as Python's), ties to even, clamped to [0, 1000].
 */
export function qwen2vlGrid(v: number, size: number): number {
  return Math.min(1000, Math.max(0, roundHalfEven((v / size) * 1000)));
}

/**
 * Qwen2.5-VL's corners in pixels of the `smart_resize`d image, as `convert_to_qwen25vl_format` computes
 * them: `round(v * (resized / size))`, ties to even, clamped to [0, resized - 1]. Throws a RangeError for
 * an image `smart_resize` refuses.
 */
export function qwen25vlCorners(corners: Corners, image: { width: number; height: number }, resize?: SmartResizeOptions): [number, number, number, number] {
  const resized = smartResize(image.height, image.width, resize);
  const scaleX = resized.width / image.width;
  const scaleY = resized.height / image.height;
  const px = (v: number, scale: number, limit: number) => Math.min(limit - 1, Math.max(0, roundHalfEven(v * scale)));
  const [x1, y1, x2, y2] = corners;
  return [px(x1, scaleX, resized.width), px(y1, scaleY, resized.height), px(x2, scaleX, resized.width), px(y2, scaleY, resized.height)];
}

/**
 * A LLaVA-1.5 box `[x1, y1, x2, y2]`: corners as fractions of the frame, clamped to [0, 1], written as
 * Python's `repr(round(v, 2))` writes them (`0.4`, `1.0`, `0.12` for 0.125), which is how LLaVA-1.5's
 * grounding data reads.
 *
 * The frame, with `padToSquare` (the default): the image as LLaVA-1.5 trains on it with
 * `--image_aspect_ratio pad`, pasted into a `max(w, h)` square at `expand2square`'s integer offsets
 * (`(w - h) // 2` down for a wide image, `(h - w) // 2` right for a tall one; LLaVA's llava/mm_utils.py).
 * Without it: the image itself (fractions of its width and height), for a trainer that stretches the
 * image to a square (`image_aspect_ratio: square`) or keeps its shape.
 */
export function llavaBox([x1, y1, x2, y2]: Corners, image: { width: number; height: number }, padToSquare = true): string {
  const { width: w, height: h } = image;
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  let values: number[];
  if (padToSquare) {
    const side = Math.max(w, h);
    const dx = Math.floor((side - w) / 2);
    const dy = Math.floor((side - h) / 2);
    values = [(x1 + dx) / side, (y1 + dy) / side, (x2 + dx) / side, (y2 + dy) / side];
  } else {
    values = [x1 / w, y1 / h, x2 / w, y2 / h];
  }
  return `[${values.map((v) => formatPythonRound(clamp(v), 2)).join(', ')}]`;
}

/** The canonical placeholder for a region (pixel corners, at most 3 decimals; label optional). */
export function regionPlaceholder(box: Corners, label?: string): string {
  if (label !== undefined && /[<>]/.test(label)) throw new RegionError(`region label ${JSON.stringify(label)} contains "<" or ">"`);
  const corners = box.map((v) => String(pythonRound(v, 3))).join(',');
  return label === undefined ? `<region box="${corners}"/>` : `<region box="${corners}">${label}</region>`;
}

/** Pixel corners clamped to the image: synthesis writes placeholders the exports accept (they refuse a box outside it). */
function clampedToFrame([x1, y1, x2, y2]: Corners, frame: RegionFrame): Corners {
  const clamp = (v: number, size: number) => Math.min(size, Math.max(0, v));
  return [clamp(x1, frame.width), clamp(y1, frame.height), clamp(x2, frame.width), clamp(y2, frame.height)];
}

/** `(x1,y1),(x2,y2)` on a 1000-step grid: Qwen2-VL's (`qwen2vlGrid`) or Qwen-VL's (`qwenGrid`). */
function thousandths([x1, y1, x2, y2]: Corners, frame: RegionFrame, grid: (v: number, size: number) => number): string {
  const { width: w, height: h } = frame;
  return `(${grid(x1, w)},${grid(y1, h)}),(${grid(x2, w)},${grid(y2, h)})`;
}

function resizedPixels(corners: Corners, frame: RegionFrame): number[] {
  return qwen25vlCorners(corners, frame, frame.resize);
}

/**
 * A region on its own (a referring question): `[0.12, 0.4, 0.56, 0.78]`, `<|box_start|>(120,400),(560,780)<|box_end|>`, ...
 * `qwen25vl` throws a RangeError for an image `smart_resize` refuses.
 */
export function formatRegion(format: RegionFormat, corners: Corners, frame: RegionFrame): string {
  switch (format) {
    case 'placeholder':
      return regionPlaceholder(clampedToFrame(corners, frame));
    case 'llava':
      return llavaBox(corners, frame, frame.padToSquare ?? true);
    case 'qwen2vl':
      return `<|box_start|>${thousandths(corners, frame, qwen2vlGrid)}<|box_end|>`;
    case 'qwenvl':
      return `<box>${thousandths(corners, frame, qwenGrid)}</box>`;
    case 'qwen25vl':
      return `[${resizedPixels(corners, frame).join(', ')}]`;
  }
}

/** The answer that grounds `label` to its boxes (one or several instances of it). */
export function formatGrounding(format: RegionFormat, label: string, boxes: readonly BoxXYXY[], frame: RegionFrame): string {
  switch (format) {
    case 'placeholder': {
      // A placeholder's label holds no '<' or '>' (it ends at the next tag).
      const safe = label.replace(/[<>]/g, ' ').replace(/\s+/g, ' ').trim();
      return boxes.map((corners) => regionPlaceholder(clampedToFrame(corners, frame), safe)).join(', ');
    }
    case 'llava':
      return boxes.map((corners) => formatRegion('llava', corners, frame)).join(', ');
    case 'qwen2vl':
      return `<|object_ref_start|>${label}<|object_ref_end|>${boxes.map((corners) => formatRegion('qwen2vl', corners, frame)).join('')}`;
    case 'qwenvl':
      return `<ref>${label}</ref>${boxes.map((corners) => formatRegion('qwenvl', corners, frame)).join('')}`;
    case 'qwen25vl':
      // Spaced like Qwen2.5-VL's own answers: [{"bbox_2d": [x1, y1, x2, y2], "label": "cup"}]
      return `[${boxes.map((corners) => `{"bbox_2d": [${resizedPixels(corners, frame).join(', ')}], "label": ${JSON.stringify(label)}}`).join(', ')}]`;
  }
}
