/**
 * Run databases for store tests: real SQLite files in a temporary folder, removed after each test, and
 * databases made at an older schema version (as an older vlcurate left them).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach } from 'vitest';
import { MIGRATIONS } from '../../src/store/migrations.js';

const folders: string[] = [];
afterEach(() => {
  for (const dir of folders.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A path for a run database in a fresh temporary folder (removed after the test). */
export function tempDatabasePath(name = 'run.db'): string {
  const dir = mkdtempSync(join(tmpdir(), 'vlc-store-'));
  folders.push(dir);
  return join(dir, name);
}

/**
 * A database file made with the first `version` migrations only, as a vlcurate of that schema made it,
 * with one run and the samples `keys` (status ok, source `src`) to hang rows on. Returns the open handle.
 */
export function databaseAtVersion(path: string, version: number, keys: readonly string[] = []): Database.Database {
  const db = new Database(path);
  for (const migration of MIGRATIONS.slice(0, version)) db.exec(migration);
  db.pragma(`user_version = ${version}`);
  db.prepare(`INSERT INTO runs (id, recipe_json, recipe_hash, started_at) VALUES (1, '{}', 'h', 'now')`).run();
  const insert = db.prepare(`INSERT INTO samples (key, source, image_ref, status, run_id, updated_at) VALUES (?, 'src', ?, 'ok', 1, 'now')`);
  for (const key of keys) insert.run(key, `file:${key}`);
  return db;
}
