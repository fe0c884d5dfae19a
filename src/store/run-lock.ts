/**
 * One writer per run database. `build`, `export`, `refilter` and `demo` hold an exclusive lock on
 * `RUN.db.lock` for their whole run; a second writer stops at once with a `RunLockedError` that names the
 * holder. Readers (`inspect`, `report`, `estimate`, `calibrate`) never take it.
 *
 * The lock is SQLite's own: a connection to the sidecar file keeps `BEGIN IMMEDIATE` open (a RESERVED
 * lock, taken with busy_timeout 0 so a second writer fails instead of waiting). SQLite locks with POSIX
 * fcntl locks, which the kernel drops when the process dies however it dies (`kill -9`, OOM killer, power
 * loss), so a resumed run never needs a manual unlock. The sidecar's journal lives in memory and nothing
 * is ever written to it, so it stays an empty file.
 *
 * Who holds it (command, pid, host, start time) is written to `RUN.db.lock.json` right after acquiring.
 * A clean release removes both files; a killed holder leaves them behind, harmless: the next writer takes
 * the lock and rewrites the details.
 *
 * fcntl locks belong to a process: a second lock on the same file from the same process would succeed, and
 * closing any descriptor of the file drops the process's locks. So within one process the lock is counted
 * (`demo` holds it and runs `build`, which takes it again), and the file is only touched through SQLite
 * while held.
 */
import Database from 'better-sqlite3';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { isLiveProcess, uniqueTmpPath } from '../core/temp-file.js';

/** Who holds a run database's lock (`RUN.db.lock.json`). */
export interface LockHolder {
  /** The vlcurate command line, e.g. `vlcurate build recipe.yaml --progress json`. */
  command: string;
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  startedAt: string;
}

/** Another process holds the run database's lock. Exit 2 (nothing was done; run the command again later). */
export class RunLockedError extends ConfigError {
  constructor(
    readonly dbPath: string,
    readonly holder: LockHolder | null,
  ) {
    const who = holder
      ? `${JSON.stringify(holder.command)} (pid ${holder.pid} on host ${holder.host}, started ${holder.startedAt})`
      : 'another vlcurate process (it has not written its details yet)';
    super(
      `run database "${dbPath}" is in use by ${who}; nothing was done: wait for it to finish or stop it, then run this command again ` +
        '(one writer at a time; a killed run releases the database by itself)',
    );
  }
}

export interface RunLock {
  /** The lock file (`RUN.db.lock`). */
  readonly path: string;
  /** Give the lock back (and remove its files). Safe to call twice. */
  release(): void;
}

interface Held {
  conn: Database.Database;
  lockPath: string;
  holderPath: string;
  count: number;
  /** The database's folder, and the top folder this lock created for it (null when it existed). */
  folder: string;
  madeDir: string | null;
}

/** Locks this process holds, by lock file path. */
const held = new Map<string, Held>();
/** Tries before giving up when the lock file keeps being replaced under us (a releasing holder removes it). */
const ATTEMPTS = 20;
/** How long to wait for a new holder to write its details before naming no one. */
const DETAILS_WAIT_MS = 500;
const POLL_MS = 25;

/** `RUN.db.lock` beside the database file it guards (through symlinks, so two spellings share one lock). */
export function lockPathOf(dbPath: string): string {
  const real = existsSync(dbPath) ? realpathSync(dbPath) : join(realpathSync(dirname(dbPath)), basename(dbPath));
  return `${real}.lock`;
}

/**
 * Take the run database's writer lock, or throw `RunLockedError` at once when another process holds it.
 * `command` names what this process is doing (defaults to its command line). Creates the database's folder
 * when missing (and removes it again on release when it is still empty). Call it after the configuration is
 * validated and before the database is created or written.
 */
export function lockRunDatabase(dbPath: string, command = commandLine()): RunLock {
  const madeDir = mkdirSync(dirname(dbPath), { recursive: true }) ?? null;
  try {
    return lockIn(dbPath, command, madeDir);
  } catch (err) {
    removeEmptyFolders(dirname(dbPath), madeDir);
    throw err;
  }
}

function lockIn(dbPath: string, command: string, madeDir: string | null): RunLock {
  const lockPath = lockPathOf(dbPath);
  const mine = held.get(lockPath);
  if (mine) {
    mine.count++;
    return handle(mine);
  }
  const holderPath = `${lockPath}.json`;
  const waitUntil = Date.now() + DETAILS_WAIT_MS;
  for (let attempt = 0; attempt < ATTEMPTS; ) {
    const conn = tryLock(lockPath);
    if (conn === 'replaced') {
      attempt++;
      continue;
    }
    if (conn !== 'busy') {
      const entry: Held = { conn, lockPath, holderPath, count: 1, folder: dirname(dbPath), madeDir };
      held.set(lockPath, entry);
      const holder: LockHolder = { command, pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
      const tmp = uniqueTmpPath(holderPath);
      writeFileSync(tmp, `${JSON.stringify(holder)}\n`);
      renameSync(tmp, holderPath);
      return handle(entry);
    }
    const holder = readHolder(holderPath);
    // Details left by an earlier holder that died are not this holder's: give the new one a moment.
    if ((holder && isCurrent(holder)) || Date.now() >= waitUntil) throw new RunLockedError(dbPath, holder && isCurrent(holder) ? holder : null);
    sleep(POLL_MS);
  }
  throw new RunLockedError(dbPath, null);
}

/** The current holder of a run database's lock, from its details file (null when none is recorded). */
export function readHolder(holderPath: string): LockHolder | null {
  try {
    const parsed = JSON.parse(readFileSync(holderPath, 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number' || typeof parsed.host !== 'string') return null;
    return { command: String(parsed.command), pid: parsed.pid, host: parsed.host, startedAt: String(parsed.startedAt) };
  } catch {
    return null;
  }
}

/** A holder on this host whose process is gone wrote stale details; one on another host cannot be checked. */
function isCurrent(holder: LockHolder): boolean {
  return holder.host !== hostname() || isLiveProcess(holder.pid);
}

/**
 * One try: the connection holding the lock, `busy` when another process holds it, `replaced` when the file
 * was removed or replaced while we locked it (a holder releasing: we would hold a lock on a deleted file).
 */
function tryLock(lockPath: string): Database.Database | 'busy' | 'replaced' {
  // Create the file ourselves so that we know which file SQLite locks (no lock of ours is on it yet).
  closeSync(openSync(lockPath, 'a', 0o644));
  const before = inode(lockPath);
  const conn = new Database(lockPath, { timeout: 0 });
  try {
    conn.pragma('journal_mode = MEMORY');
    conn.exec('BEGIN IMMEDIATE');
  } catch (err) {
    conn.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return 'busy';
    throw err;
  }
  if (before === null || inode(lockPath) !== before) {
    conn.close();
    return 'replaced';
  }
  return conn;
}

function inode(path: string): string | null {
  try {
    const s = statSync(path, { bigint: true });
    return `${s.dev}:${s.ino}`;
  } catch {
    return null;
  }
}

function handle(entry: Held): RunLock {
  let released = false;
  return {
    path: entry.lockPath,
    release() {
      if (released) return;
      released = true;
      if (--entry.count === 0) releaseHeld(entry);
    },
  };
}

function releaseHeld(entry: Held): void {
  held.delete(entry.lockPath);
  // Remove the files while still holding the lock: a process that comes later creates a fresh lock file,
  // and one that opened this file before it went notices the replacement (`tryLock`).
  removeFiles(entry);
  entry.conn.close();
  removeEmptyFolders(entry.folder, entry.madeDir);
}

/** Remove the folders `mkdir -p` made for `folder` (from `folder` up to `top`), as long as they are empty. */
function removeEmptyFolders(folder: string, top: string | null): void {
  if (top === null) return;
  for (let dir = folder; ; dir = dirname(dir)) {
    try {
      rmdirSync(dir);
    } catch {
      return; // not empty: the run left its database there
    }
    if (dir === top || dirname(dir) === dir) return;
  }
}

function removeFiles(entry: Held): void {
  for (const path of [entry.holderPath, entry.lockPath]) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}

// A process that exits without releasing (process.exit, an uncaught error) still tidies up; the kernel
// drops the lock itself.
process.on('exit', () => {
  for (const entry of held.values()) removeFiles(entry);
});

function commandLine(): string {
  const args = process.argv.slice(2).join(' ');
  const text = `vlcurate ${args}`;
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
