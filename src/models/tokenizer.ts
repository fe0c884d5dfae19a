/**
 * Text tokenization for the model folders: `tokenizer.json` (+ `tokenizer_config.json`) loaded through
 * `tokenizers/hf-tokenizer.ts` (the project's one tokenizer-folder loader), which turns a text into ids with the model's special tokens. Truncation and
 * padding are done here: a truncated text keeps the special tokens the post-processor puts at its end
 * (`<|endoftext|>`, `[SEP]`, `</s>`), because models pool there (CLIP takes the hidden state at the
 * EOS token, found as the position of the highest id), and padding goes on the right.
 */
import path from 'node:path';

import { z } from 'zod';

import { ConfigError } from '../core/errors.js';
import { buildHfTokenizer, readTokenizerDefinition, type HfTokenizer } from '../tokenizers/hf-tokenizer.js';
import { parseConfig, readOptionalJsonFile } from './model-files.js';

/** How {@link TextTokenizer.encodeBatch} pads. */
export type Padding = 'longest' | 'max_length';

export interface EncodeBatchOptions {
  /** Longest sequence, special tokens included. Default: the tokenizer's {@link TextTokenizer.maxLength}. */
  maxLength?: number;
  /** `'longest'` (default) pads to the longest text of the batch, `'max_length'` to `maxLength`. */
  padding?: Padding;
  /** Id written into padded positions. Default: the tokenizer's {@link TextTokenizer.padId}. */
  padId?: number;
}

/** A padded batch of token ids, ready to feed as int64 `[B, T]` tensors. */
export interface TokenBatch {
  inputIds: BigInt64Array;
  /** 1 for real tokens, 0 for padding. */
  attentionMask: BigInt64Array;
  dims: [number, number];
  /** Tokens per text before padding (after truncation). */
  lengths: number[];
}

export interface TextTokenizerOptions {
  /** Longest sequence by default, overriding `model_max_length` from tokenizer_config.json. */
  maxLength?: number;
}

// A special token in tokenizer_config.json is a string or an AddedToken object with `content`.
const tokenField = z
  .union([z.string(), z.object({ content: z.string() }).loose(), z.null()], { error: 'expected a token string or {"content": ...}' })
  .optional();

const tokenizerConfigSchema = z
  .object({
    model_max_length: z.number({ error: 'expected a number' }).positive({ error: 'expected a positive number' }).optional(),
    pad_token: tokenField,
    eos_token: tokenField,
    sep_token: tokenField,
    bos_token: tokenField,
    cls_token: tokenField,
    unk_token: tokenField,
  })
  .loose();

const tokenizerJsonSchema = z
  .object({
    model: z.object({ type: z.string().optional() }).loose(),
    added_tokens: z
      .array(z.object({ id: z.number(), content: z.string(), special: z.boolean().optional() }).loose())
      .optional(),
    padding: z.object({ pad_id: z.number().optional() }).loose().nullable().optional(),
  })
  .loose();

type TokenField = z.output<typeof tokenField>;

function tokenText(field: TokenField): string | undefined {
  if (field === undefined || field === null) return undefined;
  return typeof field === 'string' ? field : field.content;
}

/** Beyond this, `model_max_length` is transformers' "no limit" placeholder (int(1e30)), not a length. */
const NO_LIMIT = 1_000_000;

/** A loaded tokenizer that encodes batches into padded int64 id and mask arrays. */
export class TextTokenizer {
  /** Special tokens the post-processor puts before and after the text (e.g. `[CLS]` ... `[SEP]`). */
  readonly prefixIds: readonly number[];
  readonly suffixIds: readonly number[];

  private constructor(
    private readonly tokenizer: HfTokenizer,
    /** Path of tokenizer.json (or the folder, for vocab.json + merges.txt), for messages. */
    readonly source: string,
    /** Default longest sequence (special tokens included), or undefined when neither file nor option gives one. */
    readonly maxLength: number | undefined,
    /** Id used for padding: tokenizer_config's `pad_token`, else tokenizer.json's padding id, else EOS, else 0. */
    readonly padId: number,
    /** Id of the end-of-sequence token when the config names one (`eos_token`, else `sep_token`). */
    readonly eosId: number | undefined,
  ) {
    const template = detectTemplate(tokenizer);
    this.prefixIds = template.prefix;
    this.suffixIds = template.suffix;
  }

  /**
   * Load `dir/tokenizer.json` (or `vocab.json` + `merges.txt`) and, when present, `dir/tokenizer_config.json`.
   * A missing or unreadable tokenizer is a ConfigError naming its path.
   */
  static async load(dir: string, options: TextTokenizerOptions = {}): Promise<TextTokenizer> {
    const jsonPath = path.join(dir, 'tokenizer.json');
    const configPath = path.join(dir, 'tokenizer_config.json');
    const rawConfig = (await readOptionalJsonFile(configPath, 'tokenizer config')) ?? {};
    const definition = await readTokenizerDefinition(dir, rawConfig as Record<string, unknown>, configPath);
    if (definition === null) throw new ConfigError(`Missing tokenizer: ${jsonPath} does not exist`);
    const json = parseConfig(tokenizerJsonSchema, definition.json, definition.source);
    const config = parseConfig(tokenizerConfigSchema, rawConfig, configPath);
    const tokenizer = buildHfTokenizer(definition.json as object, rawConfig as object, definition.source);

    const idOf = (field: TokenField, name: string): number | undefined => {
      const text = tokenText(field);
      if (text === undefined) return undefined;
      const id = tokenizer.token_to_id(text);
      if (id === undefined) {
        throw new ConfigError(`${configPath}: field \`${name}\` names a token that is not in ${definition.source}, got ${JSON.stringify(text)}`);
      }
      return id;
    };
    const eosId = idOf(config.eos_token, 'eos_token') ?? idOf(config.sep_token, 'sep_token');
    const padId = idOf(config.pad_token, 'pad_token') ?? json.padding?.pad_id ?? eosId ?? 0;

    let maxLength = options.maxLength;
    if (maxLength !== undefined) checkMaxLength(maxLength, 'maxLength');
    if (maxLength === undefined && config.model_max_length !== undefined && config.model_max_length < NO_LIMIT) {
      maxLength = Math.floor(config.model_max_length);
    }
    return new TextTokenizer(tokenizer, definition.source, maxLength, padId, eosId);
  }

  /** Ids of `text` with the special tokens, not truncated. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: true }).ids;
  }

  /** Ids of `text` with its special tokens, truncated to `maxLength` keeping the trailing special tokens. */
  encodeTruncated(text: string, maxLength: number): number[] {
    const prefix = this.prefixIds;
    const suffix = this.suffixIds;
    const room = maxLength - prefix.length - suffix.length;
    if (room < 0) {
      throw new RangeError(
        `Expected \`maxLength\` to leave room for the ${prefix.length + suffix.length} special tokens of ${this.source}, got ${maxLength}`,
      );
    }
    const core = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    return [...prefix, ...core.slice(0, room), ...suffix];
  }

  /** Encode, truncate and pad a batch into int64 `input_ids` and `attention_mask` arrays `[B, T]`. */
  encodeBatch(texts: readonly string[], options: EncodeBatchOptions = {}): TokenBatch {
    const maxLength = options.maxLength ?? this.maxLength;
    if (maxLength === undefined) {
      throw new ConfigError(
        `No maximum text length for ${this.source}: tokenizer_config.json has no usable model_max_length; pass maxLength`,
      );
    }
    checkMaxLength(maxLength, 'maxLength');
    const padding = options.padding ?? 'longest';
    if (padding !== 'longest' && padding !== 'max_length') {
      throw new RangeError(`Expected \`padding\` to be 'longest' or 'max_length', got ${JSON.stringify(padding)}`);
    }
    const padId = BigInt(options.padId ?? this.padId);
    const rows = texts.map((t) => this.encodeTruncated(t, maxLength));
    const lengths = rows.map((r) => r.length);
    const width = padding === 'max_length' ? maxLength : Math.max(1, ...lengths);
    const inputIds = new BigInt64Array(texts.length * width).fill(padId);
    const attentionMask = new BigInt64Array(texts.length * width);
    rows.forEach((row, b) => {
      const base = b * width;
      for (let t = 0; t < row.length; t++) {
        inputIds[base + t] = BigInt(row[t]!);
        attentionMask[base + t] = 1n;
      }
    });
    return { inputIds, attentionMask, dims: [texts.length, width], lengths };
  }

  /** Text of some ids. */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.tokenizer.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /** Id of a token, or undefined when it is not in the vocabulary. */
  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }
}

function checkMaxLength(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Expected \`${name}\` to be an integer from 1 and up, got ${JSON.stringify(value)}`);
  }
}

/**
 * Find the special tokens the post-processor adds around a single text by encoding probe texts with and
 * without them. Template post-processors (Template, Bert, Roberta) add the same ids for every text.
 */
function detectTemplate(tokenizer: HfTokenizer): { prefix: number[]; suffix: number[] } {
  for (const probe of ['a', 'hello world', 'x 1 .']) {
    const core = tokenizer.encode(probe, { add_special_tokens: false }).ids;
    const full = tokenizer.encode(probe, { add_special_tokens: true }).ids;
    if (core.length === 0) continue;
    for (let start = 0; start + core.length <= full.length; start++) {
      if (core.every((id, i) => full[start + i] === id)) {
        return { prefix: full.slice(0, start), suffix: full.slice(start + core.length) };
      }
    }
  }
  return { prefix: [], suffix: [] };
}
