/**
 * The pixel bounds of Qwen2-VL's `smart_resize`, which fix how many `<|image_pad|>` tokens an image gets
 * and the Qwen2.5-VL coordinates. They must equal what the trainer's image processor uses, or training
 * stops with "image features and image tokens do not match". So the bounds come, in order, from the
 * export's options, from `preprocessor_config.json` beside the tokenizer (a Qwen2-VL model folder has one:
 * `min_pixels` / `max_pixels`, or `size.shortest_edge` / `size.longest_edge` in newer files), or from the
 * defaults (3136 and 28*28*1280).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../core/errors.js';
import { QWEN2_VL_MAX_PIXELS, QWEN2_VL_MIN_PIXELS } from '../../core/smart-resize.js';

export interface VisionPixels {
  minPixels: number;
  maxPixels: number;
  /** Where the bounds came from, for the stats file. */
  from: 'options' | 'preprocessor_config.json' | 'defaults';
}

export function resolveVisionPixels(options: { minPixels?: number | undefined; maxPixels?: number | undefined }, tokenizerDir: string | null): VisionPixels {
  const config = tokenizerDir === null ? null : readPreprocessorPixels(join(tokenizerDir, 'preprocessor_config.json'));
  const minPixels = options.minPixels ?? config?.minPixels ?? QWEN2_VL_MIN_PIXELS;
  const maxPixels = options.maxPixels ?? config?.maxPixels ?? QWEN2_VL_MAX_PIXELS;
  const from = options.minPixels !== undefined || options.maxPixels !== undefined ? 'options' : config ? 'preprocessor_config.json' : 'defaults';
  if (minPixels > maxPixels) throw new ConfigError(`minPixels ${minPixels} is larger than maxPixels ${maxPixels} (from ${from}); expected minPixels <= maxPixels`);
  return { minPixels, maxPixels, from };
}

function readPreprocessorPixels(path: string): { minPixels?: number; maxPixels?: number } | null {
  if (!existsSync(path)) return null;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  const size = (json['size'] ?? {}) as Record<string, unknown>;
  const pick = (field: string, value: unknown): number | undefined => {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      throw new ConfigError(`${path}: ${field} expected a positive whole number, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  const minPixels = pick('min_pixels', json['min_pixels']) ?? pick('size.shortest_edge', size['shortest_edge']);
  const maxPixels = pick('max_pixels', json['max_pixels']) ?? pick('size.longest_edge', size['longest_edge']);
  if (minPixels === undefined && maxPixels === undefined) return null;
  return { ...(minPixels !== undefined ? { minPixels } : {}), ...(maxPixels !== undefined ? { maxPixels } : {}) };
}
