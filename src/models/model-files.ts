/**
 * Reading the files of a model folder: JSON configs validated with zod, and ONNX file names by variant.
 * Every error is a ConfigError that names the file, and for a bad value the field and the value.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

import type { z } from 'zod';

import { ConfigError } from '../core/errors.js';
import { describeValue } from '../core/describe-value.js';

/** Which copy of a model's weights to load: `onnx/<name>.onnx`, `<name>_fp16.onnx` or `<name>_quantized.onnx`. */
export type ModelVariant = 'fp32' | 'fp16' | 'quantized';

export const MODEL_VARIANTS: readonly ModelVariant[] = ['fp32', 'fp16', 'quantized'];

/** Read and parse a JSON file. Missing and malformed files are ConfigErrors naming the path. */
export async function readJsonFile(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`Missing ${what}: ${file} does not exist`, { cause: err });
    throw new ConfigError(`Cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ConfigError(`${what} ${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** Read an optional JSON file; `undefined` when it does not exist. */
export async function readOptionalJsonFile(file: string, what: string): Promise<unknown> {
  if (!existsSync(file)) return undefined;
  return readJsonFile(file, what);
}

function valueAt(root: unknown, keys: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of keys) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}


/** Validate `raw` against `schema`; on failure a ConfigError naming the file, the field and its value. */
export function parseConfig<S extends z.ZodType>(schema: S, raw: unknown, file: string): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.map(String).join('.') || '(top level)';
  throw new ConfigError(
    `${file}: field \`${field}\` ${issue.message.replace(/^Invalid input: /, '')}, got ${describeValue(valueAt(raw, issue.path), 120)}`,
  );
}

/** `onnx/<base>.onnx` (fp32), `onnx/<base>_fp16.onnx` or `onnx/<base>_quantized.onnx` under `dir`. */
export function onnxPath(dir: string, base: string, variant: ModelVariant): string {
  const suffix = variant === 'fp32' ? '' : `_${variant}`;
  return path.join(dir, 'onnx', `${base}${suffix}.onnx`);
}

/** The `.onnx` files under `dir/onnx`, for error messages. */
export async function listOnnxFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(path.join(dir, 'onnx'))).filter((f) => f.endsWith('.onnx')).sort();
  } catch {
    return [];
  }
}

export function checkVariant(variant: unknown): ModelVariant {
  if (typeof variant === 'string' && (MODEL_VARIANTS as readonly string[]).includes(variant)) return variant as ModelVariant;
  throw new ConfigError(`Expected \`variant\` to be one of ${MODEL_VARIANTS.join(', ')}, got ${JSON.stringify(variant)}`);
}
