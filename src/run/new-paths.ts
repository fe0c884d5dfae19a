/**
 * The files opening a run database is about to create (the file and its `-wal`/`-shm`/`-journal`
 * companions), noted before it is opened, so that a build stopped before its run starts (a configuration
 * error) can remove them and leave the disk as it found it. A database that existed before is never
 * removed. The folders made for it are the writer lock's to remove (`store/run-lock.ts`: on release, when
 * empty), so remove these files before releasing the lock.
 */
import { existsSync, rmSync } from 'node:fs';

export class NewPaths {
  private constructor(private readonly files: readonly string[]) {}

  static before(dbPath: string): NewPaths {
    return new NewPaths(existsSync(dbPath) ? [] : ['', '-wal', '-shm', '-journal'].map((suffix) => `${dbPath}${suffix}`));
  }

  /** Remove what was noted; call after the database is closed. */
  remove(): void {
    for (const file of this.files) rmSync(file, { force: true });
  }
}
