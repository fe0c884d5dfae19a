/**
 * The token ids a captioner folder's configs give generation, and the decoder sizes config.json states.
 *
 * Token ids: `decoder_start_token_id` (else `bos_token_id`), `eos_token_id` (a number or a list) and
 * `pad_token_id` (else the first end-of-sequence id), each read from generation_config.json, then the top
 * level of config.json, then config.json's `decoder` (VisionEncoderDecoder keeps them there). The sizes
 * (positions, heads, hidden size) are read from `decoder` first, then the top level.
 */
import path from 'node:path';

import { z } from 'zod';

import { ConfigError } from '../core/errors.js';
import { parseConfig, readJsonFile, readOptionalJsonFile } from '../models/model-files.js';

const tokenId = z.number({ error: 'expected a token id (an integer from 0 and up)' }).int({ error: 'expected a token id (an integer from 0 and up)' }).min(0, { error: 'expected a token id (an integer from 0 and up)' });
const positive = z.number({ error: 'expected a positive integer' }).int({ error: 'expected a positive integer' }).positive({ error: 'expected a positive integer' });

const idFields = {
  decoder_start_token_id: tokenId.nullable().optional(),
  bos_token_id: tokenId.nullable().optional(),
  eos_token_id: z
    .union([tokenId, z.array(tokenId).min(1)], { error: 'expected a token id or a non-empty list of token ids' })
    .nullable()
    .optional(),
  pad_token_id: tokenId.nullable().optional(),
};

const sizeFields = {
  n_positions: positive.optional(),
  max_position_embeddings: positive.optional(),
  n_head: positive.optional(),
  num_attention_heads: positive.optional(),
  decoder_attention_heads: positive.optional(),
  n_embd: positive.optional(),
  hidden_size: positive.optional(),
  d_model: positive.optional(),
};

const generationConfigSchema = z.object(idFields).loose();
const decoderConfigSchema = z.object({ ...idFields, ...sizeFields }).loose();
const captionerConfigSchema = z.object({ ...idFields, ...sizeFields, decoder: decoderConfigSchema.nullable().optional() }).loose();

type IdField = keyof typeof idFields;
type DecoderConfig = z.output<typeof decoderConfigSchema>;

/** The special token ids generation needs, and where each came from. */
export interface GenerationIds {
  /** First token of every sequence (`decoder_start_token_id`, else `bos_token_id`). */
  startId: number;
  /** Generation stops at any of these. */
  eosIds: number[];
  /** Padding id (`pad_token_id`, else the first end-of-sequence id); informational: finished rows leave the batch. */
  padId: number;
  /** `file: field` each id was read from, e.g. `{ startId: "generation_config.json: decoder_start_token_id" }`. */
  sources: { startId: string; eosIds: string; padId: string };
}

/** What a captioner folder's configs say, for the loader. */
export interface CaptionerConfig {
  ids: GenerationIds;
  /** Longest decoder sequence (start token and prompt included), when config.json gives one. */
  maxPositions: number | undefined;
  /** config.json's decoder attention heads and hidden size (only a fallback for symbolic cache dims). */
  heads: number | undefined;
  hidden: number | undefined;
}

/** Read the token ids and sizes from `dir`'s generation_config.json and config.json. */
export async function readCaptionerConfig(dir: string): Promise<CaptionerConfig> {
  const genPath = path.join(dir, 'generation_config.json');
  const configPath = path.join(dir, 'config.json');
  const rawGen = await readOptionalJsonFile(genPath, 'generation config');
  const gen = rawGen === undefined ? undefined : parseConfig(generationConfigSchema, rawGen, genPath);
  const config = parseConfig(captionerConfigSchema, await readJsonFile(configPath, 'model config'), configPath);
  const decoder: DecoderConfig = config.decoder ?? {};
  const places: Array<{ file: string; prefix: string; values: Partial<Record<IdField, unknown>> }> = [
    ...(gen ? [{ file: 'generation_config.json', prefix: '', values: gen }] : []),
    { file: 'config.json', prefix: '', values: config },
    { file: 'config.json', prefix: 'decoder.', values: decoder },
  ];
  const find = (field: IdField): { value: number | number[]; source: string } | undefined => {
    for (const place of places) {
      const value = place.values[field];
      if (value !== undefined && value !== null) return { value: value as number | number[], source: `${place.file}: ${place.prefix}${field}` };
    }
    return undefined;
  };
  const where = `${gen ? `${genPath} or ` : ''}${configPath} (top level or \`decoder\`)`;
  const start = find('decoder_start_token_id') ?? find('bos_token_id');
  if (start === undefined) {
    throw new ConfigError(`No start token id for the captioner in ${dir}: expected \`decoder_start_token_id\` or \`bos_token_id\` in ${where}, got nothing`);
  }
  const eos = find('eos_token_id');
  if (eos === undefined) {
    throw new ConfigError(`No end-of-sequence token id for the captioner in ${dir}: expected \`eos_token_id\` in ${where}, got nothing`);
  }
  const startId = Array.isArray(start.value) ? start.value[0]! : start.value;
  const eosIds = Array.isArray(eos.value) ? [...eos.value] : [eos.value];
  const pad = find('pad_token_id');
  const padId = pad === undefined ? eosIds[0]! : (pad.value as number);
  const hidden = decoder.n_embd ?? decoder.hidden_size ?? decoder.d_model ?? config.n_embd ?? config.hidden_size ?? config.d_model;
  return {
    ids: { startId, eosIds, padId, sources: { startId: start.source, eosIds: eos.source, padId: pad?.source ?? `${eos.source} (no pad_token_id)` } },
    maxPositions: decoder.n_positions ?? decoder.max_position_embeddings ?? config.n_positions ?? config.max_position_embeddings,
    heads: decoder.n_head ?? decoder.num_attention_heads ?? decoder.decoder_attention_heads ?? config.n_head ?? config.num_attention_heads ?? config.decoder_attention_heads,
    hidden,
  };
}

