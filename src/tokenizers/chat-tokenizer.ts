/**
 * The tokenizer that chat templates and loss masks are computed with. It loads a Hugging Face tokenizer
 * folder through `hf-tokenizer.ts` (`tokenizer.json`, or `vocab.json` + `merges.txt`) and adds what
 * training-time preprocessing needs on top of plain `encode`:
 *
 * - Text is encoded in **chunks**: templates put special tokens and image placeholders in place themselves
 *   and hand the text between them to {@link ChatTokenizer.encodeText}. Special-token strings inside
 *   conversation text are never turned into special tokens (templates reject such text).
 * - **Sentencepiece dummy prefix.** Llama-style tokenizers prepend `▁` to a text (sentencepiece's
 *   `add_dummy_prefix`). Whether a chunk that follows a special token gets it is what transformers calls
 *   `legacy` mode: the slow LlamaTokenizer with `legacy=True` (its default when `tokenizer_config.json` does not
 *   say) encodes every chunk on its own, prefix included; with `legacy=False` only the start of a text gets it.
 *   The prefix is taken out of the loaded `tokenizer.json` (its `Prepend` normalizer or Metaspace
 *   `prepend_scheme`) and added here per chunk, so both behaviours are exact. Byte-level BPE has no prefix.
 * - {@link ChatTokenizer.decode} returns exactly the text the ids stand for: no leading-space stripping, no
 *   clean-up, special tokens as their text. The mask verifier compares against it.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

import { ConfigError } from '../core/errors.js';
import { QWEN2_VL_ADDED_TOKENS, type AddedTokenSpec } from './assemble-bpe.js';
import { byteLevelDecoder } from './byte-level.js';
import { escapeRegExp } from '../core/escape-regexp.js';
import {
  buildHfTokenizer,
  configAddedTokens,
  isObject,
  readTokenizerDefinition,
  readTokenizerJson,
  type HfTokenizer,
} from './hf-tokenizer.js';

/** How the vocabulary writes text: sentencepiece pieces (`▁`, `<0x0A>`) or GPT-2 byte-level characters. */
export type TokenizerStyle = 'sentencepiece' | 'byte-level';

/** Where a chunk of text sits, which decides whether a sentencepiece tokenizer gives it a dummy prefix. */
export type ChunkPosition = 'start' | 'after-special' | 'after-image';

export interface ChatTokenizerOptions {
  /**
   * Sentencepiece tokenizers: transformers' `legacy` flag (does text after a special token get the dummy
   * prefix?). Default: `legacy` from tokenizer_config.json, else true (the slow LlamaTokenizer's default).
   */
  legacy?: boolean;
}

/** Where a sentencepiece tokenizer's `legacy` flag came from: the export's option, its config, or transformers' default (true). */
export type LegacySource = 'options' | 'tokenizer_config.json' | 'default';

type TokenValue = string | { content: string } | null | undefined;

/** Words remembered by the word-by-word sentencepiece path. */
const WORD_CACHE_SIZE = 200_000;
/** Texts up to this many characters are cached whole by byte-level tokenizers. */
const SHORT_TEXT = 64;

interface TokenizerConfig {
  bos_token?: TokenValue;
  eos_token?: TokenValue;
  pad_token?: TokenValue;
  add_bos_token?: boolean;
  legacy?: boolean;
  chat_template?: unknown;
  tokenizer_class?: string;
  added_tokens_decoder?: Record<string, { content?: string; special?: boolean }>;
  [key: string]: unknown;
}

function tokenText(value: TokenValue): string | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? value : value.content;
}

/**
 * Remove the dummy prefix from a sentencepiece-style tokenizer.json, in place on a shallow copy.
 * Returns true when the tokenizer had one (then it is sentencepiece style).
 */
function stripDummyPrefix(json: Record<string, unknown>): boolean {
  let found = false;
  const normalizer = json.normalizer;
  if (isObject(normalizer)) {
    if (normalizer.type === 'Prepend') {
      json.normalizer = null;
      found = true;
    } else if (normalizer.type === 'Sequence' && Array.isArray(normalizer.normalizers)) {
      const kept = (normalizer.normalizers as unknown[]).filter((n) => !(isObject(n) && n.type === 'Prepend'));
      if (kept.length !== normalizer.normalizers.length) {
        json.normalizer = { ...normalizer, normalizers: kept };
        found = true;
      }
    }
  }
  const fixMetaspace = (pre: unknown): unknown => {
    if (isObject(pre) && pre.type === 'Metaspace') {
      found = true;
      return { ...pre, prepend_scheme: 'never', add_prefix_space: false };
    }
    return pre;
  };
  const pre = json.pre_tokenizer;
  if (isObject(pre) && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers)) {
    json.pre_tokenizer = { ...pre, pretokenizers: (pre.pretokenizers as unknown[]).map(fixMetaspace) };
  } else {
    json.pre_tokenizer = fixMetaspace(pre);
  }
  return found;
}

function mentionsType(value: unknown, type: string): boolean {
  if (Array.isArray(value)) return value.some((v) => mentionsType(v, type));
  if (!isObject(value)) return false;
  if (value.type === type) return true;
  return Object.values(value).some((v) => mentionsType(v, type));
}

export class ChatTokenizer {
  private readonly addedById: ReadonlyMap<number, string>;
  private readonly addedByContent: ReadonlyMap<string, number>;
  private readonly addedPattern: RegExp | null;
  private readonly utf8 = new TextDecoder('utf-8');
  private readonly utf8Encoder = new TextEncoder();
  private readonly byteChars: ReadonlyMap<string, number> | null;
  /**
   * Sentencepiece vocabularies whose pieces never hold `▁` after another character (Llama's): no merge
   * crosses the start of a word, so text is encoded word by word (each word cached by the BPE model), which
   * gives the same ids several times faster than one BPE over a whole paragraph.
   */
  private readonly wordwise: boolean;
  /** Word (or short text) -> ids (bounded: cleared when full). */
  private readonly words = new Map<string, readonly number[]>();

  private constructor(
    private readonly hf: HfTokenizer,
    /** Where it was loaded from, for messages. */
    readonly source: string,
    readonly style: TokenizerStyle,
    added: readonly AddedTokenSpec[],
    readonly bosToken: string | null,
    readonly eosToken: string | null,
    /** Whether a text starts with BOS (`add_bos_token`, or a post-processor that puts a token first). */
    readonly addBos: boolean,
    /** See {@link ChatTokenizerOptions.legacy}; always false for byte-level tokenizers. */
    readonly legacy: boolean,
    /** Where `legacy` came from (null for byte-level tokenizers, which have no such mode). */
    readonly legacyFrom: LegacySource | null,
    /** `chat_template` of tokenizer_config.json, when it has a single string template. */
    readonly chatTemplate: string | null,
    /** Added tokens this loader supplied because the folder lacked them (see {@link QWEN2_VL_ADDED_TOKENS}). */
    readonly impliedTokens: readonly string[],
  ) {
    this.addedById = new Map(added.map((t) => [t.id, t.content]));
    this.addedByContent = new Map(added.map((t) => [t.content, t.id]));
    const contents = added.map((t) => t.content).filter((c) => c.length > 0);
    contents.sort((a, b) => b.length - a.length);
    this.addedPattern = contents.length > 0 ? new RegExp(contents.map(escapeRegExp).join('|'), 'g') : null;
    this.byteChars = style === 'byte-level' ? byteLevelDecoder() : null;
    this.wordwise = style === 'sentencepiece' && ![...hf.get_vocab(false).keys()].some((piece) => /[^▁]▁/.test(piece));
  }

  /**
   * Load from a folder (`tokenizer.json`, or `vocab.json` + `merges.txt`, with an optional
   * `tokenizer_config.json`) or from a tokenizer config file inside such a folder (e.g.
   * `qwen2/tokenizer_config.qwen2_5.json`), which is then used instead of `tokenizer_config.json`.
   */
  static async load(location: string, options: ChatTokenizerOptions = {}): Promise<ChatTokenizer> {
    let dir = location;
    let configPath: string;
    if (existsSync(location) && statSync(location).isFile()) {
      dir = path.dirname(location);
      configPath = location;
    } else {
      if (!existsSync(location)) throw new ConfigError(`tokenizer: "${location}" does not exist (expected a tokenizer folder)`);
      configPath = path.join(dir, 'tokenizer_config.json');
    }
    const rawConfig = existsSync(configPath) ? await readTokenizerJson(configPath, 'tokenizer config') : {};
    if (!isObject(rawConfig)) throw new ConfigError(`tokenizer config ${configPath}: expected a JSON object`);
    const config = rawConfig as TokenizerConfig;

    const configAdded = configAddedTokens(config, configPath);

    const definition = await readTokenizerDefinition(dir, config, configPath);
    if (definition === null) throw new ConfigError(`tokenizer: ${dir} has neither tokenizer.json nor vocab.json + merges.txt`);
    const { json: raw, source } = definition;
    if (!isObject(raw) || !isObject(raw.model)) throw new ConfigError(`tokenizer ${source}: expected a tokenizer.json object with a \`model\``);
    const json = { ...raw };

    // Added tokens: tokenizer.json's, plus those the config declares at ids the json does not use.
    const added: AddedTokenSpec[] = [];
    for (const t of (Array.isArray(json.added_tokens) ? json.added_tokens : []) as { id: number; content: string; special?: boolean }[]) {
      added.push({ id: t.id, content: t.content, special: t.special ?? false });
    }
    const usedIds = new Set(added.map((t) => t.id));
    const usedContents = new Set(added.map((t) => t.content));
    for (const t of configAdded) {
      if (!usedIds.has(t.id) && !usedContents.has(t.content)) {
        added.push(t);
        usedIds.add(t.id);
        usedContents.add(t.content);
      }
    }

    const hadPrefix = stripDummyPrefix(json);
    const byteLevel = mentionsType(json.decoder, 'ByteLevel') || mentionsType(json.pre_tokenizer, 'ByteLevel');
    const sentencepiece = hadPrefix || mentionsType(json.decoder, 'ByteFallback') || mentionsType(json.decoder, 'Metaspace');
    if (!byteLevel && !sentencepiece) {
      throw new ConfigError(`tokenizer ${source}: only sentencepiece-style (Llama, Mistral) and byte-level BPE (GPT-2, Qwen) tokenizers are supported for chat templates`);
    }
    const style: TokenizerStyle = byteLevel ? 'byte-level' : 'sentencepiece';

    // A Qwen2 vocabulary without Qwen2-VL's tokens gets them at the ids every Qwen2 vocabulary reserves.
    const implied: string[] = [];
    const imEnd = added.find((t) => t.content === '<|im_end|>');
    if (style === 'byte-level' && imEnd?.id === 151645) {
      for (const t of QWEN2_VL_ADDED_TOKENS) {
        if (!usedIds.has(t.id) && !usedContents.has(t.content)) {
          added.push(t);
          implied.push(t.content);
        }
      }
    }
    json.added_tokens = added
      .slice()
      .sort((a, b) => a.id - b.id)
      .map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t.special }));

    const hf = buildHfTokenizer(json, {}, source);

    const bosToken = tokenText(config.bos_token);
    const eosToken = tokenText(config.eos_token);
    let addBos = config.add_bos_token;
    if (addBos === undefined) {
      const post = json.post_processor;
      const single = isObject(post) && Array.isArray(post.single) ? (post.single as unknown[]) : [];
      addBos = isObject(single[0]) && 'SpecialToken' in single[0];
    }
    const legacy = style === 'sentencepiece' ? (options.legacy ?? config.legacy ?? true) : false;
    const legacyFrom: LegacySource | null =
      style !== 'sentencepiece' ? null : options.legacy !== undefined ? 'options' : typeof config.legacy === 'boolean' ? 'tokenizer_config.json' : 'default';
    const chatTemplate = typeof config.chat_template === 'string' ? config.chat_template : null;
    const tokenizer = new ChatTokenizer(hf, source, style, added, bosToken, eosToken, addBos && bosToken !== null, legacy, legacyFrom, chatTemplate, implied);
    for (const [name, token] of [
      ['bos_token', bosToken],
      ['eos_token', eosToken],
    ] as const) {
      if (token !== null && tokenizer.tokenId(token) === undefined) {
        throw new ConfigError(`tokenizer config ${configPath}: \`${name}\` names ${JSON.stringify(token)}, which is not in the vocabulary`);
      }
    }
    return tokenizer;
  }

  get bosId(): number | null {
    return this.bosToken === null ? null : (this.tokenId(this.bosToken) ?? null);
  }

  get eosId(): number | null {
    return this.eosToken === null ? null : (this.tokenId(this.eosToken) ?? null);
  }

  /** Id of a token (added tokens first, then the vocabulary). */
  tokenId(token: string): number | undefined {
    return this.addedByContent.get(token) ?? this.hf.token_to_id(token);
  }

  /** Id of a token a template needs; a ConfigError naming the tokenizer when it is missing. */
  requireId(token: string, why: string): number {
    const id = this.tokenId(token);
    if (id === undefined) throw new ConfigError(`tokenizer ${this.source}: has no token ${JSON.stringify(token)} (${why})`);
    return id;
  }

  /** True when `id` is one of the tokenizer's added tokens (`<s>`, `<|im_end|>`, ...). */
  isAdded(id: number): boolean {
    return this.addedById.has(id);
  }

  /** The first added-token string inside `text`, or null. Conversation text must not contain any. */
  findAddedToken(text: string): string | null {
    if (!this.addedPattern) return null;
    // matchAll works on a copy, so the shared pattern's lastIndex never matters.
    for (const match of text.matchAll(this.addedPattern)) return match[0];
    return null;
  }

  /** Split text at added-token strings: text pieces and `{token, id}` pieces, in order. */
  splitAdded(text: string): (string | { token: string; id: number })[] {
    const out: (string | { token: string; id: number })[] = [];
    if (!this.addedPattern) return text.length > 0 ? [text] : [];
    let last = 0;
    for (const match of text.matchAll(this.addedPattern)) {
      if (match.index > last) out.push(text.slice(last, match.index));
      out.push({ token: match[0], id: this.addedByContent.get(match[0])! });
      last = match.index + match[0].length;
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }

  /** Whether a chunk at this position gets sentencepiece's dummy prefix. */
  dummyPrefix(position: ChunkPosition): boolean {
    if (this.style !== 'sentencepiece') return false;
    return position === 'after-special' ? this.legacy : true;
  }

  /**
   * Encode plain text (no special-token parsing, no BOS/EOS). `dummyPrefix` adds sentencepiece's leading
   * `▁`; an empty text is no tokens, with or without it (as sentencepiece encodes "").
   */
  encodeText(text: string, dummyPrefix: boolean): number[] {
    if (text.length === 0) return [];
    if (!this.wordwise) {
      const input = dummyPrefix ? ` ${text}` : text;
      // Template text ("user\n", the system prompt) recurs in every sample: short texts are remembered.
      if (input.length > SHORT_TEXT) return this.hf.encode(input, { add_special_tokens: false }).ids;
      let ids = this.words.get(input);
      if (ids === undefined) {
        ids = this.hf.encode(input, { add_special_tokens: false }).ids;
        if (this.words.size >= WORD_CACHE_SIZE) this.words.clear();
        this.words.set(input, ids);
      }
      return [...ids];
    }
    // Words start at a space that follows something else; a run of spaces stays with the word after it.
    const ids: number[] = [];
    let start = 0;
    for (let i = 1; i <= text.length; i++) {
      if (i < text.length && !(text.charCodeAt(i) === 32 && text.charCodeAt(i - 1) !== 32)) continue;
      const word = start === 0 && dummyPrefix ? ` ${text.slice(start, i)}` : text.slice(start, i);
      let wordIds = this.words.get(word);
      if (wordIds === undefined) {
        wordIds = this.hf.encode(word, { add_special_tokens: false }).ids;
        if (this.words.size >= WORD_CACHE_SIZE) this.words.clear();
        this.words.set(word, wordIds);
      }
      for (const id of wordIds) ids.push(id);
      start = i;
    }
    return ids;
  }

  /** The exact text of `ids`: byte-level and byte-fallback bytes joined before UTF-8 decoding. */
  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    const pushText = (text: string) => {
      for (const b of this.utf8Encoder.encode(text)) bytes.push(b);
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const added = this.addedById.get(id);
      if (added !== undefined) {
        pushText(added);
        continue;
      }
      const piece = this.hf.id_to_token(id);
      if (piece === undefined) throw new RangeError(`token id ${id} is not in the vocabulary of ${this.source}`);
      if (this.byteChars) {
        for (const ch of piece) {
          const b = this.byteChars.get(ch);
          if (b === undefined) pushText(ch);
          else bytes.push(b);
        }
      } else {
        const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
        if (byte) bytes.push(parseInt(byte[1]!, 16));
        else pushText(piece.replaceAll('▁', ' '));
      }
    }
    return this.utf8.decode(new Uint8Array(bytes));
  }
}

