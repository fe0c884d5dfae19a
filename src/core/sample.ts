/**
 * Sample records. A record grows as it passes stages: a source yields a `Pair`, decoding adds `image`
 * facts (`DecodedPair`), later stages add scores and conversations. A sample that failed or was dropped
 * keeps flowing with its `fate` set so the store records it; stages pass such samples through untouched.
 */

import type { PreparedPixels } from './decoded-pixels.js';
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
  readonly code: FailureCode;
  readonly message: string;
  /** Stage that recorded the failure. */
  readonly stage: string;
  /**
   * True when the stage already said why in one line for every sample it fails so (a stopped LLM client):
   * the run reports no line per sample. Not stored.
   */
  readonly said?: boolean;
}

/** Why a stage decided not to keep the sample (e.g. `no_caption_passed`), or why work on it waits. */
export interface SampleDecision {
  readonly reason: string;
  readonly stage: string;
}

/**
 * What became of a sample so far. `open`: still worked on, and exported at the end. `failed`: bad input or
 * a failed step, recorded with its code. `dropped`: a stage decided not to keep it. `deferred`: work on it
 * is left for a later run (an LLM budget ran out, the run was interrupted), so exports hold it back and
 * resuming finishes it and exports it once, complete. Stored as the sample's status (`sampleStatus`).
 */
export type SampleFate =
  | { readonly kind: 'open' }
  | ({ readonly kind: 'failed' } & SampleFailure)
  | ({ readonly kind: 'dropped' } & SampleDecision)
  | ({ readonly kind: 'deferred' } & SampleDecision);

export type FateKind = SampleFate['kind'];

/** The fate of a sample nothing has decided about yet. */
export const OPEN: SampleFate = Object.freeze({ kind: 'open' });

/** Any record that carries a fate: samples, and the narrower views exports and reports take of them. */
export interface HasFate {
  fate: SampleFate;
}

/** What a source yields: image bytes plus the text and boxes that came with them. */
export interface Pair {
  /** Unique within a run; letters, marks and digits of any script, `_` and `-` (`isValidKey`): a valid WebDataset key. */
  key: string;
  /** Name of the source that produced it (`sources[i].name`, default `<type>-<i>`). */
  source: string;
  /** Where the image bytes live, so later commands can read them again: `tar:PATH#MEMBER` or `file:PATH`. */
  imageRef: string;
  /** Original encoded bytes; null when the source could not read them (then it has `failed`). */
  imageBytes: Buffer | null;
  captions: Caption[];
  boxes: Box[];
  /** Extra fields from the source (img2dataset json, COCO image record), stored as JSON. */
  meta: Record<string, unknown>;
  /** A conversation the source brought (an existing LLaVA record): recorded and exported as task `imported`. */
  conversations?: Turn[];
  fate: SampleFate;
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
  /** Null when the sample failed before or in decode, or when a source dropped the pair before reading an image (a text-only record). */
  image: ImageFacts | null;
  /**
   * The image decoded once by the decode stage and prepared for each model that follows (`decoded-pixels.ts`),
   * so the model stages do not decode it again; absent without model stages, released after the last one.
   */
  pixels?: PreparedPixels;
}

/**
 * A sample after `decode.dedup: exact`: one dropped as `duplicate_image` names the earlier sample whose
 * image bytes it repeats. Recorded in the sample's stored metadata as `duplicateOf`.
 */
export interface DedupedPair extends DecodedPair {
  duplicateOf?: string;
}

/** The fate of a sample a source read with `failure` (a failure it met), or open when there is none. */
export function fateOf(failure: SampleFailure | null): SampleFate {
  return failure ? { kind: 'failed', ...failure } : OPEN;
}

/**
 * How final each fate is. A fate only becomes more final, and of two equal ones the first stays: a
 * failure outweighs a drop (a failed sample is recorded as failed), a drop outweighs a deferral.
 */
const FINALITY: Record<FateKind, number> = { open: 0, deferred: 1, dropped: 2, failed: 3 };

function withFate<T extends HasFate>(sample: T, fate: SampleFate): T {
  return FINALITY[fate.kind] > FINALITY[sample.fate.kind] ? { ...sample, fate } : sample;
}

/** Mark a sample failed; keeps the first failure if one is already set. */
export function failSample<T extends HasFate>(sample: T, stage: string, code: FailureCode, message: string): T {
  return withFate(sample, { kind: 'failed', code, message, stage });
}

/** Drop a sample (`reason`, e.g. `no_caption_passed`); a failed or already dropped sample stays as it is. */
export function dropSample<T extends HasFate>(sample: T, stage: string, reason: string): T {
  return withFate(sample, { kind: 'dropped', reason, stage });
}

/** Leave the rest of a sample's work for a later run; only an open sample can wait. */
export function deferSample<T extends HasFate>(sample: T, stage: string, reason: string): T {
  return withFate(sample, { kind: 'deferred', reason, stage });
}

/**
 * The one "is this sample still open" rule: not failed, not dropped, not deferred. Stages work on open
 * samples only and pass the others through untouched, in order (they still get recorded); exports write
 * the samples still open at the end.
 */
export function isOpen(sample: HasFate): boolean {
  return sample.fate.kind === 'open';
}

/** The failure, when the sample failed; null otherwise. */
export function failureOf(sample: HasFate): SampleFailure | null {
  if (sample.fate.kind !== 'failed') return null;
  const { kind: _, ...failure } = sample.fate;
  return failure;
}

/** The status a sample is recorded with; a deferred sample is `ok` (its instruction rows say what waits). */
export function sampleStatus(sample: HasFate): SampleStatus {
  const { kind } = sample.fate;
  return kind === 'failed' ? 'failed' : kind === 'dropped' ? 'dropped' : 'ok';
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
