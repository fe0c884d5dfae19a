import Database from 'better-sqlite3';
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { MIGRATIONS, READ_ONLY_VIEWS } from './migrations.js';

export type Db = Database.Database;

export interface OpenOptions {
  /** Open without the right to write (for `inspect`); the database must exist and is never migrated. */
  readonly?: boolean;
}

/** Open (creating if needed) a run database with WAL and the current schema. */
export function openDatabase(path: string, options: OpenOptions = {}): Db {
  if (options.readonly) {
    let db: Db;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
    } catch (err) {
      throw new ConfigError(`run database "${path}": cannot open (${(err as Error).message})`, { cause: err });
    }
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new ConfigError(`run database "${path}": schema version ${version} is newer than this vlcurate understands (${MIGRATIONS.length})`);
    }
    // An older database is read as it is, through views that give it the current shape where it differs
    // (version 0: not a run database yet; its readers find no tables, as before).
    if (version > 0) for (let v = version + 1; v <= MIGRATIONS.length; v++) if (READ_ONLY_VIEWS[v]) db.exec(READ_ONLY_VIEWS[v]!);
    return db;
  }
  mkdirSync(dirname(path), { recursive: true });
  let db: Db;
  try {
    db = new Database(path);
  } catch (err) {
    // SQLite's own message ("unable to open database file") names neither the path nor the reason.
    const why = isFolder(path) ? 'it is a folder, expected a database file' : (err as Error).message;
    throw new ConfigError(`run database "${path}": cannot open (${why})`, { cause: err });
  }
  db.pragma('journal_mode = WAL');
  // NORMAL is durable across process kills in WAL mode (only an OS crash can lose the last commits).
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db, path);
  return db;
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function migrate(db: Db, path: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new ConfigError(`run database "${path}": schema version ${version} is newer than this vlcurate understands (${MIGRATIONS.length})`);
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

export function nowIso(): string {
  return new Date().toISOString();
}
