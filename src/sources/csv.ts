/**
 * `type: csv` and `type: tsv`: delimited manifests, optionally gzip-compressed, parsed as a stream by
 * `delimited.ts` (quoted fields with delimiters, `""` and newlines inside, CRLF, a byte order mark).
 *
 * The first record is the header, unless `columns` names the columns of a file without one (CC3M's TSV:
 * `columns: [caption, url]`). A configured column missing from the header is a configuration error; a
 * record with a different number of fields than the header, or broken quoting, is a `row_invalid` pair
 * naming its row and line. See `manifest.ts` for how rows become pairs.
 */
import { z } from 'zod';
import { ConfigError, describeError } from '../core/errors.js';
import { parseDelimited } from './delimited.js';
import { manifestSource, type RowItem, type RowReader } from './manifest.js';
import { manifestColumns, manifestFields, type ManifestOptions } from './manifest-options.js';
import type { Source, SourceType } from './source.js';
import type { StorageSettings } from '../storage/storage-settings.js';
import { openInput, stripBom } from './text-input.js';

const delimitedFields = {
  /** Field separator, one ASCII character. Default `,` for csv, tab for tsv. */
  delimiter: z
    .string()
    .regex(/^[\x01-\x7f]$/, 'expected one ASCII character')
    .refine((d) => d !== '"' && d !== '\n' && d !== '\r', 'expected a character other than a quote or a newline')
    .optional(),
  /** Fields may be quoted with `"` (RFC 4180). Default true; false reads every `"` as text. */
  quoting: z.boolean().default(true),
  /** Column names for a file without a header row; when set, the first record is data. */
  columns: z.array(z.string().min(1)).min(1).optional(),
};

export const csvOptionsSchema = z.object({ type: z.literal('csv'), ...manifestFields, ...delimitedFields }).strict();
export const tsvOptionsSchema = z.object({ type: z.literal('tsv'), ...manifestFields, ...delimitedFields }).strict();

export type CsvOptions = z.infer<typeof csvOptionsSchema>;
export type TsvOptions = z.infer<typeof tsvOptionsSchema>;

type DelimitedOptions = CsvOptions | TsvOptions;

export function delimitedRows(options: DelimitedOptions): RowReader {
  const delimiter = (options.delimiter ?? (options.type === 'csv' ? ',' : '\t')).charCodeAt(0);
  const quote = options.quoting ? 0x22 : null;
  return {
    async *rows(absPath: string, _signal?: AbortSignal, storage?: StorageSettings): AsyncGenerator<RowItem> {
      const stream = await openInput(absPath, `${options.type} path`, storage);
      let header: string[] | null = options.columns ?? null;
      let columnIndex: Map<string, number> | null = header === null ? null : indexColumns(header, absPath, options);
      let index = 0;
      let lastLine = 0;
      try {
        for await (const record of parseDelimited(stripBom(stream), { delimiter, quote })) {
          lastLine = record.line;
          if (header === null || columnIndex === null) {
            if (record.problem !== null) throw new ConfigError(`${options.type} path: the header row of "${absPath}" is malformed: ${record.problem}`);
            header = record.fields.map((field) => field.toString('utf8'));
            columnIndex = indexColumns(header, absPath, options);
            continue;
          }
          const { fields } = record;
          const columns = columnIndex;
          let problem = record.problem;
          if (problem === null && fields.length !== header.length) {
            problem = `the row has ${fields.length} field${fields.length === 1 ? '' : 's'}, the header has ${header.length}${fields.length > header.length ? ' (an unquoted delimiter in a field?)' : ''}`;
          }
          yield {
            index: index++,
            line: record.line,
            get: (column) => {
              const at = columns.get(column);
              return at === undefined ? undefined : fields[at];
            },
            problem,
          };
        }
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        yield { unreadable: `cannot read past line ${lastLine}: ${describeError(err)}` };
      } finally {
        stream.destroy();
      }
    },
  };
}

/** Column name -> field position; every configured column must be there. The first of duplicates wins. */
function indexColumns(header: string[], absPath: string, options: ManifestOptions): Map<string, number> {
  const index = new Map<string, number>();
  header.forEach((name, i) => {
    if (!index.has(name)) index.set(name, i);
  });
  for (const { option, column } of manifestColumns(options)) {
    if (!index.has(column)) {
      const shown = header.slice(0, 20).map((name) => JSON.stringify(name)).join(', ');
      throw new ConfigError(
        `${options.type} ${option}: column "${column}" is not among the columns of "${absPath}" (${shown}${header.length > 20 ? ', ...' : ''})`,
      );
    }
  }
  return index;
}

export const csvSource = {
  type: 'csv',
  schema: csvOptionsSchema,
  create(options: CsvOptions, name: string): Source {
    return manifestSource(options, name, delimitedRows(options));
  },
} satisfies SourceType<CsvOptions>;

export const tsvSource = {
  type: 'tsv',
  schema: tsvOptionsSchema,
  create(options: TsvOptions, name: string): Source {
    return manifestSource(options, name, delimitedRows(options));
  },
} satisfies SourceType<TsvOptions>;
