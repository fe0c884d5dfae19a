/**
 * `inspect RUN.db sql "SELECT ..."`: one statement, read-only, on the run database given. Whatever the
 * query does wrong is the user's input, not vlcurate's fault, so it ends in one line and exit 2 (as a
 * syntax error does): a write, `ATTACH`/`DETACH` (a one-statement call cannot use an attached database,
 * and attaching reads files that are not this run), a runtime error of SQLite (`load_extension` is not
 * authorized, `zeroblob(2000000000)` is too big, an integer overflow).
 *
 * Output is bounded: rows are read one at a time; `--json` streams them; on a terminal the table shows the
 * first `TABLE_ROWS` (a terminal table of more helps nobody) and says so, while a table piped into a file or
 * another program gets every row (cutting it there would lose rows silently). A blob is shown by its size.
 */
import { escapeControlChars } from '../../core/control-chars.js';
import Database from 'better-sqlite3';
import { ConfigError } from '../../core/errors.js';
import { openDatabase } from '../../store/database.js';
import { renderTable } from '../table.js';

/** Rows a table shows at most; `--json` prints them all. */
export const TABLE_ROWS = 10_000;

/** A statement that starts (after comments and spaces) with ATTACH or DETACH. */
const ATTACH_OR_DETACH = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?(?:\*\/|$))*(ATTACH|DETACH)\b/i;

/** What SQLite's terse messages mean here. */
function hintFor(err: { code: string; message: string }): string | null {
  if (err.code === 'SQLITE_AUTH' || /not authorized/i.test(err.message)) return 'inspect sql cannot load extensions';
  if (err.code === 'SQLITE_TOOBIG') return 'a value is larger than SQLite allows';
  return null;
}

export function inspectSql(dbPath: string, query: string, json: boolean): void {
  const verb = ATTACH_OR_DETACH.exec(query)?.[1];
  if (verb !== undefined) {
    throw new ConfigError(`sql: ${verb.toUpperCase()} is not allowed: inspect sql reads the run database it is given; to query another database, inspect that one`);
  }
  const db = openDatabase(dbPath, { readonly: true });
  try {
    let statement: Database.Statement;
    try {
      statement = db.prepare(query);
    } catch (err) {
      // A syntax error, an unknown table, two statements in one string: all the query's own.
      throw new ConfigError(`sql: ${(err as Error).message}`, { cause: err });
    }
    if (!statement.readonly) {
      throw new ConfigError('sql: this connection is read-only; only statements that read (SELECT, read-only PRAGMA) are allowed');
    }
    if (!statement.reader) {
      sqlStep(() => statement.run());
      return json ? print('[]') : print(renderTable([]));
    }
    const rows = sqlStep(() => statement.iterate() as IterableIterator<Record<string, unknown>>);
    if (json) return printJsonRows(rows);
    const shown: Record<string, unknown>[] = [];
    const limit = process.stdout.isTTY ? TABLE_ROWS : Infinity;
    let more = false;
    for (const row of sqlRows(rows)) {
      if (shown.length === limit) {
        more = true;
        break;
      }
      shown.push(displayRow(row));
    }
    if (more) (rows as { return?: () => unknown }).return?.();
    print(renderTable(shown, undefined, 80));
    if (more) process.stderr.write(`vlcurate: sql: the first ${TABLE_ROWS} rows are shown; add a LIMIT, or use --json for all of them\n`);
  } finally {
    db.close();
  }
}

function printJsonRows(rows: Iterable<Record<string, unknown>>): void {
  let first = true;
  for (const row of sqlRows(rows)) {
    process.stdout.write(escapeControlChars(`${first ? '[\n' : ',\n'}${indent(JSON.stringify(displayRow(row), null, 2))}`));
    first = false;
  }
  print(first ? '[]' : '\n]');
}

function indent(text: string): string {
  return text.replace(/^/gm, '  ');
}

/** Blobs (none in the run database's own columns; `zeroblob(n)` makes one) are shown by their size. */
function displayRow(row: Record<string, unknown>): Record<string, unknown> {
  let out = row;
  for (const [column, value] of Object.entries(row)) {
    if (Buffer.isBuffer(value)) {
      if (out === row) out = { ...row };
      out[column] = `<blob ${value.length} bytes>`;
    }
  }
  return out;
}

/** Rows hold text from inputs (metadata, messages): no control character reaches the terminal. */
function print(text: string): void {
  process.stdout.write(`${escapeControlChars(text)}\n`);
}

/** Rows as they come, a SQLite error met while stepping turned into one line. */
function* sqlRows(rows: Iterable<Record<string, unknown>>): Generator<Record<string, unknown>> {
  const iterator = rows[Symbol.iterator]();
  for (;;) {
    const next = sqlStep(() => iterator.next());
    if (next.done) return;
    yield next.value;
  }
}

function sqlStep<T>(step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof Database.SqliteError) {
      const hint = hintFor(err);
      const code = err.code === 'SQLITE_ERROR' ? '' : ` [${err.code}]`;
      throw new ConfigError(`sql: ${err.message}${hint ? ` (${hint})` : ''}${code}`, { cause: err });
    }
    // better-sqlite3's own refusals while stepping (an integer too large for a JavaScript number).
    if (err instanceof RangeError) throw new ConfigError(`sql: ${err.message}`, { cause: err });
    throw err;
  }
}
