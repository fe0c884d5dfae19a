/**
 * How a Qwen user message's text sits around its image.
 *
 * Qwen's current finetune code (`qwen-vl-finetune/qwenvl/data/data_processor.py`, `_build_messages`) splits a
 * human turn at `<image>`, strips each text segment (Python's `str.strip()`), drops the empty ones, and
 * renders the content list with the processor's chat template, which writes the items one after the other:
 * `<image>\nWhat is this?` becomes `<|vision_start|>...<|vision_end|>What is this?`, no newline. That is
 * `stripped`, the default. `verbatim` keeps the text as it is (`<|vision_end|>\nWhat is this?`), as the
 * earlier Qwen2.5-VL finetune code (`preprocess_qwen_2_visual`, a string replacement of `<image>`) built it.
 */
import { IMAGE_TOKEN } from '../../core/conversation.js';

export const QWEN_IMAGE_TEXT_STYLES = ['stripped', 'verbatim'] as const;
/** What Qwen's finetune code splits user text at besides `<image>`: a video placeholder. */
export const VIDEO_TOKEN = '<video>';
export type QwenImageText = (typeof QWEN_IMAGE_TEXT_STYLES)[number];

/**
 * Python's whitespace for `str.strip()`: JavaScript's `\s` without U+FEFF, plus U+001C-U+001F and U+0085.
 * (`"".join(c for c in map(chr, range(0x110000)) if c.isspace())` in Python 3.)
 */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');

/** Python's `text.strip()`. */
export function pythonStrip(text: string): string {
  return text.replace(PY_STRIP, '');
}

/**
 * A human turn as Qwen's finetune code reads it: each segment around `<image>` stripped, nothing between a
 * segment and the image. `What is\n<image>\nthis?` -> `What is<image>this?`; `  Hi  ` -> `Hi`.
 */
export function strippedUserText(text: string): string {
  return text
    .split(IMAGE_TOKEN)
    .map((segment) => pythonStrip(segment))
    .join(IMAGE_TOKEN);
}
