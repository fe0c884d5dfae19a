/**
 * Reading a Parquet file with `hyparquet`: the footer, one row group's columns as cursors, single cells.
 * Shared by the Parquet reader (`sources/parquet.ts`, row by row) and by image references that name a cell
 * holding embedded image bytes (`image-ref.ts`, `parquet:PATH#row=N&column=NAME`).
 *
 * Compression: SNAPPY and uncompressed (hyparquet's own), GZIP and BROTLI (through node:zlib), ZSTD when
 * this Node has it (22.15+). LZ4 and LZO row groups cannot be decoded.
 *
 * A remote file (`s3://`, `https://`) is never downloaded whole: hyparquet asks for byte ranges (the
 * footer, then the wanted column chunks of each row group) and each becomes one ranged GET pinned to the
 * ETag seen when the file was opened (`remoteAsyncBuffer`).
 */
import { stat } from 'node:fs/promises';
import zlib from 'node:zlib';
import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, parquetSchema, type AsyncBuffer, type Compressors, type FileMetaData } from 'hyparquet';
import { ConfigError, describeError } from '../core/errors.js';
import { StorageError, type ObjectStore } from '../core/object-store.js';
import { isRemote, parseLocation } from '../storage/location.js';
import { openLocation } from '../storage/open-store.js';
import { DEFAULT_STORAGE, type StorageSettings } from '../storage/storage-settings.js';

type ZstdZlib = typeof zlib & { zstdDecompressSync?: (input: Uint8Array) => Buffer };

/** Decompressors beyond hyparquet's own SNAPPY. */
export const PARQUET_COMPRESSORS: Compressors = {
  GZIP: (input) => zlib.gunzipSync(input),
  BROTLI: (input) => zlib.brotliDecompressSync(input),
  ...((zlib as ZstdZlib).zstdDecompressSync ? { ZSTD: (input: Uint8Array) => (zlib as ZstdZlib).zstdDecompressSync!(input) } : {}),
};

/** Open a Parquet file and read its footer; configuration errors name the file. */
export async function openParquet(absPath: string, storage: StorageSettings = DEFAULT_STORAGE): Promise<{ file: AsyncBuffer; metadata: FileMetaData }> {
  const file = isRemote(absPath) ? await remoteAsyncBuffer(absPath, storage) : await localAsyncBuffer(absPath);
  try {
    return { file, metadata: await parquetMetadataAsync(file) };
  } catch (err) {
    throw new ConfigError(`parquet path: "${absPath}" is not a readable Parquet file: ${describeError(err)}`, { cause: err });
  }
}

async function localAsyncBuffer(absPath: string): Promise<AsyncBuffer> {
  try {
    if (!(await stat(absPath)).isFile()) throw new ConfigError(`parquet path: "${absPath}" is not a regular file`);
    return await asyncBufferFromFile(absPath);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ConfigError(`parquet path: ${missing ? `file "${absPath}" does not exist` : `cannot read "${absPath}": ${describeError(err)}`}`, { cause: err });
  }
}

/** A remote Parquet file as hyparquet's AsyncBuffer: each `slice` is one ranged read, never the whole file. */
async function remoteAsyncBuffer(name: string, storage: StorageSettings): Promise<AsyncBuffer> {
  const { store, key } = openLocation(parseLocation(name, 'parquet path'), storage);
  let info;
  try {
    info = await store.stat(key);
  } catch (err) {
    throw new ConfigError(`parquet path: cannot read "${name}": ${describeError(err)}`, { cause: err });
  }
  if (info === undefined) {
    const why = await store.read(key).then(
      (body) => (body.destroy(), 'it does not exist'),
      (err: unknown) => describeError(err),
    );
    throw new ConfigError(`parquet path: file "${name}" does not exist (${why})`);
  }
  if (!Number.isFinite(info.size)) throw new ConfigError(`parquet path: "${name}": the server does not say the file's size, which reading Parquet by ranges needs`);
  return rangedBuffer(store, key, info.size, info.etag, name);
}

function rangedBuffer(store: ObjectStore, key: string, size: number, etag: string | undefined, name: string): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const last = Math.min(end ?? size, size) - 1;
      if (last < start) return new ArrayBuffer(0);
      let bytes: Buffer | undefined;
      // A dropped connection is tried again a few times (a range read is cheap to repeat).
      for (let attempt = 0; bytes === undefined; attempt++) {
        try {
          bytes = await store.readBytes(key, { start, end: last, ...(etag !== undefined ? { ifMatch: etag } : {}) });
        } catch (err) {
          const retry = attempt < 3 && (!(err instanceof StorageError) || err.kind === 'network');
          if (!retry) throw new Error(`reading bytes ${start}-${last} of ${name}: ${describeError(err)}`, { cause: err });
          await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
        }
      }
      if (bytes.length !== last - start + 1) throw new Error(`reading bytes ${start}-${last} of ${name}: got ${bytes.length} bytes`);
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
    },
  };
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
export async function readParquetCells(absPath: string, cells: readonly { row: number; column: string }[], storage?: StorageSettings): Promise<Map<string, unknown>> {
  const { file, metadata } = await openParquet(absPath, storage);
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
