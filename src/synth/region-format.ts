/**
 * Region formats for grounding and referring samples:
 *
 * - `llava` (LLaVA-1.5): `[x1, y1, x2, y2]` normalised to [0, 1] as Python's `round(v, 2)` writes them, e.g.
 *   `[0.12, 0.4, 0.56, 1.0]`; by default relative to the image padded to a centred square (LLaVA-1.5's
 *   `image_aspect_ratio: pad`), with `padToSquare: false` to the image itself (`llavaBox` in export/regions.ts).
 * - `qwen2vl` (Qwen2-VL): `<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`,
 *   integers in [0, 1000] as Qwen's conversion notebook rounds them (`qwen2vlGrid`).
 * - `qwenvl` (Qwen-VL): `<ref>label</ref><box>(x1,y1),(x2,y2)</box>`, integers in [0, 1000).
 * - `qwen25vl` (Qwen2.5-VL): `{"bbox_2d": [x1, y1, x2, y2], "label": "..."}` in absolute pixels of the
 *   image as the model sees it after `smart_resize` (factor 28, 3136 to 1,003,520 pixels), as Qwen's
 *   conversion notebook rounds and clamps them (`qwen25vlCorners`).
 * - `placeholder`: the exports' canonical form, `<region box="x1,y1,x2,y2">label</region>` (grounding
 *   answers) or `<region box="x1,y1,x2,y2"/>` (referring questions), corners in pixels; each export
 *   renders it in its own model family's format, so one run serves LLaVA and Qwen exports alike.
 */
import { pythonRound } from '../core/python-float.js';
import type { BoxXYXY } from '../core/sample.js';
import { llavaBox, qwen25vlCorners, qwen2vlGrid, qwenGrid } from '../export/regions.js';

export const REGION_FORMATS = ['llava', 'qwen2vl', 'qwenvl', 'qwen25vl', 'placeholder'] as const;
export type RegionFormat = (typeof REGION_FORMATS)[number];

export interface RegionFrame {
  width: number;
  height: number;
  /** `llava` only: normalise against the image padded to a square (default true). */
  padToSquare?: boolean;
}

/** Corners on a 1000-step grid: Qwen2-VL's (`qwen2vlGrid`) or Qwen-VL's (`qwenGrid`). */
function thousandths(corners: BoxXYXY, frame: RegionFrame, grid: (v: number, size: number) => number): [number, number, number, number] {
  const [x1, y1, x2, y2] = corners;
  return [grid(x1, frame.width), grid(y1, frame.height), grid(x2, frame.width), grid(y2, frame.height)];
}

function resizedPixels(corners: BoxXYXY, frame: RegionFrame): number[] {
  return qwen25vlCorners(corners, frame);
}

/** Pixel corners, clamped to the image (exports refuse a box outside it), at most 3 decimals. */
function placeholderCorners(corners: BoxXYXY, frame: RegionFrame): string {
  const [x1, y1, x2, y2] = corners;
  const clamp = (v: number, size: number) => Math.min(size, Math.max(0, v));
  return [clamp(x1, frame.width), clamp(y1, frame.height), clamp(x2, frame.width), clamp(y2, frame.height)].map((v) => String(pythonRound(v, 3))).join(',');
}

/** A region on its own (for a referring question): `[0.12, 0.40, 0.56, 0.78]`, `<|box_start|>(120,400),(560,780)<|box_end|>`, ... */
export function formatRegion(format: RegionFormat, corners: BoxXYXY, frame: RegionFrame): string {
  switch (format) {
    case 'placeholder':
      return `<region box="${placeholderCorners(corners, frame)}"/>`;
    case 'llava':
      return llavaBox(corners, frame, frame.padToSquare ?? true);
    case 'qwen2vl': {
      const [x1, y1, x2, y2] = thousandths(corners, frame, qwen2vlGrid);
      return `<|box_start|>(${x1},${y1}),(${x2},${y2})<|box_end|>`;
    }
    case 'qwenvl': {
      const [x1, y1, x2, y2] = thousandths(corners, frame, qwenGrid);
      return `<box>(${x1},${y1}),(${x2},${y2})</box>`;
    }
    case 'qwen25vl':
      return `[${resizedPixels(corners, frame).join(', ')}]`;
  }
}

/** The answer that grounds `label` to its boxes (one or several instances). */
export function formatGrounding(format: RegionFormat, label: string, boxes: readonly BoxXYXY[], frame: RegionFrame): string {
  switch (format) {
    case 'placeholder': {
      const safe = label.replace(/[<>]/g, ' ').replace(/\s+/g, ' ').trim();
      return boxes.map((corners) => `<region box="${placeholderCorners(corners, frame)}">${safe}</region>`).join(', ');
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
