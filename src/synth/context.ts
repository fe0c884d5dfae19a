/**
 * The context an LLM gets about one image (LLaVA's convention): the captions, one per line; a blank
 * line; one box per line as `label: [x1, y1, x2, y2]`, corners divided by the image width and height,
 * rounded to at most 3 decimals with trailing zeros dropped, a whole number keeping one decimal (`0.24`,
 * `0.5`, `1.0`, `0.0`). The conversation task gets the captions only.
 *
 * Captions are untrusted web text. They are data: each is flattened to one line and stripped of the
 * `<scene>` delimiters the prompt wraps the context in, so a caption cannot close the data block or
 * start a new one; whatever it says stays inside it.
 */
import { formatPythonRound } from '../core/python-float.js';
import { publishedCaption, type Box, type BoxXYXY, type Caption } from '../core/sample.js';

/** Most captions put in a context (COCO has five per image). */
export const MAX_CONTEXT_CAPTIONS = 10;
/** Longest caption put in a context, in characters; longer web text is cut. */
export const MAX_CAPTION_CHARS = 400;
/** Most boxes put in a context. */
export const MAX_CONTEXT_BOXES = 50;

export const SCENE_OPEN = '<scene>';
export const SCENE_CLOSE = '</scene>';

/** `[x, y, w, h]` (COCO) to `[x1, y1, x2, y2]`. */
export function xywhToXyxy([x, y, w, h]: readonly [number, number, number, number]): BoxXYXY {
  return [x, y, x + w, y + h];
}

/**
 * The pixel corners of a box. Records hold `[x1, y1, x2, y2]` in the oriented image (the COCO source
 * converted `[x, y, w, h]` when it read the annotation; `box.original` keeps what the file said).
 */
export function boxCorners(box: Box): BoxXYXY {
  return box.box;
}

/**
 * A normalised coordinate as text: clamped to [0, 1] and written as Python's `repr(round(v, 3))` writes it
 * (exact value rounded half to even, trailing zeros dropped, `0.0`, `1.0`): the same rule as LLaVA boxes
 * in the exports (2 decimals there), so context and answers read alike.
 */
export function formatCoordinate(value: number): string {
  return formatPythonRound(Math.min(1, Math.max(0, value)), 3);
}

export function normaliseBox(corners: BoxXYXY, width: number, height: number): BoxXYXY {
  const [x1, y1, x2, y2] = corners;
  return [x1 / width, y1 / height, x2 / width, y2 / height];
}

/** `label: [x1, y1, x2, y2]` with normalised corners. */
export function formatContextBox(box: Box, width: number, height: number): string {
  const corners = normaliseBox(boxCorners(box), width, height).map(formatCoordinate);
  return `${cleanText(box.label, 100)}: [${corners.join(', ')}]`;
}

/** One line of untrusted text: whitespace runs become one space, the scene delimiters are removed, long text is cut. */
export function cleanText(text: string, maxChars = MAX_CAPTION_CHARS): string {
  let line = text.replace(/<\s*\/?\s*scene\s*>/gi, ' ').replace(/\s+/g, ' ').trim();
  if (line.length > maxChars) line = `${line.slice(0, maxChars).trimEnd()}...`;
  return line;
}

/**
 * The captions that describe the image: the ones a filter kept when a filter has run, otherwise every
 * usable non-empty caption; duplicates once; at most `MAX_CONTEXT_CAPTIONS`.
 */
export function contextCaptions(captions: readonly Caption[]): string[] {
  const filtered = captions.some((c) => c.kept !== undefined && c.kept !== null);
  const chosen = captions.filter((c) => c.usable && (filtered ? c.kept === true : true));
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const caption of chosen) {
    const line = cleanText(caption.text);
    if (line === '' || seen.has(line.toLowerCase())) continue;
    seen.add(line.toLowerCase());
    lines.push(line);
    if (lines.length >= MAX_CONTEXT_CAPTIONS) break;
  }
  // A filter that kept nothing still leaves the sample's published caption, if any, to talk about.
  if (lines.length === 0) {
    const published = publishedCaption(captions);
    if (published) lines.push(cleanText(published.text));
  }
  return lines;
}

/** What a context is built from: a sample's captions and boxes, and its image's size. */
export interface ContextInput {
  captions: readonly Caption[];
  boxes: readonly Box[];
  width: number;
  height: number;
}

/** What synthesis knows about one sample (LLM and template tasks alike): its context input and key. */
export interface SynthInput extends ContextInput {
  /** Seeds the choices made for the sample (instruction wording, region order). */
  key: string;
}

export interface BuiltContext {
  /** The context text, without the scene delimiters. Empty when there is nothing to say. */
  text: string;
  captionLines: string[];
  boxLines: string[];
}

export function buildContext(input: ContextInput, options: { boxes: boolean }): BuiltContext {
  const captionLines = contextCaptions(input.captions);
  const boxLines =
    options.boxes && input.width > 0 && input.height > 0
      ? input.boxes.slice(0, MAX_CONTEXT_BOXES).map((box) => formatContextBox(box, input.width, input.height))
      : [];
  const parts = [captionLines.join('\n'), boxLines.join('\n')].filter((part) => part.length > 0);
  return { text: parts.join('\n\n'), captionLines, boxLines };
}

/** The user message that carries a context: the data block between the delimiters, and nothing else. */
export function sceneMessage(contextText: string): string {
  return `${SCENE_OPEN}\n${contextText}\n${SCENE_CLOSE}`;
}
