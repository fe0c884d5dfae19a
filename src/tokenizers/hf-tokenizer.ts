/**
 * The one loader of Hugging Face tokenizer folders. A folder holds `tokenizer.json` (the fast tokenizer), or
 * `vocab.json` + `merges.txt` with the added tokens in `tokenizer_config.json` (the slow files, as Qwen2
 * ships them; see `assemble-bpe.ts`). Both become a @huggingface/tokenizers `Tokenizer` here, the only file
 * that imports that package.
 *
 * It lives in `tokenizers/` and depends only on `core/`: the model text encoders (`models/tokenizer.ts`:
 * ITC, ITM, the captioner's text side) and the chat templates (`chat-tokenizer.ts`, used by `export/`)
 * both build on it, each adding its own view of `tokenizer_config.json`.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { Tokenizer } from '@huggingface/tokenizers';

import { ConfigError } from '../core/errors.js';
import { assembleByteLevelBpe, parseMerges, type AddedTokenSpec } from './assemble-bpe.js';

/**
 * The part of @huggingface/tokenizers' `Tokenizer` this project uses. Its bundled .d.ts files import each
 * other without file extensions, which NodeNext resolution cannot follow, so the class types as `any`;
 * this interface pins down what we rely on.
 */
export interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}

/** A tokenizer definition in tokenizer.json form, and where it came from (for messages). */
export interface TokenizerDefinition {
  /** The parsed tokenizer.json, or one assembled from vocab.json + merges.txt. Not validated. */
  json: unknown;
  /** `dir/tokenizer.json`, or `dir (vocab.json + merges.txt)`. */
  source: string;
}

/** Read and parse a JSON file; unreadable and malformed files are ConfigErrors naming the path. */
export async function readTokenizerJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ConfigError(`${what} ${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The added tokens `tokenizer_config.json` declares in `added_tokens_decoder` (id -> {content, special}). */
export function configAddedTokens(config: Record<string, unknown>, configPath: string): AddedTokenSpec[] {
  const added: AddedTokenSpec[] = [];
  const decoder = (config.added_tokens_decoder ?? {}) as Record<string, { content?: unknown; special?: boolean } | null>;
  for (const [id, token] of Object.entries(decoder)) {
    if (typeof token?.content !== 'string' || !/^\d+$/.test(id)) {
      throw new ConfigError(`tokenizer config ${configPath}: \`added_tokens_decoder.${id}\` must be {"content": "...", ...} under a numeric id`);
    }
    added.push({ id: Number(id), content: token.content, special: token.special ?? true });
  }
  return added;
}

/**
 * The tokenizer definition of folder `dir`: its tokenizer.json, else one assembled from vocab.json +
 * merges.txt and the added tokens of `config` (the folder's tokenizer config, read from `configPath`).
 * Null when the folder has neither; the caller says what it expected.
 */
export async function readTokenizerDefinition(
  dir: string,
  config: Record<string, unknown>,
  configPath: string,
): Promise<TokenizerDefinition | null> {
  const jsonPath = path.join(dir, 'tokenizer.json');
  if (existsSync(jsonPath)) return { json: await readTokenizerJson(jsonPath, 'tokenizer'), source: jsonPath };
  const vocabPath = path.join(dir, 'vocab.json');
  const mergesPath = path.join(dir, 'merges.txt');
  if (!existsSync(vocabPath) || !existsSync(mergesPath)) return null;
  const vocab = await readTokenizerJson(vocabPath, 'vocabulary');
  if (!isObject(vocab)) throw new ConfigError(`vocabulary ${vocabPath}: expected an object of token -> id`);
  const merges = parseMerges(await readFile(mergesPath, 'utf8'));
  const json = assembleByteLevelBpe(vocab as Record<string, number>, merges, configAddedTokens(config, configPath));
  return { json, source: `${dir} (vocab.json + merges.txt)` };
}

/** Build the tokenizer; a definition the library rejects is a ConfigError naming `source`. */
export function buildHfTokenizer(json: object, config: object, source: string): HfTokenizer {
  try {
    return new Tokenizer(json, config) as HfTokenizer;
  } catch (err) {
    throw new ConfigError(`Cannot build a tokenizer from ${source}: ${(err as Error).message}`, { cause: err });
  }
}
