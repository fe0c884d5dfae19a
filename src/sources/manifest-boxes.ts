/**
 * Boxes from a manifest column: a list of `{label, box}` (or `{label, bbox}`) objects, given as JSON text
 * (CSV/TSV cells, JSONL strings) or as a list already (JSONL, Parquet list-of-struct columns).
 *
 * `xyxy` boxes are `[x1, y1, x2, y2]` pixels and need `x2 >= x1`, `y2 >= y1`; `coco` boxes are
 * `[x, y, width, height]` pixels with a size of at least zero, converted to corners with the original
 * kept (`original.frame: 'coco_xywh'`). Anything else is a problem naming the element and what is wrong.
 */
import type { Box } from '../core/sample.js';
import { describeValue } from '../core/describe-value.js';

export type BoxFormat = 'xyxy' | 'coco';

/** Boxes, or a message saying what is wrong. An absent, null or empty value is no boxes. */
export function parseBoxes(value: unknown, format: BoxFormat): { boxes: Box[] } | { problem: string } {
  let list: unknown = value;
  if (value === undefined || value === null) return { boxes: [] };
  if (Buffer.isBuffer(value)) list = value.toString('utf8');
  if (typeof list === 'string') {
    if (list.trim().length === 0) return { boxes: [] };
    try {
      list = JSON.parse(list);
    } catch (err) {
      return { problem: `boxes is not valid JSON: ${(err as Error).message}` };
    }
  }
  if (!Array.isArray(list)) return { problem: `boxes: expected a list of {label, box} objects, got ${describeValue(list)}` };
  const boxes: Box[] = [];
  for (const [i, element] of list.entries()) {
    if (element === null || typeof element !== 'object' || Array.isArray(element)) {
      return { problem: `boxes[${i}]: expected an object {label, box}, got ${describeValue(element)}` };
    }
    const record = element as Record<string, unknown>;
    const label = record['label'];
    if (typeof label !== 'string' || label.trim().length === 0) {
      return { problem: `boxes[${i}].label: expected a non-empty string, got ${describeValue(label)}` };
    }
    const field = record['box'] !== undefined ? 'box' : 'bbox';
    const raw = record[field];
    const values = Array.isArray(raw) ? raw.map((v) => (typeof v === 'bigint' ? Number(v) : v)) : null;
    if (values === null || values.length !== 4 || !values.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      return { problem: `boxes[${i}].${field}: expected 4 finite numbers, got ${describeValue(raw)}` };
    }
    const [a, b, c, d] = values as [number, number, number, number];
    if (format === 'coco') {
      if (c < 0 || d < 0) return { problem: `boxes[${i}].${field}: [x, y, width, height] has a negative size: ${describeValue(raw)}` };
      boxes.push({ label, box: [a, b, a + c, b + d], original: { frame: 'coco_xywh', values: [a, b, c, d] } });
    } else {
      if (c < a || d < b) return { problem: `boxes[${i}].${field}: [x1, y1, x2, y2] needs x2 >= x1 and y2 >= y1, got ${describeValue(raw)}` };
      boxes.push({ label, box: [a, b, c, d] });
    }
  }
  return { boxes };
}

