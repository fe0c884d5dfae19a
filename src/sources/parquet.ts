/**
 * `type: parquet`: a Parquet manifest (LAION / CC / Hugging Face style), read with `hyparquet` one row
 * group at a time and only the configured columns. Memory is about one row group of those columns;
 * files written with very large row groups (pandas' default is the whole file) hold all of their
 * selected columns at once.
 *
 * Compression: SNAPPY and uncompressed (hyparquet's own), GZIP and BROTLI (through node:zlib), ZSTD when
 * this Node has it (22.15+). LZ4 and LZO row groups cannot be decoded.
 *
 * A file that is not Parquet, or lacks a configured column, is a configuration error; a row group that
 * does not decode is one `manifest_unreadable` pair and reading goes on with the next group. `count()`
 * comes from the footer (the row count), so progress has an ETA. See `manifest.ts` for how rows become
 * pairs.
 */
import { stat } from 'node:fs/promises';
import zlib from 'node:zlib';
import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, parquetSchema, type AsyncBuffer, type Compressors, type FileMetaData } from 'hyparquet';
import { z } from 'zod';
import { ConfigError, describeError } from '../core/errors.js';
import { manifestSource, type RowItem, type RowReader } from './manifest.js';
import { manifestColumns, manifestFields, type ManifestOptions } from './manifest-options.js';
import type { Source, SourceType } from './source.js';

export const parquetOptionsSchema = z.object({ type: z.literal('parquet'), ...manifestFields }).strict();

export type ParquetOptions = z.infer<typeof parquetOptionsSchema>;

type ZstdZlib = typeof zlib & { zstdDecompressSync?: (input: Uint8Array) => Buffer };

/** Decompressors beyond hyparquet's own SNAPPY. */
export const PARQUET_COMPRESSORS: Compressors = {
  GZIP: (input) => zlib.gunzipSync(input),
  BROTLI: (input) => zlib.brotliDecompressSync(input),
  ...((zlib as ZstdZlib).zstdDecompressSync ? { ZSTD: (input: Uint8Array) => (zlib as ZstdZlib).zstdDecompressSync!(input) } : {}),
};

/** Open a Parquet file and read its footer; configuration errors name the file. */
export async function openParquet(absPath: string): Promise<{ file: AsyncBuffer; metadata: FileMetaData }> {
  let file: AsyncBuffer;
  try {
    if (!(await stat(absPath)).isFile()) throw new ConfigError(`parquet path: "${absPath}" is not a regular file`);
    file = await asyncBufferFromFile(absPath);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ConfigError(`parquet path: ${missing ? `file "${absPath}" does not exist` : `cannot read "${absPath}": ${describeError(err)}`}`, { cause: err });
  }
  try {
    return { file, metadata: await parquetMetadataAsync(file) };
  } catch (err) {
    throw new ConfigError(`parquet path: "${absPath}" is not a readable Parquet file: ${describeError(err)}`, { cause: err });
  }
}

/** Top-level column names of the file. */
export function parquetColumns(metadata: FileMetaData): string[] {
  return parquetSchema(metadata).children.map((child) => child.element.name);
}

export function parquetRows(options: ManifestOptions): RowReader {
  const wanted = [...new Set(manifestColumns(options).map((c) => c.column))];
  const checkColumns = (metadata: FileMetaData, absPath: string): void => {
    const available = new Set(parquetColumns(metadata));
    for (const { option, column } of manifestColumns(options)) {
      if (!available.has(column)) {
        const shown = [...available].slice(0, 20).map((name) => JSON.stringify(name)).join(', ');
        throw new ConfigError(`parquet ${option}: column "${column}" is not among the columns of "${absPath}" (${shown})`);
      }
    }
  };
  return {
    async *rows(absPath: string, signal: AbortSignal): AsyncGenerator<RowItem> {
      const { file, metadata } = await openParquet(absPath);
      checkColumns(metadata, absPath);
      let groupStart = 0;
      for (const [group, rowGroup] of metadata.row_groups.entries()) {
        if (signal.aborted) return;
        const groupRows = Number(rowGroup.num_rows);
        const groupEnd = groupStart + groupRows;
        let columns: Map<string, ColumnCursor>;
        try {
          columns = await readRowGroup(file, metadata, wanted, groupStart, groupEnd);
        } catch (err) {
          yield { unreadable: `row group ${group} (rows ${groupStart} to ${groupEnd - 1}) cannot be decoded: ${describeError(err)}` };
          groupStart = groupEnd;
          continue;
        }
        const names = [...columns.keys()];
        const cursors = [...columns.values()];
        const position = new Map(names.map((column, i) => [column, i]));
        const get = (values: unknown[]) => (column: string) => {
          const at = position.get(column);
          return at === undefined ? undefined : values[at];
        };
        for (let index = groupStart; index < groupEnd; index++) {
          yield { index, get: get(cursors.map((cursor) => cursor.next())), problem: null };
        }
        groupStart = groupEnd;
      }
    },
    async check(absPath: string): Promise<void> {
      checkColumns((await openParquet(absPath)).metadata, absPath);
    },
    async count(absPath: string): Promise<number | null> {
      const { metadata } = await openParquet(absPath);
      return Number(metadata.num_rows);
    },
  };
}

/** Values of one column across its pages, read in order. */
class ColumnCursor {
  private chunk = 0;
  private offset = 0;
  constructor(private readonly chunks: ArrayLike<unknown>[]) {}

  next(): unknown {
    while (this.chunk < this.chunks.length && this.offset >= this.chunks[this.chunk]!.length) {
      this.chunk++;
      this.offset = 0;
    }
    const chunk = this.chunks[this.chunk];
    return chunk === undefined ? undefined : chunk[this.offset++];
  }
}

/** Decode the wanted columns of one row group, as column arrays (no row objects built). */
async function readRowGroup(file: AsyncBuffer, metadata: FileMetaData, columns: string[], rowStart: number, rowEnd: number): Promise<Map<string, ColumnCursor>> {
  const chunks = new Map<string, { rowStart: number; data: ArrayLike<unknown> }[]>(columns.map((c) => [c, []]));
  await parquetRead({
    file,
    metadata,
    columns,
    rowStart,
    rowEnd,
    compressors: PARQUET_COMPRESSORS,
    // Binary columns stay bytes (embedded images); columns annotated as strings still decode to strings.
    utf8: false,
    onChunk: (chunk) => chunks.get(chunk.columnName)?.push({ rowStart: chunk.rowStart, data: chunk.columnData as ArrayLike<unknown> }),
  });
  const cursors = new Map<string, ColumnCursor>();
  for (const [column, list] of chunks) {
    list.sort((a, b) => a.rowStart - b.rowStart);
    // Chunks may start before the requested range (a page holds rows from the group's start).
    const trimmed = list.map((c) => (c.rowStart < rowStart ? Array.prototype.slice.call(c.data, rowStart - c.rowStart) : c.data));
    cursors.set(column, new ColumnCursor(trimmed));
  }
  return cursors;
}

/**
 * The values of the given cells (0-based row, column), keyed `row\0column`: each row group that holds one
 * is decoded once, with only the columns asked for. Rows past the end are left out.
 */
export async function readParquetCells(absPath: string, cells: readonly { row: number; column: string }[]): Promise<Map<string, unknown>> {
  const { file, metadata } = await openParquet(absPath);
  const values = new Map<string, unknown>();
  let groupStart = 0;
  for (const rowGroup of metadata.row_groups) {
    const groupEnd = groupStart + Number(rowGroup.num_rows);
    const inGroup = cells.filter((c) => c.row >= groupStart && c.row < groupEnd);
    if (inGroup.length > 0) {
      const columns = await readRowGroup(file, metadata, [...new Set(inGroup.map((c) => c.column))], groupStart, groupEnd);
      // Cursors read forward only: visit each column's rows in order.
      for (const [column, cursor] of columns) {
        const rows = [...new Set(inGroup.filter((c) => c.column === column).map((c) => c.row))].sort((a, b) => a - b);
        let at = groupStart;
        for (const row of rows) {
          let value: unknown;
          while (at <= row) {
            value = cursor.next();
            at++;
          }
          values.set(`${row}\0${column}`, value);
        }
      }
    }
    groupStart = groupEnd;
  }
  return values;
}

export const parquetSource = {
  type: 'parquet',
  schema: parquetOptionsSchema,
  create(options: ParquetOptions, name: string): Source {
    return manifestSource(options, name, parquetRows(options));
  },
} satisfies SourceType<ParquetOptions>;
