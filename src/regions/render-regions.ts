/**
 * Regions in conversation text. Synthesis (`synth.regionFormat: placeholder`) stores regions in one
 * canonical form, corners in **pixels of the EXIF-oriented image** (the frame of the `boxes` table):
 *
 *     <region box="x1,y1,x2,y2">label</region>     a labelled region (grounding answers)
 *     <region box="x1,y1,x2,y2"/>                  a bare box (referring questions)
 *
 * Numbers are plain decimals; the label holds no `<` or `>`. Several instances of one label are written as
 * labelled regions joined by `, ` and form one **group**. Each export renders the placeholders in its model
 * family's format when it writes a record, with the same conversions synthesis uses to write that format
 * directly (`region-format.ts`, which tabulates the formats), so one run serves LLaVA and Qwen exports alike.
 */
import { formatGrounding, formatRegion, RegionError, type ModelRegionFormat, type RegionFrame } from './region-format.js';
import type { SmartResizeOptions } from '../core/smart-resize.js';

const REGION_PATTERN = /<region box="([^"]*)"\s*(?:\/>|>([^<]*)<\/region>)/g;
/** Anything that looks like the start of a placeholder, to catch malformed ones. */
const REGION_START = /<\/?region\b/;
/** What joins the instances of one label in a group. */
const GROUP_SEPARATOR = ', ';

type Corners = [number, number, number, number];

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
  /** `llava`: fractions of the image padded to a centred square (`llavaBox` in region-format.ts). Default true. */
  padToSquare?: boolean;
}

/** Renders boxes for one format and image; an image `smart_resize` refuses is a RegionError. */
function rendered(format: ModelRegionFormat, render: () => string): string {
  try {
    return render();
  } catch (err) {
    if (format === 'qwen25vl' && !(err instanceof RegionError)) throw new RegionError(`qwen25vl coordinates: ${(err as Error).message}`);
    throw err;
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
export function renderRegions(text: string, format: ModelRegionFormat, image: ImageSize | null, options: RenderRegionOptions = {}): string {
  if (!hasRegions(text)) return text;
  if (!image) throw new RegionError('a region placeholder in a sample without an image');
  const found: Found[] = [];
  for (const match of text.matchAll(REGION_PATTERN)) {
    found.push({ start: match.index, end: match.index + match[0].length, corners: parseBox(match[1]!, image), label: match[2] });
  }
  const frame: RegionFrame = { width: image.width, height: image.height, padToSquare: options.padToSquare, resize: options.resize };
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
    const label = first.label;
    out += rendered(format, () => (label === undefined ? formatRegion(format, first.corners, frame) : formatGrounding(format, label, members.map((m) => m.corners), frame)));
    at = members[members.length - 1]!.end;
    i = j;
  }
  const tail = text.slice(at);
  if (hasRegions(tail)) throw new RegionError('a malformed region placeholder (expected <region box="x1,y1,x2,y2">label</region> or <region box="x1,y1,x2,y2"/>)');
  return out + tail;
}
