/**
 * Reading a Parquet file with `hyparquet`: the footer, one row group's columns as cursors, single cells.
 * Shared by the Parquet reader (`sources/parquet.ts`, row by row) and by image references that name a cell
 * holding embedded image bytes (`image-ref.ts`, `parquet:PATH#row=N&column=NAME`).
 *
 * Compression: SNAPPY and uncompressed (hyparquet's own), GZIP and BROTLI (through node:zlib), ZSTD when
 * this Node has it (22.15+). LZ4 and LZO row groups cannot be decoded.
 */
import { stat } from 'node:fs/promises';
import zlib from 'node:zlib';
import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, parquetSchema, type AsyncBuffer, type Compressors, type FileMetaData } from 'hyparquet';
import { ConfigError, describeError } from '../core/errors.js';

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

/** Values of one column across its pages, read in order. */
export class ColumnCursor {
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
export async function readRowGroup(file: AsyncBuffer, metadata: FileMetaData, columns: string[], rowStart: number, rowEnd: number): Promise<Map<string, ColumnCursor>> {
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
