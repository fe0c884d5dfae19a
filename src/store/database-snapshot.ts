/**
 * What a part-state snapshot (`run/part-state.ts`) needs from the run database, kept here with the rest of
 * the SQL: a counter that moves whenever the database is written, and a consistent copy taken while the
 * build goes on writing.
 */
import type { Db } from './database.js';

/** Rows this connection has changed since it opened (SQLite's total_changes()): equal counts, nothing new to save. */
export function changesSinceOpen(db: Db): number {
  return db.prepare('SELECT total_changes()').pluck().get() as number;
}

/** Copy a consistent state of `db` to `file` with SQLite's online backup (the build keeps writing meanwhile). */
export async function backupDatabase(db: Db, file: string): Promise<void> {
  await db.backup(file);
}
