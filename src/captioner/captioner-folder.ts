/**
 * Captioner model folders (vision encoder-decoder, the optimum / transformers.js layout): which graphs a
 * folder has, the token ids from its configs, and stepping its decoder with or without a key/value cache.
 *
 * `onnx/encoder_model.onnx` (`pixel_values` -> `last_hidden_state`) plus one of three decoder layouts,
 * tried in this order:
 * - `merged`: `onnx/decoder_model_merged.onnx` (`input_ids`, `encoder_hidden_states`,
 *   `past_key_values.{i}.key|value`, `use_cache_branch` -> `logits`, `present.{i}.key|value`). Step 0 feeds
 *   zero-length caches `[B, heads, 0, head_dim]` and `use_cache_branch` false; later steps feed the last
 *   token, the cache, and true.
 * - `pair`: `onnx/decoder_model.onnx` for step 0 (it must also return `present.*`), then
 *   `onnx/decoder_with_past_model.onnx` with the cache.
 * - `no-cache`: `onnx/decoder_model.onnx` alone; every step re-runs the whole sequence.
 * `_fp16` / `_quantized` variants are picked by name as for the other model folders. The decoders may also
 * declare `attention_mask` (ones over the whole sequence), `position_ids` (`[B, T]`), `cache_position`
 * (`[T]`) and `encoder_attention_mask` (ones); they are fed only when declared. All rows of a batch step
 * together with equally long sequences (the prompt is the same for all), so no padding is ever fed. Layers, heads and head size come from the declared
 * `past_key_values.*` inputs, not from config.json (config.json is only the fallback for heads and head
 * size when the graph leaves them symbolic). A past input without a matching `present.*` output (the
 * cross-attention caches of seq2seq exports) keeps the value from step 0.
 *
 * Token ids: `decoder_start_token_id` (else `bos_token_id`), `eos_token_id` (a number or a list) and
 * `pad_token_id` (else the first end-of-sequence id), each read from generation_config.json, then the top
 * level of config.json, then config.json's `decoder` (VisionEncoderDecoder keeps them there).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

import { z } from 'zod';

import { OnnxSession } from '../backends/onnx-session.js';
import { elementCount, toFloat32, type TensorData, type TensorType } from '../backends/onnx-tensor.js';
import { ConfigError } from '../core/errors.js';
import { listOnnxFiles, onnxPath, parseConfig, readJsonFile, readOptionalJsonFile, type ModelVariant } from '../models/model-files.js';
import { pickInput, pickOutput } from '../models/model-folder.js';
import type { OnnxSessionOptions } from '../backends/onnx-session.js';
import type { StepModel } from './decoding/step-model.js';

export const CAPTIONER_LAYOUTS = ['merged', 'pair', 'no-cache'] as const;
export type CaptionerLayout = (typeof CAPTIONER_LAYOUTS)[number];

// ---------------------------------------------------------------------------------------------------
// Token ids from generation_config.json / config.json.
// ---------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------
// Graphs.
// ---------------------------------------------------------------------------------------------------

/** The key/value cache a decoder declares. */
export interface CacheSpec {
  /** Declared `past_key_values.*` inputs, in graph order. */
  pastNames: string[];
  /** Distinct layer indices among them. */
  layers: number;
  /** Attention heads and size per head (dims 1 and 3 of the past inputs), when known. */
  heads: number | undefined;
  headDim: number | undefined;
}

type DecoderGraphs =
  | { layout: 'merged'; merged: OnnxSession }
  | { layout: 'pair'; first: OnnxSession; withPast: OnnxSession }
  | { layout: 'no-cache'; first: OnnxSession };

const PAST = /^past_key_values\.(\d+)\.(.+)$/;

/** `present.<rest>` for `past_key_values.<rest>`. */
function presentName(past: string): string {
  return `present.${past.slice('past_key_values.'.length)}`;
}

/** The encoder and decoder sessions of one captioner folder. */
export class CaptionerGraphs {
  private constructor(
    readonly layout: CaptionerLayout,
    readonly encoder: OnnxSession,
    private readonly decoders: DecoderGraphs,
    /** Name of the encoder output fed to the decoder. */
    readonly encoderOutput: string,
    /** The cache (undefined for the no-cache layout). */
    readonly cache: CacheSpec | undefined,
  ) {}

  /** The ONNX files in use. */
  get files(): string[] {
    const d = this.decoders;
    const decoders = d.layout === 'merged' ? [d.merged] : d.layout === 'pair' ? [d.first, d.withPast] : [d.first];
    return [this.encoder.path, ...decoders.map((s) => s.path)];
  }

  /**
   * Which layout `dir` has for `variant` and the graph files it needs (file checks only, no loading).
   * `layout` forces one layout; by default the first whose files exist: merged, pair, no-cache. Throws a
   * ConfigError naming the missing files and listing what onnx/ holds.
   */
  static async detect(dir: string, variant: ModelVariant, layout?: CaptionerLayout): Promise<{ layout: CaptionerLayout; encoder: string; decoders: string[] }> {
    const encoderPath = onnxPath(dir, 'encoder_model', variant);
    const mergedPath = onnxPath(dir, 'decoder_model_merged', variant);
    const firstPath = onnxPath(dir, 'decoder_model', variant);
    const withPastPath = onnxPath(dir, 'decoder_with_past_model', variant);
    const holds = async (): Promise<string> => {
      const found = await listOnnxFiles(dir);
      return `onnx/ holds: ${found.length > 0 ? found.join(', ') : 'nothing'}`;
    };
    if (!existsSync(encoderPath)) {
      throw new ConfigError(`Captioner folder ${dir} has no ${variant} encoder: expected ${encoderPath} (${await holds()})`);
    }
    const chosen = layout ?? (existsSync(mergedPath) ? 'merged' : existsSync(firstPath) && existsSync(withPastPath) ? 'pair' : 'no-cache');
    const needed = chosen === 'merged' ? [mergedPath] : chosen === 'pair' ? [firstPath, withPastPath] : [firstPath];
    const missing = needed.filter((p) => !existsSync(p));
    if (missing.length > 0) {
      const what =
        layout === undefined
          ? `no ${variant} decoder: expected ${mergedPath}, or ${firstPath} (with or without ${withPastPath})`
          : `not the "${layout}" layout: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing`;
      throw new ConfigError(`Captioner folder ${dir} has ${what} (${await holds()})`);
    }
    return { layout: chosen, encoder: encoderPath, decoders: needed };
  }

  /**
   * Open the graphs {@link detect} found. Throws a ConfigError naming the file, input or output at fault.
   * `fallback` sizes an empty first-step cache when the graph leaves heads or head size symbolic.
   */
  static async open(
    files: { layout: CaptionerLayout; encoder: string; decoders: string[] },
    session: OnnxSessionOptions,
    fallback: { heads: number | undefined; hidden: number | undefined; configPath: string },
  ): Promise<CaptionerGraphs> {
    const chosen = files.layout;
    const settled = await Promise.allSettled([files.encoder, ...files.decoders].map((p) => OnnxSession.open(p, session)));
    const opened = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(opened.map((s) => s.close()));
      throw failed.reason;
    }
    try {
      const [encoder, ...decoderSessions] = opened;
      pickInput(encoder!, ['pixel_values'], 'image pixels');
      const encoderOutput = pickOutput(encoder!, ['last_hidden_state', 'encoder_hidden_states', 'image_embeds'], 'encoder states').name;
      for (const d of decoderSessions) checkDecoderIo(d);
      let decoders: DecoderGraphs;
      let cache: CacheSpec | undefined;
      if (chosen === 'merged') {
        const merged = decoderSessions[0]!;
        cache = cacheSpec(merged, fallback, true);
        checkPresents(merged, cache, merged);
        decoders = { layout: 'merged', merged };
      } else if (chosen === 'pair') {
        const [first, withPast] = decoderSessions as [OnnxSession, OnnxSession];
        cache = cacheSpec(withPast, fallback, false);
        checkPresents(first, cache, withPast);
        decoders = { layout: 'pair', first, withPast };
      } else {
        decoders = { layout: 'no-cache', first: decoderSessions[0]! };
      }
      return new CaptionerGraphs(chosen, encoder!, decoders, encoderOutput, cache);
    } catch (err) {
      await Promise.all(opened.map((s) => s.close()));
      throw err;
    }
  }

  /** Run the encoder on `[count, 3, H, W]` pixels; returns its states `[count, S, C]`. */
  async encode(pixels: TensorData, transfer: boolean): Promise<TensorData> {
    const out = await this.encoder.run({ pixel_values: pixels }, { outputs: [this.encoderOutput], transferInputs: transfer });
    const states = out[this.encoderOutput]!;
    if (states.dims.length !== 3 || states.dims[0] !== pixels.dims[0]) {
      throw new ConfigError(
        `Expected ${this.encoderOutput} of ${this.encoder.path} to have dims [${pixels.dims[0]}, S, C], got [${states.dims.join(', ')}]`,
      );
    }
    return states;
  }

  /** A step model over these decoders, one row per image of `encoderStates` (`[B, S, C]`, kept as is). */
  stepper(encoderStates: TensorData): StepModel {
    return new DecoderStepper(this.decoders, this.cache, encoderStates);
  }

  async close(): Promise<void> {
    const d = this.decoders;
    const sessions = d.layout === 'merged' ? [d.merged] : d.layout === 'pair' ? [d.first, d.withPast] : [d.first];
    await Promise.all([this.encoder.close(), ...sessions.map((s) => s.close())]);
  }
}

function checkDecoderIo(s: OnnxSession): void {
  pickInput(s, ['input_ids'], 'token ids');
  pickInput(s, ['encoder_hidden_states'], 'encoder states');
  pickOutput(s, ['logits'], 'next-token logits');
}

function cacheSpec(
  s: OnnxSession,
  fallback: { heads: number | undefined; hidden: number | undefined; configPath: string },
  needSizes: boolean,
): CacheSpec {
  const past = s.inputMetadata.filter((m) => PAST.test(m.name));
  if (past.length === 0) {
    throw new ConfigError(
      `ONNX model ${s.path} declares no past_key_values.* inputs, so it cannot be a decoder with a cache; it declares inputs: ${s.inputNames.join(', ')}`,
    );
  }
  const layers = new Set(past.map((m) => PAST.exec(m.name)![1])).size;
  const first = past[0]!;
  if (first.shape.length !== 4) {
    throw new ConfigError(`Input "${first.name}" of ONNX model ${s.path} must be [batch, heads, sequence, head_dim], got [${first.shape.join(', ')}]`);
  }
  let heads = typeof first.shape[1] === 'number' ? first.shape[1] : fallback.heads;
  let headDim = typeof first.shape[3] === 'number' ? first.shape[3] : undefined;
  if (headDim === undefined && heads !== undefined && fallback.hidden !== undefined) headDim = fallback.hidden / heads;
  if (headDim !== undefined && !Number.isInteger(headDim)) headDim = undefined;
  if (needSizes && (heads === undefined || headDim === undefined)) {
    throw new ConfigError(
      `Input "${first.name}" of ONNX model ${s.path} has symbolic dims [${first.shape.join(', ')}], and ${fallback.configPath} ` +
        'gives no usable `decoder.n_head` / `num_attention_heads` and `n_embd` / `hidden_size` to size the empty first-step cache',
    );
  }
  if (heads === undefined || headDim === undefined) heads = headDim = undefined;
  return { pastNames: past.map((m) => m.name), layers, heads, headDim };
}

/** Every past input of `withPast` needs a present output in `first` (the graph that runs step 0). */
function checkPresents(first: OnnxSession, cache: CacheSpec, withPast: OnnxSession): void {
  const missing = cache.pastNames.map(presentName).filter((name) => first.output(name) === undefined);
  if (missing.length > 0) {
    throw new ConfigError(
      `ONNX model ${first.path} has no output${missing.length > 1 ? 's' : ''} ${missing.join(', ')} for the cache inputs of ${withPast.path}; ` +
        `it declares outputs: ${first.outputNames.join(', ')}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// Stepping the decoder.
// ---------------------------------------------------------------------------------------------------

type AnyArray = {
  length: number;
  subarray(a: number, b: number): AnyArray;
  set(src: AnyArray, offset: number): void;
  slice(): AnyArray;
};

/** Rows `rows[i]` of `t` along its first dim, stacked into a new tensor of the same type. */
function gatherRows(t: TensorData, rows: readonly number[]): TensorData {
  const rest = t.dims.slice(1);
  const size = elementCount(rest);
  const src = t.data as unknown as AnyArray;
  const Ctor = t.data.constructor as new (n: number) => AnyArray;
  const out = new Ctor(rows.length * size);
  rows.forEach((r, i) => out.set(src.subarray(r * size, (r + 1) * size), i * size));
  return { type: t.type, dims: [rows.length, ...rest], data: out } as unknown as TensorData;
}

function copyOf(t: TensorData): TensorData {
  return { ...t, data: (t.data as unknown as AnyArray).slice() } as unknown as TensorData;
}

function emptyOfType(type: TensorType | undefined, dims: number[]): TensorData {
  if (type === 'float16') return { type, dims, data: new Uint16Array(0) };
  if (type === 'float64') return { type, dims, data: new Float64Array(0) };
  return { type: 'float32', dims, data: new Float32Array(0) };
}

function int64(dims: [number, number], value: (row: number, col: number) => number): TensorData {
  const data = new BigInt64Array(dims[0] * dims[1]);
  for (let r = 0; r < dims[0]; r++) for (let c = 0; c < dims[1]; c++) data[r * dims[1] + c] = BigInt(value(r, c));
  return { type: 'int64', dims, data };
}

class DecoderStepper implements StepModel {
  /** Encoder states, one row per current decoder row. */
  private encoder: TensorData;
  /** Cached keys and values by past input name, one row per current decoder row. */
  private cache = new Map<string, TensorData>();
  /** Tokens the cache holds (0 before the first step). */
  private seen = 0;

  constructor(
    private readonly graphs: DecoderGraphs,
    private readonly spec: CacheSpec | undefined,
    encoderStates: TensorData,
  ) {
    this.encoder = encoderStates;
  }

  async next(sequences: readonly (readonly number[])[]): Promise<Float32Array> {
    const rows = sequences.length;
    const total = sequences[0]?.length ?? 0;
    if (rows !== this.encoder.dims[0]) throw new RangeError(`Expected ${this.encoder.dims[0]} sequences (one per row), got ${rows}`);
    if (sequences.some((s) => s.length !== total)) throw new RangeError('Expected equally long sequences');
    const g = this.graphs;
    const cached = g.layout !== 'no-cache' && this.seen > 0;
    const start = cached ? this.seen : 0;
    const steps = total - start;
    if (steps < 1) throw new RangeError(`Expected new tokens after the ${this.seen} already seen, got sequences of ${total}`);
    const encoderLength = this.encoder.dims[1]!;
    const feeds: Record<string, TensorData> = {
      input_ids: int64([rows, steps], (r, c) => sequences[r]![start + c]!),
      encoder_hidden_states: copyOf(this.encoder),
      attention_mask: int64([rows, total], () => 1),
      position_ids: int64([rows, steps], (_r, c) => start + c),
      encoder_attention_mask: int64([rows, encoderLength], () => 1),
      cache_position: { type: 'int64', dims: [steps], data: BigInt64Array.from({ length: steps }, (_, c) => BigInt(start + c)) },
    };
    let session: OnnxSession;
    if (g.layout === 'merged') {
      session = g.merged;
      feeds.use_cache_branch = { type: 'bool', dims: [1], data: new Uint8Array([cached ? 1 : 0]) };
    } else if (g.layout === 'pair') {
      session = cached ? g.withPast : g.first;
    } else {
      session = g.first;
    }
    const outputs = ['logits'];
    if (this.spec !== undefined) {
      for (const name of this.spec.pastNames) {
        const present = presentName(name);
        const produced = session.output(present) !== undefined;
        if (produced) outputs.push(present);
        if (session.input(name) === undefined) continue;
        if (cached) {
          const value = this.cache.get(name)!;
          // A cache entry the graph replaces can move to the worker; one it does not return is kept.
          feeds[name] = produced ? value : copyOf(value);
        } else {
          const meta = session.input(name)!;
          feeds[name] = emptyOfType(meta.type, [rows, this.spec.heads ?? 1, 0, this.spec.headDim ?? 1]);
        }
      }
    }
    const out = await session.run(feeds, { outputs });
    const logits = out.logits!;
    if (logits.dims.length !== 3 || logits.dims[0] !== rows || logits.dims[1] !== steps) {
      throw new ConfigError(`Expected logits of ${session.path} to have dims [${rows}, ${steps}, vocab], got [${logits.dims.join(', ')}]`);
    }
    if (this.spec !== undefined) {
      for (const name of this.spec.pastNames) {
        const present = out[presentName(name)];
        if (present !== undefined) this.cache.set(name, present);
        else if (!this.cache.has(name)) {
          throw new ConfigError(`ONNX model ${session.path} returned no ${presentName(name)} at the first step, so "${name}" has no value`);
        }
      }
      this.seen = total;
    }
    const vocab = logits.dims[2]!;
    const values = toFloat32(logits, `logits of ${session.path}`);
    if (steps === 1) return values;
    const last = new Float32Array(rows * vocab);
    for (let r = 0; r < rows; r++) last.set(values.subarray((r * steps + steps - 1) * vocab, (r * steps + steps) * vocab), r * vocab);
    return last;
  }

  select(rows: readonly number[]): void {
    this.encoder = gatherRows(this.encoder, rows);
    for (const [name, value] of this.cache) this.cache.set(name, gatherRows(value, rows));
  }
}
