/**
 * A Hugging Face `tokenizer.json` assembled from a byte-level BPE folder that ships `vocab.json` +
 * `merges.txt` (the slow-tokenizer files) instead of the fast one: Qwen2 and Qwen2-VL as published by many
 * fine-tunes. The components are those of the Qwen2 fast tokenizer:
 *
 * - normalizer NFC,
 * - pre-tokenizer: Split on {@link QWEN2_PRETOKENIZE_REGEX} (isolated), then ByteLevel without a prefix space
 *   and without its own regex,
 * - model BPE over the vocabulary and merges, no unknown token, no byte fallback,
 * - decoder ByteLevel; no post-processor tokens (Qwen2 adds no BOS/EOS),
 * - the added tokens declared by `tokenizer_config.json` (`added_tokens_decoder`), never normalized.
 */

/** Qwen2's pre-tokenizer pattern (tiktoken cl100k style, digits one at a time). */
export const QWEN2_PRETOKENIZE_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export interface AddedTokenSpec {
  id: number;
  content: string;
  special: boolean;
}

/**
 * Parse `merges.txt`: one `left right` pair per line, an optional `#version` header, LF or CRLF line ends
 * (the published Qwen2 file uses CRLF; a stray `\r` would silently disable every merge).
 */
export function parseMerges(text: string): string[] {
  const merges: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.length === 0 || line.startsWith('#version')) continue;
    merges.push(line);
  }
  return merges;
}

/** The `tokenizer.json` object for a Qwen2-style byte-level BPE. */
export function assembleByteLevelBpe(vocab: Record<string, number>, merges: readonly string[], added: readonly AddedTokenSpec[]): Record<string, unknown> {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...added]
      .sort((a, b) => a.id - b.id)
      .map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t.special })),
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_PRETOKENIZE_REGEX }, behavior: 'Isolated', invert: false },
        byteLevel,
      ],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [...merges],
    },
  };
}

/**
 * Tokens Qwen2-VL's tokenizer declares beyond Qwen2's three (ids are reserved in every Qwen2 vocabulary).
 * Folders of a text-only Qwen2 model lack them; the `qwen2_vl` template needs the vision ones.
 */
export const QWEN2_VL_ADDED_TOKENS: readonly AddedTokenSpec[] = [
  { id: 151646, content: '<|object_ref_start|>', special: true },
  { id: 151647, content: '<|object_ref_end|>', special: true },
  { id: 151648, content: '<|box_start|>', special: true },
  { id: 151649, content: '<|box_end|>', special: true },
  { id: 151650, content: '<|quad_start|>', special: true },
  { id: 151651, content: '<|quad_end|>', special: true },
  { id: 151652, content: '<|vision_start|>', special: true },
  { id: 151653, content: '<|vision_end|>', special: true },
  { id: 151654, content: '<|vision_pad|>', special: true },
  { id: 151655, content: '<|image_pad|>', special: true },
  { id: 151656, content: '<|video_pad|>', special: true },
];
