/**
 * `type: jsonl`: a JSON Lines manifest, one object per line, optionally gzip-compressed. Columns are the
 * objects' top-level fields. A line that is not JSON, or not an object, is a `row_invalid` pair naming the
 * line; blank lines are skipped (they are not rows). See `manifest.ts` for how rows become pairs.
 */
import { z } from 'zod';
import { describeError } from '../core/errors.js';
import { parseJsonBytes } from './json-records.js';
import { manifestSource, type ManifestRow, type RowItem, type RowReader } from './manifest.js';
import { manifestFields } from './manifest-options.js';
import type { Source, SourceType } from './source.js';
import type { StorageSettings } from '../storage/storage-settings.js';
import { openInput, readLines, stripBom } from './text-input.js';

export const jsonlOptionsSchema = z.object({ type: z.literal('jsonl'), ...manifestFields }).strict();

export type JsonlOptions = z.infer<typeof jsonlOptionsSchema>;

export const jsonlRows: RowReader = {
  async *rows(absPath: string, _signal?: AbortSignal, storage?: StorageSettings): AsyncGenerator<RowItem> {
    const stream = await openInput(absPath, 'jsonl path', storage);
    let index = 0;
    let lastLine = 0;
    try {
      for await (const { bytes, line } of readLines(stripBom(stream))) {
        lastLine = line;
        if (isBlank(bytes)) continue;
        yield jsonRow(bytes, index++, line);
      }
    } catch (err) {
      yield { unreadable: `cannot read past line ${lastLine}: ${describeError(err)}` };
    } finally {
      stream.destroy();
    }
  },
};

/** A row from one JSON text (a JSONL line). */
export function jsonRow(bytes: Buffer, index: number, line: number): ManifestRow {
  const parsed = parseJsonBytes(bytes);
  if (parsed.error !== null) {
    return { index, line, get: () => undefined, problem: `the line is not valid JSON: ${parsed.error}` };
  }
  const value = parsed.value;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const kind = Array.isArray(value) ? 'a list' : value === null ? 'null' : `a ${typeof value}`;
    return { index, line, get: () => undefined, problem: `the line holds ${kind}, expected a JSON object` };
  }
  const record = value as Record<string, unknown>;
  return {
    index,
    line,
    get: (column) => (Object.hasOwn(record, column) ? record[column] : undefined),
    problem: null,
    invalidUtf8: parsed.invalidUtf8,
  };
}

function isBlank(bytes: Buffer): boolean {
  for (const c of bytes) if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  return true;
}

export const jsonlSource = {
  type: 'jsonl',
  schema: jsonlOptionsSchema,
  create(options: JsonlOptions, name: string): Source {
    return manifestSource(options, name, jsonlRows);
  },
} satisfies SourceType<JsonlOptions>;
