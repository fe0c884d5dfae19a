/**
 * Caption text as it arrives from the web: bytes of unknown quality. Turns them into a `Caption`:
 *
 * - strict UTF-8 decoding; bytes that are not UTF-8 give `issue: 'invalid_utf8'`, `usable: false`
 *   (the lossy decoding is kept as the text so people can see what it was)
 * - control characters are removed (C0 except tab/newline/carriage return, DEL, C1, and the bidi
 *   embedding/override/isolate controls that can make text display differently from what it says);
 *   the caption stays usable with `issue: 'control_chars_removed'`
 * - whitespace runs (tab and newline included) become one space; leading/trailing whitespace is trimmed
 *
 * An empty caption is not a problem: it is usable, empty, and has no issue.
 *
 * A caption longer than `decode.maxCaptionChars` is kept on record cut to that length, `issue: 'too_long'`,
 * `usable: false` (`limitCaptionLength`): never scored, published or sent to an LLM as if it were whole.
 */
import { CONTROL_CHARS } from '../core/control-chars.js';
import type { Caption, CaptionOrigin } from '../core/sample.js';

/** Issue codes a caption can carry from here. */
export type CaptionTextIssue = 'invalid_utf8' | 'invalid_unicode' | 'control_chars_removed' | 'too_long';

/** Default `decode.maxCaptionChars`: dense captions (a few thousand characters) fit with room to spare. */
export const DEFAULT_MAX_CAPTION_CHARS = 16_384;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

const strictDecoder = new TextDecoder('utf-8', { fatal: true });
const lossyDecoder = new TextDecoder('utf-8', { fatal: false });

export interface CleanText {
  text: string;
  /** True when control characters were removed. */
  controlCharsRemoved: boolean;
}

/** Remove control characters, collapse whitespace, trim. */
export function cleanCaptionText(raw: string): CleanText {
  const stripped = raw.replace(CONTROL_CHARS, '');
  const controlCharsRemoved = stripped.length !== raw.length;
  return { text: stripped.replace(/\s+/g, ' ').trim(), controlCharsRemoved };
}

/** Caption from raw bytes (a `.txt` member, a CSV cell read as bytes). */
export function captionFromBytes(bytes: Uint8Array, origin: CaptionOrigin): Caption {
  let decoded: string;
  try {
    decoded = strictDecoder.decode(bytes);
  } catch {
    const lossy = cleanCaptionText(lossyDecoder.decode(bytes));
    return { text: lossy.text, origin, issue: 'invalid_utf8', usable: false };
  }
  return captionFromString(decoded, origin);
}

/**
 * Caption from a string that was already decoded (a JSON field). JSON can still carry lone surrogates
 * (`"\ud800"`), which no UTF-8 encoder can write: those make the caption unusable (`invalid_unicode`).
 */
export function captionFromString(raw: string, origin: CaptionOrigin): Caption {
  if (LONE_SURROGATE.test(raw)) {
    const lossy = cleanCaptionText(raw.replace(LONE_SURROGATES, '\uFFFD'));
    return { text: lossy.text, origin, issue: 'invalid_unicode', usable: false };
  }
  const { text, controlCharsRemoved } = cleanCaptionText(raw);
  return { text, origin, issue: controlCharsRemoved ? 'control_chars_removed' : null, usable: true };
}

/**
 * `caption` cut to `maxChars` characters (UTF-16 code units, never splitting a surrogate pair) and marked
 * unusable (`too_long`) when it is longer; unchanged otherwise. An unusable caption keeps its own issue.
 */
export function limitCaptionLength<C extends Caption>(caption: C, maxChars: number): C {
  if (caption.text.length <= maxChars) return caption;
  const cut = /[\uD800-\uDBFF]/.test(caption.text[maxChars - 1] ?? '') ? maxChars - 1 : maxChars;
  return { ...caption, text: caption.text.slice(0, cut), issue: caption.usable ? 'too_long' : caption.issue, usable: false };
}
