/**
 * Source types by name. The recipe's `type` field picks one; adding a type is one line in
 * `SOURCE_TYPES` (its schema joins the recipe schema through `sourceSchema`).
 */
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { cocoSource } from './coco.js';
import { csvSource, tsvSource } from './csv.js';
import { folderSource } from './folder.js';
import { jsonlSource } from './jsonl.js';
import { llavaSource } from './llava-json.js';
import { parquetSource } from './parquet.js';
import type { Source } from './source.js';
import { webdatasetSource } from './webdataset.js';

export const SOURCE_TYPES = [webdatasetSource, cocoSource, jsonlSource, csvSource, tsvSource, parquetSource, folderSource, llavaSource] as const;

type SourceTypes = typeof SOURCE_TYPES;
type SchemasOf<T extends readonly { schema: unknown }[]> = { -readonly [K in keyof T]: T[K]['schema'] };

/** One recipe `sources[]` entry: a union discriminated on `type`. */
export const sourceSchema = z.discriminatedUnion(
  'type',
  SOURCE_TYPES.map((sourceType) => sourceType.schema) as SchemasOf<SourceTypes>,
);

export type SourceOptions = z.infer<typeof sourceSchema>;

/** Build the source for `sources[index]`; its name defaults to `<type>-<index>`. */
export function createSource(options: SourceOptions, index: number): Source {
  const sourceType = SOURCE_TYPES.find((candidate) => candidate.type === options.type);
  if (sourceType === undefined) {
    const known = SOURCE_TYPES.map((candidate) => `"${candidate.type}"`).join(' | ');
    throw new ConfigError(`sources[${index}].type: expected one of ${known}, got "${String(options.type)}"`);
  }
  const name = options.name ?? `${options.type}-${index}`;
  // The entry was parsed by `sourceSchema`, so its shape is the one this type's schema accepts.
  return (sourceType.create as (options: SourceOptions, name: string) => Source)(options, name);
}
