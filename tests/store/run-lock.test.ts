/**
 * The run database's writer lock (`src/store/run-lock.ts`), held by real child processes: fcntl locks belong
 * to a process, so a second lock from this process would prove nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { lockRunDatabase, RunLockedError } from '../../src/store/run-lock.js';

const ROOT = resolve(import.meta.dirname, '../..');
const LOCK_MODULE = join(ROOT, 'dist/src/store/run-lock.js');
let dir: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-runlock-'));
});
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Run `script` (an ES module) in a child; resolves once it prints `ready`. */
async function child(script: string): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(proc);
  await new Promise<void>((resolvePromise, reject) => {
    let out = '';
    proc.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('ready')) resolvePromise();
    });
    proc.on('exit', (code) => reject(new Error(`child exited (${code}) before it was ready: ${out}`)));
  });
  return proc;
}

/** A child that takes the lock through vlcurate's own code and holds it until killed. */
function holder(db: string): Promise<ChildProcess> {
  return child(`
    const { lockRunDatabase } = await import(${JSON.stringify(LOCK_MODULE)});
    lockRunDatabase(${JSON.stringify(db)}, 'vlcurate build held.yaml');
    console.log('ready');
    setInterval(() => {}, 1000);`);
}

function expectLocked(db: string): RunLockedError {
  try {
    lockRunDatabase(db).release();
  } catch (err) {
    expect(err).toBeInstanceOf(RunLockedError);
    return err as RunLockedError;
  }
  throw new Error(`expected ${db} to be locked`);
}

describe('run database lock', () => {
  it('names the holder; the kernel releases the lock of a killed holder, and the next taker needs no unlock', async () => {
    const db = join(dir, 'killed', 'run.db');
    mkdirSync(join(dir, 'killed'));
    const proc = await holder(db);
    const err = expectLocked(db);
    expect(err.holder).toMatchObject({ pid: proc.pid, host: hostname(), command: 'vlcurate build held.yaml' });
    expect(err.message).toContain(`run database "${db}" is in use by "vlcurate build held.yaml" (pid ${proc.pid} on host ${hostname()}, started `);
    expect(err.message.split('\n')).toHaveLength(1);

    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    // Its files stay behind; they mean nothing any more.
    expect(existsSync(`${db}.lock`)).toBe(true);
    const lock = lockRunDatabase(db, 'vlcurate export');
    expect(JSON.parse(readFileSync(`${db}.lock.json`, 'utf8'))).toMatchObject({ pid: process.pid, command: 'vlcurate export' });
    lock.release();
    expect(existsSync(`${db}.lock`)).toBe(false);
    expect(existsSync(`${db}.lock.json`)).toBe(false);
  });

  it('a holder that has not written its details yet is not mistaken for the dead one that left them', async () => {
    const db = join(dir, 'fresh', 'run.db');
    mkdirSync(join(dir, 'fresh'));
    // Details of an earlier holder that died (no such pid runs), and a live holder that locked without writing its own.
    writeFileSync(`${db}.lock.json`, JSON.stringify({ command: 'vlcurate build old.yaml', pid: 2 ** 22 + 12345, host: hostname(), startedAt: '2020-01-01T00:00:00.000Z' }));
    await child(`
      const { default: Database } = await import('better-sqlite3');
      const conn = new Database(${JSON.stringify(`${db}.lock`)}, { timeout: 0 });
      conn.pragma('journal_mode = MEMORY');
      conn.exec('BEGIN IMMEDIATE');
      console.log('ready');
      setInterval(() => {}, 1000);`);
    const err = expectLocked(db);
    expect(err.holder).toBeNull();
    expect(err.message).toContain('in use by another vlcurate process (it has not written its details yet)');
    expect(err.message).not.toContain('old.yaml');
  });

  it('is counted within one process: held until the last release, then free for another process', async () => {
    const db = join(dir, 'nested', 'run.db');
    const outer = lockRunDatabase(db, 'vlcurate demo');
    const inner = lockRunDatabase(db, 'vlcurate build');
    inner.release();
    inner.release(); // twice is harmless
    const probe = `
      const { lockRunDatabase, RunLockedError } = await import(${JSON.stringify(LOCK_MODULE)});
      try { lockRunDatabase(${JSON.stringify(db)}).release(); console.log('ready free'); }
      catch (err) { console.log(err instanceof RunLockedError ? 'ready locked ' + err.holder?.command : 'ready ' + err); }`;
    const out = async () => {
      const proc = spawn(process.execPath, ['--input-type=module', '-e', probe], { cwd: ROOT });
      let text = '';
      proc.stdout.on('data', (c: Buffer) => (text += c.toString()));
      await new Promise((r) => proc.once('close', r));
      return text.trim();
    };
    expect(await out()).toBe('ready locked vlcurate demo');
    outer.release();
    expect(await out()).toBe('ready free');
  });

  it('creates the database folder when missing and removes it again when the run wrote nothing there', () => {
    const db = join(dir, 'new', 'deeper', 'run.db');
    const lock = lockRunDatabase(db);
    expect(existsSync(`${db}.lock`)).toBe(true);
    lock.release();
    expect(existsSync(join(dir, 'new'))).toBe(false);
  });
});
