/**
 * Sample records. A record grows as it passes stages: a source yields a `Pair`, decoding adds `image`
 * facts (`DecodedPair`), later stages add scores and conversations. A sample that failed keeps flowing
 * with `failure` set so the store records it; stages pass such samples through untouched.
 */

import type { Turn } from './conversation.js';
import type { FailureCode } from './failure-codes.js';

export type CaptionOrigin = 'web' | 'annotation' | 'synthetic';

export interface Caption {
  text: string;
  origin: CaptionOrigin;
  /**
   * A problem found in the caption text itself, e.g. `invalid_utf8` (the caption is unusable and not kept)
   * or `control_chars_removed` (the caption was cleaned and stays usable). Null when clean.
   */
  issue: string | null;
  /** False when the caption cannot be used as text (invalid bytes). An empty caption is usable but empty. */
  usable: boolean;
  /** Captioner that wrote a synthetic caption (model folder or API model name). */
  model?: string | null;
  /** Filter scores and verdict; absent until a filter stage has run. */
  itc?: number | null;
  itm?: number | null;
  kept?: boolean | null;
  reason?: string | null;
}

/**
 * The caption a sample is published with: the first one a filter kept, or before any filter has run,
 * the first usable non-empty one. Null when there is none.
 */
export function publishedCaption(captions: readonly Caption[]): Caption | null {
  const filtered = captions.some((c) => c.kept !== undefined && c.kept !== null);
  if (filtered) return captions.find((c) => c.kept === true) ?? null;
  return captions.find((c) => c.usable && c.text.trim().length > 0) ?? null;
}

/** Box corners in pixels of the (EXIF-oriented) image: [x1, y1, x2, y2]. */
export type BoxXYXY = [number, number, number, number];

export interface Box {
  label: string;
  box: BoxXYXY;
  /** The box exactly as the source gave it, with its frame, e.g. COCO's `[x, y, w, h]`. */
  original?: { frame: 'coco_xywh' | 'xyxy'; values: number[] };
}

export type SampleStatus = 'ok' | 'failed' | 'dropped';

export interface SampleFailure {
  /** Stable machine code, e.g. `image_truncated`, `image_too_large`, `tar_truncated`: one of `core/failure-codes.ts`. */
  code: FailureCode;
  message: string;
  /** Stage that recorded the failure. */
  stage: string;
  /**
   * True when the stage already said why in one line for every sample it fails so (a stopped LLM client):
   * the run reports no line per sample. Not stored.
   */
  said?: boolean;
}

/** What a source yields: image bytes plus the text and boxes that came with them. */
export interface Pair {
  /** Unique within a run; letters, marks and digits of any script, `_` and `-` (`isValidKey`): a valid WebDataset key. */
  key: string;
  /** Name of the source that produced it (`sources[i].name`, default `<type>-<i>`). */
  source: string;
  /** Where the image bytes live, so later commands can read them again: `tar:PATH#MEMBER` or `file:PATH`. */
  imageRef: string;
  /** Original encoded bytes; null when the source could not read them (then `failure` is set). */
  imageBytes: Buffer | null;
  captions: Caption[];
  boxes: Box[];
  /** Extra fields from the source (img2dataset json, COCO image record), stored as JSON. */
  meta: Record<string, unknown>;
  /** A conversation the source brought (an existing LLaVA record): recorded and exported as task `imported`. */
  conversations?: Turn[];
  failure: SampleFailure | null;
  /** Set by a stage that decided not to keep the sample (e.g. no caption passed the filter). */
  dropped?: { reason: string; stage: string } | null;
  /**
   * Set when work on the sample is left for a later run (an LLM budget ran out, the run was interrupted):
   * exports hold it back, so resuming finishes it and exports it once, complete.
   */
  deferred?: { reason: string; stage: string } | null;
}

/**
 * The one "is this sample still open" rule: not failed, not dropped, not deferred. Stages work on open
 * samples only and pass the others through untouched, in order (they still get recorded); exports write
 * the samples still open at the end.
 */
export function isOpen(sample: Pick<Pair, 'failure' | 'dropped' | 'deferred'>): boolean {
  return !sample.failure && !sample.dropped && !sample.deferred;
}

export interface ImageFacts {
  /** Width and height after EXIF orientation is applied. */
  width: number;
  height: number;
  /** sharp's format name: jpeg, png, webp, gif, ... */
  format: string;
  byteLength: number;
  sha256: string;
  /** EXIF orientation tag (1-8), 1 when absent. */
  orientation: number;
}

export interface DecodedPair extends Pair {
  /** Null when `failure` is set, or when a source dropped the pair before reading an image (a text-only record). */
  image: ImageFacts | null;
}

/** Mark a sample failed; keeps the first failure if one is already set. */
export function failSample<T extends Pair>(sample: T, stage: string, code: FailureCode, message: string): T {
  if (sample.failure) return sample;
  return { ...sample, failure: { code, message, stage } };
}

export function sampleStatus(sample: Pair): SampleStatus {
  if (sample.failure) return 'failed';
  if (sample.dropped) return 'dropped';
  return 'ok';
}

/**
 * Keys are letters, marks and digits of any script, `_` and `-`, in Unicode NFC. They are WebDataset
 * keys (readers split a member name at its first dot, and a slash makes a folder) and file names in the
 * JSON exports, so dots, slashes, spaces, punctuation, symbols and control or format characters are out.
 * Tar headers hold them as UTF-8 (a pax record when a name passes 100 bytes).
 */
const KEY_PATTERN = /^[\p{L}\p{M}\p{N}_-]+$/u;
const NOT_KEY_CHARACTER = /[^\p{L}\p{M}\p{N}_-]/gu;

/** What keys are made of, in words, for messages. */
export const KEY_CHARACTERS = 'letters, digits, "_" and "-"';

export function isValidKey(key: string): boolean {
  return KEY_PATTERN.test(key) && key === key.normalize('NFC');
}

/**
 * Turn any identifier into a valid key: NFC, then every character that is not a letter, mark or digit
 * (of any script), `_` or `-` becomes `_` (`a b.jpg` -> `a_b_jpg`, `ünïcødé` stays).
 */
export function toKey(raw: string): string {
  const key = raw.normalize('NFC').replace(NOT_KEY_CHARACTER, '_');
  return key.length > 0 ? key : '_';
}
