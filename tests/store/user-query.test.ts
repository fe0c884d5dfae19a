/**
 * `store/user-query.ts` (what `inspect sql` runs) and `store/scored-captions.ts` (what `calibrate` reads)
 * on a real run database written by the real RunStore.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { OPEN, type Caption, type DecodedPair } from '../../src/core/sample.js';
import { openDatabase } from '../../src/store/database.js';
import { RunStore } from '../../src/store/run-store.js';
import { scoredCaptions } from '../../src/store/scored-captions.js';
import { withUserQuery, type UserRow } from '../../src/store/user-query.js';

function sample(key: string, captions: Caption[]): DecodedPair {
  return {
    key,
    source: 'src-0',
    imageRef: `file:/x/${key}.jpg`,
    imageBytes: null,
    captions,
    boxes: [],
    meta: {},
    fate: OPEN,
    image: { width: 8, height: 8, format: 'jpeg', byteLength: 1, sha256: key, orientation: 1 },
  };
}

let dir: string;
let path: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-user-query-'));
  path = join(dir, 'run.db');
  const db = openDatabase(path);
  const store = new RunStore(db);
  const run = store.startRun('{}', 'h', '0/1');
  store.writeSamples(run, [
    sample('a', [
      { text: 'a red circle', origin: 'web', issue: null, usable: true, itc: 0.3, itm: 0.9 },
      { text: 'bad bytes', origin: 'web', issue: 'invalid_utf8', usable: false, itc: 0.2, itm: 0.8 },
    ]),
    sample('b', [{ text: 'a blue square', origin: 'synthetic', issue: null, usable: true, model: 'cap', itc: 0.25, itm: null }]),
    sample('c', [{ text: 'not scored', origin: 'web', issue: null, usable: true }]),
  ]);
  db.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const collect = (query: string): UserRow[] => withUserQuery(path, query, (rows) => [...rows]);

function configError(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('a user query', () => {
  it('hands over the rows of a read-only statement, and what use returns', () => {
    expect(collect('SELECT key, status FROM samples ORDER BY key')).toEqual([
      { key: 'a', status: 'ok' },
      { key: 'b', status: 'ok' },
      { key: 'c', status: 'ok' },
    ]);
    expect(collect('PRAGMA user_version')).toEqual([{ user_version: expect.any(Number) }]);
    expect(withUserQuery(path, 'SELECT COUNT(*) AS n FROM captions', (rows) => [...rows][0]!.n)).toBe(4);
    // A statement that reads nothing gives no rows.
    expect(collect('BEGIN')).toEqual([]);
  });

  it('rows are read one at a time: stopping early never steps into a row that fails', () => {
    // The third row overflows an integer: reading it is an error, stopping before it is not.
    const query = `SELECT key, CASE WHEN key = 'c' THEN abs(-9223372036854775808) ELSE 1 END AS v FROM samples ORDER BY key`;
    const firstTwo = withUserQuery(path, query, (rows) => {
      const out: UserRow[] = [];
      for (const row of rows) {
        out.push(row);
        if (out.length === 2) break;
      }
      return out;
    });
    expect(firstTwo).toEqual([
      { key: 'a', v: 1 },
      { key: 'b', v: 1 },
    ]);
    expect(configError(() => collect(query))).toBe('sql: integer overflow');
  });

  it("refuses writes, ATTACH and DETACH, and says what SQLite's errors mean, each as a ConfigError", () => {
    expect(configError(() => collect('DELETE FROM samples'))).toBe(
      'sql: this connection is read-only; only statements that read (SELECT, read-only PRAGMA) are allowed',
    );
    expect(collect('SELECT COUNT(*) AS n FROM samples')).toEqual([{ n: 3 }]);
    // Refused before any database is opened: the path need not exist.
    expect(configError(() => withUserQuery(join(dir, 'missing.db'), '/* x */ attach "other.db" AS o', () => 0))).toMatch(/^sql: ATTACH is not allowed/);
    expect(configError(() => collect('DETACH o'))).toMatch(/^sql: DETACH is not allowed/);
    expect(configError(() => collect('SELEC 1'))).toBe('sql: near "SELEC": syntax error');
    expect(configError(() => collect('SELECT 1; SELECT 2'))).toMatch(/^sql: .*more than one statement/);
    expect(configError(() => collect("SELECT load_extension('x')"))).toMatch(/^sql: .*\(inspect sql cannot load extensions\)/);
    expect(configError(() => collect('SELECT zeroblob(2000000000)'))).toMatch(/\(a value is larger than SQLite allows\) \[SQLITE_TOOBIG\]$/);
  });
});

describe('scored captions', () => {
  it('the usable captions with the score, with their key and text', () => {
    const db = openDatabase(path, { readonly: true });
    try {
      const byKey = (a: { key: string; text: string }, b: { key: string; text: string }) => a.key.localeCompare(b.key) || a.text.localeCompare(b.text);
      expect(scoredCaptions(db, 'itm').sort(byKey)).toEqual([{ key: 'a', text: 'a red circle', score: 0.9 }]);
      expect(scoredCaptions(db, 'itc').sort(byKey)).toEqual([
        { key: 'a', text: 'a red circle', score: 0.3 },
        { key: 'b', text: 'a blue square', score: 0.25 },
      ]);
    } finally {
      db.close();
    }
  });
});
