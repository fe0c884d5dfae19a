/**
 * Captioner types by recipe `type`. Adding one is one entry in `CAPTIONER_TYPES`: its `CaptionerType`
 * (schema + loader); the recipe's `captioner` schema and the dispatch below follow from this list.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import type { CaptionerContext, LoadedCaptioner } from './captioner-type.js';
import { onnxCaptionerType } from './onnx-captioner.js';
import { openaiCaptionerType } from './openai-captioner.js';

const CAPTIONER_TYPES = [onnxCaptionerType, openaiCaptionerType] as const;

type SchemasOf<Types extends readonly unknown[]> = { -readonly [K in keyof Types]: Types[K] extends { schema: infer S } ? S : never };

/**
 * The recipe's `captioner`: an ONNX encoder-decoder folder (`type: onnx`) or an OpenAI-compatible vision
 * chat model (`type: openai`).
 */
export const captionerOptionsSchema = z.discriminatedUnion(
  'type',
  CAPTIONER_TYPES.map((t) => t.schema) as unknown as SchemasOf<typeof CAPTIONER_TYPES>,
);

export type CaptionerOptions = z.output<typeof captionerOptionsSchema>;

/** Captioner type names, for help texts and error messages. */
export const captionerTypeNames: readonly string[] = CAPTIONER_TYPES.map((t) => t.type);

type AnyCaptionerType = {
  load(options: CaptionerOptions, ctx: CaptionerContext): Promise<LoadedCaptioner>;
  modelFolder?(options: CaptionerOptions): string;
};

function captionerType(options: CaptionerOptions): AnyCaptionerType {
  const entry = CAPTIONER_TYPES.find((t) => t.type === options.type);
  if (entry === undefined) {
    const known = captionerTypeNames.map((name) => `"${name}"`).join(' | ');
    throw new ConfigError(`captioner.type: expected one of ${known}, got ${JSON.stringify((options as { type: unknown }).type)}`);
  }
  // The entry was found by the same `type` the options were parsed with, so it takes these options.
  return entry as unknown as AnyCaptionerType;
}

/** Load the captioner a parsed recipe `captioner` section names. */
export async function loadCaptioner(options: CaptionerOptions, ctx: CaptionerContext): Promise<LoadedCaptioner> {
  return captionerType(options).load(options, ctx);
}

/** The local model folder the captioner reads (resolved against `baseDir`), or undefined when it reads none. */
export function captionerModelFolder(options: CaptionerOptions, baseDir: string): string | undefined {
  const folder = captionerType(options).modelFolder?.(options);
  return folder === undefined ? undefined : resolve(baseDir, folder);
}
