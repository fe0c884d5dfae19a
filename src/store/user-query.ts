/**
 * A user's own SQL on a run database (`inspect sql`): one statement, read-only. Whatever the query does
 * wrong is the user's input, not vlcurate's fault, so it ends as a `ConfigError` of one line (exit 2, as a
 * syntax error does): a write, `ATTACH`/`DETACH` (a one-statement call cannot use an attached database, and
 * attaching reads files that are not this run), a runtime error of SQLite (`load_extension` is not
 * authorized, `zeroblob(2000000000)` is too big, an integer overflow), met when preparing or while stepping.
 */
import Database from 'better-sqlite3';
import { ConfigError } from '../core/errors.js';
import { openDatabase } from './database.js';

export type UserRow = Record<string, unknown>;

/** A statement that starts (after comments and spaces) with ATTACH or DETACH. */
const ATTACH_OR_DETACH = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?(?:\*\/|$))*(ATTACH|DETACH)\b/i;

/**
 * Run `query` on the database at `dbPath`, opened read-only, and hand its rows to `use` as they are read
 * (one at a time: a consumer that stops early reads no more). A statement that reads nothing (`BEGIN`)
 * gives no rows. The database is closed when `use` returns.
 */
export function withUserQuery<T>(dbPath: string, query: string, use: (rows: Iterable<UserRow>) => T): T {
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
      return use([]);
    }
    return use(sqlRows(sqlStep(() => statement.iterate() as IterableIterator<UserRow>)));
  } finally {
    db.close();
  }
}

/** What SQLite's terse messages mean here. */
function hintFor(err: { code: string; message: string }): string | null {
  if (err.code === 'SQLITE_AUTH' || /not authorized/i.test(err.message)) return 'inspect sql cannot load extensions';
  if (err.code === 'SQLITE_TOOBIG') return 'a value is larger than SQLite allows';
  return null;
}

/** Rows as they come, a SQLite error met while stepping turned into one line; stopping early ends the statement. */
function* sqlRows(rows: IterableIterator<UserRow>): Generator<UserRow> {
  try {
    for (;;) {
      const next = sqlStep(() => rows.next());
      if (next.done) return;
      yield next.value;
    }
  } finally {
    rows.return?.();
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
