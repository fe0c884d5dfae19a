/**
 * Checking one entry of a COCO file on its own (an image record, a category, an annotation's ids and box),
 * so a bad entry fails one sample with a message naming the field, the value and what was expected.
 */
import type { Box } from '../core/sample.js';
import { describeValue } from '../core/describe-value.js';

// COCO uses integer ids; some exports use strings. Both are accepted and compared as text.
export const ID_EXPECTED = 'an integer or a non-empty string';

export function isId(value: unknown): value is number | string {
  return (typeof value === 'number' && Number.isInteger(value)) || (typeof value === 'string' && value.length > 0);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export function isBbox(value: unknown): value is [number, number, number, number] {
  return Array.isArray(value) && value.length === 4 && value.every((v) => typeof v === 'number' && Number.isFinite(v));
}

export interface CheckedImage {
  id: string | null;
  fileName: string | null;
  /** `file_name` as given, valid or not: tells two listings of one id apart. */
  fileNameValue: unknown;
  width: number | undefined;
  height: number | undefined;
  problems: string[];
}

export function checkImage(raw: unknown): CheckedImage {
  if (!isRecord(raw)) {
    const problem = `expected an object {id, file_name}, got ${describeValue(raw)}`;
    return { id: null, fileName: null, fileNameValue: undefined, width: undefined, height: undefined, problems: [problem] };
  }
  const problems: string[] = [];
  const { id, file_name: fileName, width, height } = raw;
  if (!isId(id)) problems.push(`id: expected ${ID_EXPECTED}, got ${describeValue(id)}`);
  const fileNameOk = typeof fileName === 'string' && fileName.length > 0;
  if (!fileNameOk) problems.push(`file_name: expected a non-empty string, got ${describeValue(fileName)}`);
  const size = (field: string, value: unknown): number | undefined => {
    if (value === undefined) return undefined;
    if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value;
    problems.push(`${field}: expected a number above 0, got ${describeValue(value)}`);
    return undefined;
  };
  return {
    id: isId(id) ? String(id) : null,
    fileName: fileNameOk ? fileName : null,
    fileNameValue: fileName,
    width: size('width', width),
    height: size('height', height),
    problems,
  };
}

/** Category names by id, and why an entry that names an id cannot be used. */
export function readCategories(list: unknown[]): { names: Map<string, string>; broken: Map<string, string> } {
  const names = new Map<string, string>();
  const broken = new Map<string, string>();
  for (const [i, raw] of list.entries()) {
    // An entry without a usable id cannot be referred to; annotations then name an unknown category.
    if (!isRecord(raw) || !isId(raw['id'])) continue;
    const id = String(raw['id']);
    if (typeof raw['name'] === 'string') names.set(id, raw['name']);
    else broken.set(id, `categories[${i}].name: expected a string, got ${describeValue(raw['name'])}`);
  }
  return { names, broken };
}

/** `annotations[3] (id 17) of captions file "..."`. */
export function annotationWhere(index: number, raw: unknown, label: string): string {
  const id = isRecord(raw) && isId(raw['id']) ? ` (id ${raw['id']})` : '';
  return `annotations[${index}]${id} of ${label}`;
}

export function annotationName(id: unknown): string {
  return id === undefined ? '(no id)' : isId(id) ? String(id) : describeValue(id);
}

export function idProblems(raw: Record<string, unknown>): string[] {
  const id = raw['id'];
  return id === undefined || isId(id) ? [] : [`id: expected ${ID_EXPECTED}, got ${describeValue(id)}`];
}

/**
 * COCO `[x, y, w, h]` to corners, clipped to the image: at 0 always, at the far edge when the image record
 * gives its size. The caller keeps the box as given in `original`, so a clipped box shows as one.
 */
export function clipBox(
  bbox: [number, number, number, number],
  width: number | undefined,
  height: number | undefined,
): { box: Box['box'] } | { problem: string } {
  const [x, y, w, h] = bbox;
  const given = `bbox [${bbox.join(', ')}]`;
  if (!(w > 0 && h > 0)) return { problem: `${given} has a width or height of 0 or less (width ${w}, height ${h})` };
  const x1 = Math.max(x, 0);
  const y1 = Math.max(y, 0);
  const x2 = width === undefined ? x + w : Math.min(x + w, width);
  const y2 = height === undefined ? y + h : Math.min(y + h, height);
  if (x2 <= x1 || y2 <= y1) {
    return { problem: `${given} lies entirely outside the ${width ?? '?'}x${height ?? '?'} image` };
  }
  return { box: [x1, y1, x2, y2] };
}

