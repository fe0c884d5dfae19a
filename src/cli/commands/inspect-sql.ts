/**
 * `inspect RUN.db sql "SELECT ..."`: one statement, read-only, on the run database given; what the query
 * may do and how its errors read is `store/user-query.ts`'s. This prints the rows.
 *
 * Output is bounded: rows are read one at a time; `--json` streams them; on a terminal the table shows the
 * first `TABLE_ROWS` (a terminal table of more helps nobody) and says so, while a table piped into a file or
 * another program gets every row (cutting it there would lose rows silently). A blob is shown by its size.
 */
import { escapeControlChars } from '../../core/control-chars.js';
import { withUserQuery, type UserRow } from '../../store/user-query.js';
import { renderTable } from '../table.js';

/** Rows a table shows at most; `--json` prints them all. */
export const TABLE_ROWS = 10_000;

export function inspectSql(dbPath: string, query: string, json: boolean): void {
  withUserQuery(dbPath, query, (rows) => (json ? printJsonRows(rows) : printTable(rows)));
}

function printTable(rows: Iterable<UserRow>): void {
  const shown: UserRow[] = [];
  const limit = process.stdout.isTTY ? TABLE_ROWS : Infinity;
  let more = false;
  for (const row of rows) {
    if (shown.length === limit) {
      more = true;
      break;
    }
    shown.push(displayRow(row));
  }
  print(renderTable(shown, undefined, 80));
  if (more) process.stderr.write(`vlcurate: sql: the first ${TABLE_ROWS} rows are shown; add a LIMIT, or use --json for all of them\n`);
}

function printJsonRows(rows: Iterable<UserRow>): void {
  let first = true;
  for (const row of rows) {
    process.stdout.write(escapeControlChars(`${first ? '[\n' : ',\n'}${indent(JSON.stringify(displayRow(row), null, 2))}`));
    first = false;
  }
  print(first ? '[]' : '\n]');
}

function indent(text: string): string {
  return text.replace(/^/gm, '  ');
}

/** Blobs (none in the run database's own columns; `zeroblob(n)` makes one) are shown by their size. */
function displayRow(row: UserRow): UserRow {
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
