/**
 * Regions in conversation text. Synthesis (`synth.regionFormat: placeholder`) stores regions in one
 * canonical form, corners in **pixels of the EXIF-oriented image** (the frame of the `boxes` table):
 *
 *     <region box="x1,y1,x2,y2">label</region>     a labelled region (grounding answers)
 *     <region box="x1,y1,x2,y2"/>                  a bare box (referring questions)
 *
 * Numbers are plain decimals; the label holds no `<` or `>`. Several instances of one label are written as
 * labelled regions joined by `, ` and form one **group**. Each export renders the placeholders in its model
 * family's format when it writes a record, exactly as synthesis would have written that format directly
 * (`synth/region-format.ts`), so one run serves LLaVA and Qwen exports alike:
 *
 * | format     | group of `label` (one or more boxes)                                    | bare box |
 * |------------|-------------------------------------------------------------------------|----------|
 * | `llava`    | `[0.12, 0.34, 0.56, 0.78], [...]` (fractions as Python's `round(x, 2)` writes them; the question names the label) | `[0.12, 0.4, 0.56, 1.0]` |
 * | `qwen2vl`  | `<\|object_ref_start\|>label<\|object_ref_end\|><\|box_start\|>(x1,y1),(x2,y2)<\|box_end\|>...` ([0, 1000]) | `<\|box_start\|>(x1,y1),(x2,y2)<\|box_end\|>` |
 * | `qwenvl`   | `<ref>label</ref><box>(x1,y1),(x2,y2)</box>...` ([0, 1000))             | `<box>(x1,y1),(x2,y2)</box>` |
 * | `qwen25vl` | `[{"bbox_2d": [x1, y1, x2, y2], "label": "label"}, ...]` (pixels of the smart-resized image) | `[x1, y1, x2, y2]` |
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
import { formatPythonRound, pythonRound } from '../core/python-float.js';
import { roundHalfEven, smartResize, type SmartResizeOptions } from './templates/smart-resize.js';
import { VlcurateError } from '../core/errors.js';

export const REGION_FORMATS = ['llava', 'qwen2vl', 'qwenvl', 'qwen25vl'] as const;
export type RegionFormat = (typeof REGION_FORMATS)[number];

const REGION_PATTERN = /<region box="([^"]*)"\s*(?:\/>|>([^<]*)<\/region>)/g;
/** Anything that looks like the start of a placeholder, to catch malformed ones. */
const REGION_START = /<\/?region\b/;
/** What joins the instances of one label in a group. */
const GROUP_SEPARATOR = ', ';

export class RegionError extends VlcurateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('region_invalid', message, options);
  }
}

type Corners = [number, number, number, number];

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
export function qwen25vlCorners(corners: readonly [number, number, number, number], image: { width: number; height: number }, resize?: SmartResizeOptions): [number, number, number, number] {
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
export function llavaBox([x1, y1, x2, y2]: readonly [number, number, number, number], image: { width: number; height: number }, padToSquare = true): string {
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

/** The canonical placeholder for a region (pixel corners; label optional). */
export function regionPlaceholder(box: readonly [number, number, number, number], label?: string): string {
  if (label !== undefined && /[<>]/.test(label)) throw new RegionError(`region label ${JSON.stringify(label)} contains "<" or ">"`);
  const corners = box.map((v) => String(pythonRound(v, 3))).join(',');
  return label === undefined ? `<region box="${corners}"/>` : `<region box="${corners}">${label}</region>`;
}

/** True when the text holds at least one region placeholder. */
export function hasRegions(text: string): boolean {
  return REGION_START.test(text);
}

interface ImageSize {
  width: number;
  height: number;
}

function parseBox(text: string, image: ImageSize): Corners {
  const values = text.split(',').map((v) => (v.trim() === '' ? Number.NaN : Number(v)));
  if (values.length !== 4 || values.some((v) => !Number.isFinite(v))) {
    throw new RegionError(`region box "${text}" is not four numbers x1,y1,x2,y2`);
  }
  const [x1, y1, x2, y2] = values as Corners;
  if (x1 > x2 || y1 > y2 || x1 < 0 || y1 < 0 || x2 > image.width || y2 > image.height) {
    throw new RegionError(`region box "${text}" is not inside the ${image.width}x${image.height} image with x1 <= x2 and y1 <= y2`);
  }
  return [x1, y1, x2, y2];
}

export interface RenderRegionOptions {
  /** Qwen2.5-VL resize settings (coordinates are in the resized image). */
  resize?: SmartResizeOptions;
  /** `llava`: fractions of the image padded to a centred square ({@link llavaBox}). Default true. */
  padToSquare?: boolean;
}

/** Renders boxes for one format and image. */
class Renderer {
  constructor(
    private readonly format: RegionFormat,
    private readonly image: ImageSize,
    private readonly options: RenderRegionOptions,
  ) {}

  private llava(corners: Corners): string {
    return llavaBox(corners, this.image, this.options.padToSquare ?? true);
  }

  private thousandths([x1, y1, x2, y2]: Corners, grid: (v: number, size: number) => number): string {
    const { width: w, height: h } = this.image;
    return `(${grid(x1, w)},${grid(y1, h)}),(${grid(x2, w)},${grid(y2, h)})`;
  }

  private resizedPixels(corners: Corners): number[] {
    try {
      return qwen25vlCorners(corners, this.image, this.options.resize);
    } catch (err) {
      throw new RegionError(`qwen25vl coordinates: ${(err as Error).message}`);
    }
  }

  bare(corners: Corners): string {
    switch (this.format) {
      case 'llava':
        return this.llava(corners);
      case 'qwen2vl':
        return `<|box_start|>${this.thousandths(corners, qwen2vlGrid)}<|box_end|>`;
      case 'qwenvl':
        return `<box>${this.thousandths(corners, qwenGrid)}</box>`;
      case 'qwen25vl':
        return `[${this.resizedPixels(corners).join(', ')}]`;
    }
  }

  group(label: string, boxes: readonly Corners[]): string {
    switch (this.format) {
      case 'llava':
        return boxes.map((b) => this.llava(b)).join(', ');
      case 'qwen2vl':
        return `<|object_ref_start|>${label}<|object_ref_end|>${boxes.map((b) => this.bare(b)).join('')}`;
      case 'qwenvl':
        return `<ref>${label}</ref>${boxes.map((b) => this.bare(b)).join('')}`;
      case 'qwen25vl':
        return `[${boxes.map((b) => `{"bbox_2d": [${this.resizedPixels(b).join(', ')}], "label": ${JSON.stringify(label)}}`).join(', ')}]`;
    }
  }
}

interface Found {
  start: number;
  end: number;
  corners: Corners;
  label: string | undefined;
}

/**
 * Replace every placeholder in `text` by its rendering in `format`. Throws {@link RegionError} for a
 * malformed placeholder, a box outside the image, or a region in a sample without an image size.
 */
export function renderRegions(text: string, format: RegionFormat, image: ImageSize | null, options: RenderRegionOptions = {}): string {
  if (!hasRegions(text)) return text;
  if (!image) throw new RegionError('a region placeholder in a sample without an image');
  const found: Found[] = [];
  for (const match of text.matchAll(REGION_PATTERN)) {
    found.push({ start: match.index, end: match.index + match[0].length, corners: parseBox(match[1]!, image), label: match[2] });
  }
  const renderer = new Renderer(format, image, options);
  let out = '';
  let at = 0;
  for (let i = 0; i < found.length; ) {
    const first = found[i]!;
    let j = i + 1;
    // Instances of one label joined by ", " form a group.
    while (
      first.label !== undefined &&
      j < found.length &&
      found[j]!.label === first.label &&
      text.slice(found[j - 1]!.end, found[j]!.start) === GROUP_SEPARATOR
    ) {
      j++;
    }
    const rest = text.slice(at, first.start);
    if (hasRegions(rest)) throw new RegionError('a malformed region placeholder (expected <region box="x1,y1,x2,y2">label</region> or <region box="x1,y1,x2,y2"/>)');
    out += rest;
    const members = found.slice(i, j);
    out += first.label === undefined ? renderer.bare(first.corners) : renderer.group(first.label, members.map((m) => m.corners));
    at = members[members.length - 1]!.end;
    i = j;
  }
  const tail = text.slice(at);
  if (hasRegions(tail)) throw new RegionError('a malformed region placeholder (expected <region box="x1,y1,x2,y2">label</region> or <region box="x1,y1,x2,y2"/>)');
  return out + tail;
}
