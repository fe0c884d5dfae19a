/**
 * Helpers for the manifest, folder and LLaVA tests: reading a source to an array, a source context, and
 * Parquet files written with hyparquet-writer (an independent writer, so the reader is checked against a
 * real file rather than its own output).
 */
import { parquetWriteFile } from 'hyparquet-writer';
import type { Pair } from '../../src/core/sample.js';
import { WHOLE, type ShardSpec } from '../../src/core/shard.js';
import { createSource, sourceSchema } from '../../src/sources/registry.js';
import type { Source, SourceContext } from '../../src/sources/source.js';

export async function collect(iterable: AsyncIterable<Pair>): Promise<Pair[]> {
  const out: Pair[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

export function context(baseDir: string, extra: Partial<SourceContext> = {}, shard: ShardSpec = WHOLE): SourceContext {
  return { signal: new AbortController().signal, shard, baseDir, ...extra };
}

/** A source from a recipe entry, through the registry (so the schema with its defaults is what runs). */
export function sourceFrom(entry: Record<string, unknown>, index = 0): Source {
  return createSource(sourceSchema.parse(entry), index);
}

export function byKey(pairs: Pair[]): Map<string, Pair> {
  return new Map(pairs.map((p) => [p.key, p]));
}

export type ParquetColumn = { name: string; data: unknown[]; type?: 'STRING' | 'INT64' | 'INT32' | 'DOUBLE' | 'BOOLEAN' | 'JSON' };

/** Write a Parquet file; `rowGroupSize` rows per row group. */
export function writeParquet(filename: string, columns: ParquetColumn[], rowGroupSize?: number): void {
  parquetWriteFile({
    filename,
    columnData: columns.map((c) => ({ name: c.name, data: c.data as never, ...(c.type ? { type: c.type } : {}) })),
    ...(rowGroupSize ? { rowGroupSize } : {}),
  });
}
