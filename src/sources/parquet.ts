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
 * pairs, and `images/parquet-file.ts` for the file reading shared with embedded-image references.
 */
import type { FileMetaData } from 'hyparquet';
import { z } from 'zod';
import { ConfigError, describeError } from '../core/errors.js';
import { openParquet, parquetColumns, readRowGroup, type ColumnCursor } from '../images/parquet-file.js';
import { manifestSource, type RowItem, type RowReader } from './manifest.js';
import { manifestColumns, manifestFields, type ManifestOptions } from './manifest-options.js';
import type { Source, SourceType } from './source.js';
import type { StorageSettings } from '../storage/storage-settings.js';

export const parquetOptionsSchema = z.object({ type: z.literal('parquet'), ...manifestFields }).strict();

export type ParquetOptions = z.infer<typeof parquetOptionsSchema>;

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
    async *rows(absPath: string, signal: AbortSignal, storage?: StorageSettings): AsyncGenerator<RowItem> {
      const { file, metadata } = await openParquet(absPath, storage);
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
    async check(absPath: string, storage?: StorageSettings): Promise<void> {
      checkColumns((await openParquet(absPath, storage)).metadata, absPath);
    },
    async count(absPath: string, storage?: StorageSettings): Promise<number | null> {
      const { metadata } = await openParquet(absPath, storage);
      return Number(metadata.num_rows);
    },
  };
}

export const parquetSource = {
  type: 'parquet',
  schema: parquetOptionsSchema,
  create(options: ParquetOptions, name: string): Source {
    return manifestSource(options, name, parquetRows(options));
  },
} satisfies SourceType<ParquetOptions>;
