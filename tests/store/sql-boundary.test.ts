/**
 * The store is the only place with SQL (issue 14): no file under src/ outside src/store/ imports
 * better-sqlite3, holds an SQL statement in a string, or calls a database handle's prepare/exec/pragma/...
 * (`sql-boundary.ts` says how each is found). The checker is also fed a small tree with one planted case of
 * each, so a checker that finds nothing cannot pass.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ALLOWED, sqlOutsideStore } from './sql-boundary.js';

const SRC = resolve(import.meta.dirname, '../../src');

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'vlc-sql-'));
  made.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('SQL lives in src/store/ only', () => {
  it('no file of src/ outside src/store/ has SQL (inspect\'s example of user SQL excepted)', () => {
    expect(sqlOutsideStore(SRC)).toEqual([]);
  }, 60_000);

  it('the one exception is still there and still needed: without it, inspect.ts is a finding', () => {
    const inspect = ALLOWED[0]!;
    const root = tree({ [inspect.file]: `throw new Error(${JSON.stringify(inspect.text)});\n`, 'other/usage.ts': `const m = ${JSON.stringify(inspect.text)};\n` });
    expect(sqlOutsideStore(root)).toEqual([{ file: 'other/usage.ts', line: 1, rule: 'sql-text', text: inspect.text }]);
  });

  it('finds each planted kind, with file and line; store/, comments and prose are not findings', () => {
    const root = tree({
      'store/repo.ts': "import Database from 'better-sqlite3';\nexport const q = (db: Database.Database) => db.prepare('SELECT key FROM samples').all();\n",
      'report/a.ts': [
        "import Database from 'better-sqlite3';",
        '// SELECT key FROM samples in a comment is no SQL',
        "const m = 'Select the images from the folder, then update the list and delete from disk';",
        'export const rows = (db: unknown) => (db as any).prepare(`SELECT key FROM samples WHERE status = ${"?"}`).all();',
      ].join('\n'),
      'filter/b.ts': [
        'export function f(store: { db: any }, sql: string, handleDb: any) {',
        '  store.db.exec(sql);',
        "  handleDb.pragma('journal_mode');",
        "  return ['INSERT OR REPLACE INTO t (a) VALUES (?)', \"UPDATE samples SET status = 'ok'\", 'DELETE FROM exports', 'SELECT 1', 'PRAGMA user_version', 'CREATE TEMP VIEW v AS SELECT 1', 'ALTER TABLE t ADD c'];",
        '}',
        "const lazy = () => import('better-sqlite3');",
      ].join('\n'),
      'cli/c.ts': "const pattern = /x/; pattern.exec('SELECT'); const conversations = { prepare: (s: string) => s }; conversations.prepare('a');\n",
    });
    const found = sqlOutsideStore(root).map((f) => `${f.file}:${f.line} ${f.rule}`);
    expect(found).toEqual([
      'filter/b.ts:2 db-call',
      'filter/b.ts:3 db-call',
      ...Array(7).fill('filter/b.ts:4 sql-text'),
      'filter/b.ts:6 sqlite-import',
      'report/a.ts:1 sqlite-import',
      'report/a.ts:4 db-call',
      'report/a.ts:4 sql-text',
    ]);
  });
});
