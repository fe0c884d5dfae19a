/**
 * What every model folder shares: `config.json`, `preprocessor_config.json`, `tokenizer.json`, and the
 * options for loading its ONNX graphs.
 */
import path from 'node:path';

import { z } from 'zod';

import type { OnnxSession, OnnxSessionOptions } from '../backends/onnx-session.js';
import type { TensorData, ValueInfo } from '../backends/onnx-tensor.js';
import { ConfigError, SampleError } from '../core/errors.js';
import { parseConfig, readJsonFile, type ModelVariant } from './model-files.js';
import { ImagePreprocessor, type ImageInput } from './preprocess.js';
import type { TokenBatch } from './tokenizer.js';
import { TextTokenizer } from './tokenizer.js';

/** Options for loading a model folder. */
export interface ModelLoadOptions extends OnnxSessionOptions {
  /** Which weights: `fp32` (default, `onnx/<name>.onnx`), `fp16` (`<name>_fp16.onnx`), `quantized` (`<name>_quantized.onnx`). */
  variant?: ModelVariant;
  /** Longest text in tokens, special tokens included. Default: from tokenizer_config.json / config.json. */
  maxTextLength?: number;
  /** Images decoded at once while preprocessing a batch. Default 4. */
  preprocessConcurrency?: number;
  /** Refuse images with more pixels than this. Default 100 000 000. */
  limitInputPixels?: number;
}

const positive = z.number({ error: 'expected a positive integer' }).int({ error: 'expected a positive integer' }).positive({ error: 'expected a positive integer' });

/** The fields of `config.json` the loaders read; everything else is ignored. */
export const modelConfigSchema = z
  .object({
    model_type: z.string({ error: 'expected a string' }).optional(),
    /** SigLIP: log of the logit scale (the checkpoint's `logit_scale` parameter). */
    logit_scale: z.number({ error: 'expected a number' }).optional(),
    /** SigLIP: the checkpoint's `logit_bias` parameter. */
    logit_bias: z.number({ error: 'expected a number' }).optional(),
    max_position_embeddings: positive.optional(),
    text_config: z.object({ max_position_embeddings: positive.optional() }).loose().nullable().optional(),
  })
  .loose();

export type ModelConfig = z.output<typeof modelConfigSchema>;

/** The parsed non-ONNX files of a model folder. */
export interface FolderBasics {
  dir: string;
  config: ModelConfig;
  configPath: string;
  preprocessor: ImagePreprocessor;
  tokenizer: TextTokenizer;
}

export async function loadFolderBasics(dir: string, options: ModelLoadOptions): Promise<FolderBasics> {
  const configPath = path.join(dir, 'config.json');
  const config = parseConfig(modelConfigSchema, await readJsonFile(configPath, 'model config'), configPath);
  const preprocessor = await ImagePreprocessor.fromFile(
    path.join(dir, 'preprocessor_config.json'),
    options.limitInputPixels === undefined ? {} : { limitInputPixels: options.limitInputPixels },
  );
  const tokenizer = await TextTokenizer.load(dir);
  return { dir, config, configPath, preprocessor, tokenizer };
}

/** The longest position the text encoder has, from config.json. */
export function configTextPositions(config: ModelConfig): number | undefined {
  return config.text_config?.max_position_embeddings ?? config.max_position_embeddings;
}

/** Session options without the model-folder ones. */
export function sessionOptions(options: ModelLoadOptions): OnnxSessionOptions {
  const out: OnnxSessionOptions = {};
  if (options.executionProvider !== undefined) out.executionProvider = options.executionProvider;
  if (options.intraOpThreads !== undefined) out.intraOpThreads = options.intraOpThreads;
  if (options.workers !== undefined) out.workers = options.workers;
  if (options.deviceId !== undefined) out.deviceId = options.deviceId;
  return out;
}

/**
 * Text feeds for any text encoder: `input_ids`, `attention_mask`, zero `token_type_ids` and
 * `position_ids` 0..T-1. Sessions feed only the ones their graph declares.
 */
export function textFeeds(batch: TokenBatch): Record<string, TensorData> {
  const [b, t] = batch.dims;
  const positions = new BigInt64Array(b * t);
  for (let i = 0; i < b; i++) for (let j = 0; j < t; j++) positions[i * t + j] = BigInt(j);
  return {
    input_ids: { type: 'int64', dims: [b, t], data: batch.inputIds },
    attention_mask: { type: 'int64', dims: [b, t], data: batch.attentionMask },
    token_type_ids: { type: 'int64', dims: [b, t], data: new BigInt64Array(b * t) },
    position_ids: { type: 'int64', dims: [b, t], data: positions },
  };
}

/** The first of `names` that `session` declares as an output, or a ConfigError naming the file. */
export function pickOutput(session: OnnxSession, names: readonly string[], role: string): ValueInfo {
  for (const name of names) {
    const meta = session.output(name);
    if (meta) return meta;
  }
  throw new ConfigError(
    `ONNX model ${session.path} has none of the outputs ${names.join(', ')} (${role}); ` +
      `it declares outputs: ${session.outputNames.join(', ')}`,
  );
}

/** The first of `names` that `session` declares as an input, or a ConfigError naming the file. */
export function pickInput(session: OnnxSession, names: readonly string[], role: string): ValueInfo {
  for (const name of names) {
    const meta = session.input(name);
    if (meta) return meta;
  }
  throw new ConfigError(
    `ONNX model ${session.path} has none of the inputs ${names.join(', ')} (${role}); ` +
      `it declares inputs: ${session.inputNames.join(', ')}`,
  );
}

/** Preprocess images into one batch; the first image that fails throws, naming its index. */
export async function preprocessOrThrow(
  preprocessor: ImagePreprocessor,
  images: readonly ImageInput[],
  concurrency: number | undefined,
): Promise<Float32Array> {
  const batch = await preprocessor.preprocessBatch(images, concurrency === undefined ? {} : { concurrency });
  const bad = batch.errors.findIndex((e) => e !== undefined);
  if (bad >= 0) {
    const err = batch.errors[bad]!;
    throw new SampleError(err.code, `Image ${bad} of ${images.length}: ${err.message}`, { cause: err });
  }
  return batch.data;
}
